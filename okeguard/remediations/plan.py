"""A remediation plan: plain data, hashed, and exactly what an approval refers to.

A :class:`Plan` names its target, lists ordered :class:`Operation` s, carries a human-readable
diff and risk notes, and has a SHA-256 over its canonical JSON (:attr:`Plan.hash`). Planners
(one per remediation) are pure functions of a finding and the inventory; the same live state
always gives the same plan, byte for byte, so re-planning at apply time and comparing hashes
proves the target has not changed since it was approved.

An operation says what to do (``action``), to what (``target``), with which parameters
(``params``), and what undoes it (``undo``: computed at plan time from the pre-image whenever it
can be, so a rollback never depends on memory that a crash could lose). Secret values never
appear in a plan: a rotation says how to generate content, not what it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from okeguard.errors import OkeguardError

if TYPE_CHECKING:
    from okeguard.checks.model import Finding

PLAN_SCHEMA = "okeguard.plan/v1"


class PlanError(OkeguardError):
    """A finding that cannot be planned (guidance-only, unsupported target, missing data)."""


@dataclass(frozen=True)
class Operation:
    """One step of a plan: ``action`` on ``target`` with ``params``; ``undo`` reverts it."""

    action: str
    target: Mapping[str, Any]
    params: Mapping[str, Any]
    description: str
    undo: Mapping[str, Any] = field(default_factory=dict)
    reversible: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": dict(self.target),
            "params": dict(self.params),
            "description": self.description,
            "undo": dict(self.undo),
            "reversible": self.reversible,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Operation:
        return cls(
            action=str(data["action"]),
            target=dict(data["target"]),
            params=dict(data["params"]),
            description=str(data["description"]),
            undo=dict(data.get("undo") or {}),
            reversible=bool(data.get("reversible", True)),
        )


@dataclass(frozen=True)
class Plan:
    """The exact change a remediation makes. ``hash`` is what an approval binds to."""

    remediation: str
    cluster: str
    check_id: str
    finding: str  # the finding's fingerprint
    target: Mapping[str, Any]  # the finding's resource (ResourceRef.to_dict())
    operations: tuple[Operation, ...]
    diff: str
    risks: tuple[str, ...] = ()
    variant: str = "default"
    variants: tuple[str, ...] = ("default",)  # the variants this remediation offers here
    verify: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: stored with the request, shown by ``--format json``, hashed."""
        return {
            "schema": PLAN_SCHEMA,
            "remediation": self.remediation,
            "cluster": self.cluster,
            "check_id": self.check_id,
            "finding": self.finding,
            "target": dict(self.target),
            "variant": self.variant,
            "variants": list(self.variants),
            "operations": [op.to_dict() for op in self.operations],
            "diff": self.diff,
            "risks": list(self.risks),
            "verify": dict(self.verify),
        }

    @classmethod
    def of(
        cls,
        finding: Finding,
        remediation: str,
        operations: Iterable[Operation],
        diff: str,
        *,
        risks: Iterable[str] = (),
        variant: str = "default",
        variants: tuple[str, ...] = ("default",),
        verify: Mapping[str, Any] | None = None,
    ) -> Plan:
        """The plan of ``remediation`` for ``finding`` (risks deduplicated, in order)."""
        return cls(
            remediation=remediation,
            cluster=finding.cluster,
            check_id=finding.check_id,
            finding=finding.fingerprint,
            target=finding.resource.to_dict(),
            operations=tuple(operations),
            diff=diff,
            risks=tuple(dict.fromkeys(risks)),
            variant=variant,
            variants=variants,
            verify=dict(verify or {}),
        )

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of :meth:`to_dict` as canonical JSON."""
        # imported here: at module level it made every scan import SQLAlchemy (0.3 s, 25 MB)
        from okeguard.audit.stores import plan_hash

        return plan_hash(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"not an {PLAN_SCHEMA} plan (schema {data.get('schema')!r})")
        return cls(
            remediation=str(data["remediation"]),
            cluster=str(data["cluster"]),
            check_id=str(data["check_id"]),
            finding=str(data["finding"]),
            target=dict(data["target"]),
            operations=tuple(Operation.from_dict(op) for op in data["operations"]),
            diff=str(data["diff"]),
            risks=tuple(data.get("risks") or ()),
            variant=str(data.get("variant", "default")),
            variants=tuple(data.get("variants") or ("default",)),
            verify=dict(data.get("verify") or {}),
        )


def short_hash(value: str) -> str:
    """The first 12 hex digits of a plan hash, as shown to people."""
    return value[:12]
