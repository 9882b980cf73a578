"""Findings and their parts: plain, immutable, serialisable data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is. The one place the names are spelled, worst first: the order here is
    the order everywhere (reports, Slack, ``--severity`` and ``--fail-on``, posture columns)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """4 for critical down to 0 for info: compare severities with this."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str) -> Severity:
        """The severity named ``value`` (case-insensitive); ValueError lists the valid names."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity '{value}' (expected one of: {names})") from None


SEVERITIES_DESC: tuple[Severity, ...] = tuple(Severity)  # worst first, as defined
SEVERITY_NAMES: tuple[str, ...] = tuple(s.value for s in SEVERITIES_DESC)  # worst first
_RANK = {severity: len(SEVERITIES_DESC) - 1 - i for i, severity in enumerate(SEVERITIES_DESC)}


class Status(StrEnum):
    OPEN = "open"
    EXEMPT = "exempt"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """What a finding is about. ``namespace`` is None for cluster-scoped objects."""

    kind: str
    namespace: str | None
    name: str
    container: str | None = None
    ocid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "container": self.container,
            "ocid": self.ocid,
        }

    def display(self) -> str:
        """``Deployment shop/cart [container api]`` style label for people."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        text = f"{self.kind} {where}"
        return f"{text} [{self.container}]" if self.container else text


def fingerprint(check_id: str, cluster: str, resource: ResourceRef) -> str:
    """Stable identity of a finding: the same check on the same resource always gives the same value."""
    parts = (
        check_id,
        cluster,
        resource.kind,
        resource.namespace or "",
        resource.name,
        resource.container or "",
        resource.ocid or "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict on one resource (``status`` open, exempt or unknown)."""

    check_id: str
    severity: Severity
    status: Status
    cluster: str
    resource: ResourceRef
    message: str
    practice: tuple[str, ...]
    remediation: str
    fingerprint: str
    exempt_reason: str | None = None
    origin: str | None = None  # "file:line" of the manifest, when known

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (``okeguard.scan/v1``) for one finding."""
        out: dict[str, Any] = {
            "check_id": self.check_id,
            "severity": self.severity.value,
            "status": self.status.value,
            "cluster": self.cluster,
            "resource": self.resource.to_dict(),
            "message": self.message,
            "practice": ", ".join(self.practice),
            "remediation": self.remediation,
            "fingerprint": self.fingerprint,
        }
        if self.exempt_reason is not None:
            out["exempt_reason"] = self.exempt_reason
        if self.origin is not None:
            out["origin"] = self.origin
        return out
