"""What recording a scan changes, worked out from data alone: no SQL, no session, no registry.

:func:`diff_findings` compares a scan's findings with the rows already stored for its clusters
and says what to insert, which rows were seen again, which to refresh (severity, message), which
to move to another status (resolved, reopened, exempt or open again) and which audit events say
so. :func:`cluster_posture` counts one cluster's open findings by severity and scores it.
:func:`okeguard.audit.recording.record_scan` reads the stored rows, calls these and applies the
result; the rules (what is resolved, what is kept) are here, testable without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from okeguard.audit.models import ExceptionRule, FindingStatus
from okeguard.checks.model import SEVERITIES_DESC, Finding, Status
from okeguard.posture import posture_score

if TYPE_CHECKING:
    from okeguard.audit.chain import EventSpec

KEPT_BY_PEOPLE = frozenset({FindingStatus.ACCEPTED_RISK.value, FindingStatus.SNOOZED.value})
Rules = Mapping[str, Sequence[ExceptionRule]]  # the exceptions in force, by check id


class StoredFinding(Protocol):
    """The columns of a stored finding that recording compares with a scan."""

    @property
    def id(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def check_id(self) -> str: ...
    @property
    def cluster(self) -> str: ...
    @property
    def resource_kind(self) -> str: ...
    @property
    def resource_namespace(self) -> str | None: ...
    @property
    def resource_name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def status_until(self) -> datetime | None: ...


@dataclass(frozen=True)
class Scope:
    """What one cluster's scan looked at: the checks it can vouch for, and the namespaces."""

    checks: frozenset[str]
    namespaces: frozenset[str]

    def covers(self, row: StoredFinding) -> bool:
        """True when the scan would have reported ``row`` had it still been there."""
        if row.check_id not in self.checks:
            return False
        if not self.namespaces:
            return True
        if row.resource_namespace is not None:
            return row.resource_namespace in self.namespaces
        return row.resource_kind == "Namespace" and row.resource_name in self.namespaces


@dataclass
class FindingsDiff:
    """What recording one scan changes in the stored findings, and the events that say so."""

    inserts: list[dict[str, Any]] = field(default_factory=list)  # rows of new findings
    seen_ids: list[int] = field(default_factory=list)  # stored rows seen again
    refreshed: list[dict[str, Any]] = field(default_factory=list)  # id, severity, message
    changes: dict[str, list[int]] = field(default_factory=dict)  # new status -> row ids
    events: list[EventSpec] = field(default_factory=list)
    new: int = 0
    updated: int = 0  # seen again with a status change (open <-> exempt)
    unchanged: int = 0  # seen again, status kept
    resolved: int = 0
    reopened: int = 0


def matches(rule: ExceptionRule, finding: Finding) -> bool:
    """True when the exception ``rule`` (of the finding's check) selects ``finding``'s resource."""
    resource = finding.resource
    return (
        (rule.cluster is None or rule.cluster == finding.cluster)
        and (rule.resource_kind is None or rule.resource_kind == resource.kind)
        and (rule.resource_namespace is None or rule.resource_namespace == resource.namespace)
        and (rule.resource_name is None or rule.resource_name == resource.name)
    )


def exemption(finding: Finding, rules: Rules) -> str | None:
    """Why ``finding`` is exempt (the annotation's reason or an exception), or None."""
    if finding.status is Status.EXEMPT:
        return finding.exempt_reason or "exempt by annotation"
    for rule in rules.get(finding.check_id, ()):
        if matches(rule, finding):
            return f"exception {rule.id}: {rule.reason}"
    return None


def diff_findings(
    findings: Sequence[Finding],
    existing: Mapping[str, StoredFinding],
    scopes: Mapping[str, Scope],
    rules: Rules,
    *,
    actor: str,
    scan_id: int,
    now: datetime,
) -> FindingsDiff:
    """Compare a scan's ``findings`` with the ``existing`` rows of its clusters (by fingerprint).

    A finding seen for the first time is inserted ``open`` (or ``exempt``); one seen again is
    refreshed, a ``resolved`` one reopens, ``open`` and ``exempt`` follow the scan and the
    ``rules`` in force, ``accepted-risk`` and ``snoozed`` are kept until their ``status_until``
    has passed. A stored finding not seen is resolved only when its cluster's scope (``scopes``,
    by cluster) covers it. ``unknown`` findings are left out: they vouch for nothing.
    """
    diff = FindingsDiff()
    seen: set[str] = set()
    for finding in findings:
        if finding.status is Status.UNKNOWN or finding.fingerprint in seen:
            continue
        seen.add(finding.fingerprint)
        reason = exemption(finding, rules)
        desired = FindingStatus.EXEMPT.value if reason else FindingStatus.OPEN.value
        subject = ("finding", finding.fingerprint)
        row = existing.get(finding.fingerprint)
        if row is None:
            diff.new += 1
            resource = finding.resource
            diff.inserts.append(
                {
                    "fingerprint": finding.fingerprint,
                    "check_id": finding.check_id,
                    "cluster": finding.cluster,
                    "resource_kind": resource.kind,
                    "resource_namespace": resource.namespace,
                    "resource_name": resource.name,
                    "resource_container": resource.container,
                    "resource_ocid": resource.ocid,
                    "severity": finding.severity.value,
                    "status": desired,
                    "message": finding.message,
                    "first_seen": now,
                    "last_seen": now,
                    "last_scan_id": scan_id,
                }
            )
            diff.events.append(
                (
                    actor,
                    "finding.opened",
                    subject,
                    {
                        "to": desired,
                        "check_id": finding.check_id,
                        "cluster": finding.cluster,
                        "resource": resource.display(),
                        "severity": finding.severity.value,
                        "reason": reason,
                    },
                )
            )
            continue
        diff.seen_ids.append(row.id)
        if row.severity != finding.severity.value or row.message != finding.message:
            diff.refreshed.append(
                {"id": row.id, "severity": finding.severity.value, "message": finding.message}
            )
        old = row.status
        until = row.status_until
        expired = old in KEPT_BY_PEOPLE and until is not None and until <= now
        if old == FindingStatus.RESOLVED.value:
            diff.reopened += 1
            action = "finding.reopened"
        elif expired:
            assert until is not None
            diff.updated += 1
            action = "finding.status"
            reason = reason or f"{old} until {until.isoformat()} has passed"
        elif old in KEPT_BY_PEOPLE or old == desired:
            diff.unchanged += 1
            continue
        else:
            diff.updated += 1
            action = "finding.status"
            if desired == FindingStatus.OPEN.value:
                reason = "no longer exempt"
        diff.changes.setdefault(desired, []).append(row.id)
        diff.events.append((actor, action, subject, {"from": old, "to": desired, "reason": reason}))

    to_resolve: list[int] = []
    for fingerprint, row in existing.items():
        if fingerprint in seen or row.status == FindingStatus.RESOLVED.value:
            continue
        if not scopes[row.cluster].covers(row):
            continue
        to_resolve.append(row.id)
        diff.resolved += 1
        diff.events.append(
            (
                actor,
                "finding.resolved",
                ("finding", fingerprint),
                {"from": row.status, "to": FindingStatus.RESOLVED.value, "scan": scan_id},
            )
        )
    if to_resolve:
        diff.changes[FindingStatus.RESOLVED.value] = to_resolve
    return diff


def cluster_posture(
    findings: Sequence[Finding], check_severities: Mapping[str, str], rules: Rules
) -> tuple[dict[str, int], int]:
    """One cluster's open (not exempt) findings by severity, every severity present, and its
    posture score over ``check_severities`` (every check that ran: its default severity)."""
    counts = {s.value: 0 for s in SEVERITIES_DESC}
    failing: set[str] = set()
    for finding in findings:
        if finding.status is Status.UNKNOWN:
            failing.add(finding.check_id)
        elif finding.status is Status.OPEN and exemption(finding, rules) is None:
            counts[finding.severity.value] += 1
            failing.add(finding.check_id)
    return counts, posture_score(check_severities, failing)
