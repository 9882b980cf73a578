"""Recording scans: findings upserted by fingerprint, their lifecycle, and its audit events.

:func:`record_scan` turns one :class:`~okeguard.service.ScanReport` into database state, in the
caller's transaction (it never commits):

* a finding seen for the first time is inserted ``open`` (or ``exempt``);
* a finding seen again gets ``last_seen`` and its severity and message refreshed; a ``resolved``
  one reopens; ``open`` and ``exempt`` follow the scan and the exceptions in force;
  ``accepted-risk`` and ``snoozed``, set by people, are kept;
* a finding not seen is resolved only when the scan really looked for it: its cluster is in the
  report, its check ran there, the check reported nothing ``unknown`` there and no gap left it
  unevaluated, and its namespace is inside the scan's ``--namespace`` filter. Anything else
  keeps its state: a finding is never resolved for lack of data.

Every status change (including a new finding) writes one audit event; all of them are appended
in one batch, with one ``scan.recorded`` event at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from okeguard.audit.chain import EventSpec, append_events
from okeguard.audit.models import (
    ClusterPosture,
    ExceptionRule,
    FindingRecord,
    FindingStatus,
    Scan,
)
from okeguard.audit.stores import active_exceptions, bulk_insert
from okeguard.audit.types import utcnow
from okeguard.checks.model import Finding, Status
from okeguard.checks.registry import get_check
from okeguard.posture import SEVERITY_WEIGHTS, posture_score

if TYPE_CHECKING:
    from okeguard.service import ScanReport

CHUNK = 500  # ids per IN (...) list: well under every database's bound-parameter limit
KEPT_BY_PEOPLE = frozenset({FindingStatus.ACCEPTED_RISK.value, FindingStatus.SNOOZED.value})


@dataclass
class RecordResult:
    """What one recording changed."""

    scan_id: int
    new: int = 0
    updated: int = 0  # seen again with a status change (open <-> exempt)
    unchanged: int = 0  # seen again, status kept
    resolved: int = 0
    reopened: int = 0

    @property
    def seen(self) -> int:
        """Findings already known and seen again (reopened ones included)."""
        return self.updated + self.unchanged + self.reopened

    def summary(self) -> str:
        """``recorded: 3 new, 40 seen, 2 resolved`` (status changes and reopened ones named when
        there are any)."""
        text = f"recorded: {self.new} new, {self.seen} seen, {self.resolved} resolved"
        if self.updated:
            text += f", {self.updated} changed status"
        return text + (f", {self.reopened} reopened" if self.reopened else "")

    def to_dict(self) -> dict[str, int]:
        return {
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "resolved": self.resolved,
            "reopened": self.reopened,
        }


@dataclass(frozen=True)
class _Scope:
    """What one cluster's scan looked at: the checks it can vouch for, and the namespaces."""

    checks: frozenset[str]
    namespaces: frozenset[str]

    def covers(self, row: Any) -> bool:
        if row.check_id not in self.checks:
            return False
        if not self.namespaces:
            return True
        if row.resource_namespace is not None:
            return bool(row.resource_namespace in self.namespaces)
        return bool(row.resource_kind == "Namespace" and row.resource_name in self.namespaces)


def _scope(report: ScanReport) -> _Scope:
    blocked = {f.check_id for f in report.findings if f.status is Status.UNKNOWN}
    for gap in report.incomplete:
        blocked.update(gap["checks"])
    return _Scope(frozenset(report.checks_run) - blocked, frozenset(report.namespaces))


def _matches(rule: ExceptionRule, finding: Finding) -> bool:
    resource = finding.resource
    return (
        (rule.cluster is None or rule.cluster == finding.cluster)
        and (rule.resource_kind is None or rule.resource_kind == resource.kind)
        and (rule.resource_namespace is None or rule.resource_namespace == resource.namespace)
        and (rule.resource_name is None or rule.resource_name == resource.name)
    )


def _exemption(finding: Finding, rules: dict[str, list[ExceptionRule]]) -> str | None:
    """Why ``finding`` is exempt (the annotation's reason or an exception), or None."""
    if finding.status is Status.EXEMPT:
        return finding.exempt_reason or "exempt by annotation"
    for rule in rules.get(finding.check_id, ()):
        if _matches(rule, finding):
            return f"exception {rule.id}: {rule.reason}"
    return None


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _set_status(session: Session, ids: Sequence[int], status: str, now: datetime) -> None:
    resolved_at = now if status == FindingStatus.RESOLVED.value else None
    for chunk in _chunks(ids):
        session.execute(
            update(FindingRecord)
            .where(FindingRecord.id.in_(chunk))
            .values(status=status, resolved_at=resolved_at)
            .execution_options(synchronize_session=False)
        )


def _postures(
    units: Sequence[ScanReport], scan_id: int, now: datetime, rules: dict[str, list[ExceptionRule]]
) -> list[ClusterPosture]:
    """One posture row per cluster: open findings by severity and the posture score."""
    rows = []
    for unit in units:
        counts = dict.fromkeys(SEVERITY_WEIGHTS, 0)
        failing: set[str] = set()
        for finding in unit.findings:
            if finding.status is Status.UNKNOWN:
                failing.add(finding.check_id)
            elif finding.status is Status.OPEN and _exemption(finding, rules) is None:
                counts[finding.severity.value] += 1
                failing.add(finding.check_id)
        checks = {
            check_id: spec.severity.value
            for check_id in unit.checks_run
            if (spec := get_check(check_id)) is not None
        }
        rows.append(
            ClusterPosture(
                scan_id=scan_id,
                cluster=unit.cluster,
                at=now,
                score=posture_score(checks, failing),
                complete=unit.complete,
                **counts,
            )
        )
    return rows


def _insert_findings(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert new findings (a first recording inserts 33,000) with :func:`bulk_insert`."""
    bulk_insert(session, cast(Table, FindingRecord.__table__), rows)


def record_scan(
    session: Session,
    report: ScanReport,
    *,
    actor: str,
    started_by: str,
    now: datetime | None = None,
) -> RecordResult:
    """Record ``report``: a Scan row, the findings' lifecycle and its audit events.

    Works in the caller's transaction and does not commit. ``now`` (default: the current time)
    is ``last_seen`` for the findings seen and the instant exceptions are judged at.
    """
    from okeguard.service import gc_paused

    # Tens of thousands of rows and events are built here, and no cycles worth collecting.
    with gc_paused():
        return _record(session, report, actor=actor, started_by=started_by, now=now or utcnow())


def _record(
    session: Session, report: ScanReport, *, actor: str, started_by: str, now: datetime
) -> RecordResult:
    units = report.parts or (report,)
    complete = report.complete  # a walk over every finding: once, not three times
    scopes = {unit.cluster: _scope(unit) for unit in units}
    scan = Scan(
        started_by=started_by,
        sources={
            "source": report.source,
            "clusters": list(scopes),
            "checks_run": report.checks_run,
            "namespaces": list(report.namespaces),
            "incomplete": [
                {
                    "cluster": unit.cluster,
                    "kind": g["kind"],
                    "source": g["source"],
                    "checks": g["checks"],
                }
                for unit in units
                for g in unit.incomplete
            ],
        },
        started_at=report.generated_at,
        finished_at=now,
        complete=complete,
    )
    session.add(scan)
    session.flush()
    result = RecordResult(scan_id=scan.id)

    rules: dict[str, list[ExceptionRule]] = {}
    for rule in active_exceptions(session, now):
        rules.setdefault(rule.check_id, []).append(rule)

    columns = (
        FindingRecord.id,
        FindingRecord.fingerprint,
        FindingRecord.check_id,
        FindingRecord.cluster,
        FindingRecord.resource_kind,
        FindingRecord.resource_namespace,
        FindingRecord.resource_name,
        FindingRecord.status,
        FindingRecord.severity,
        FindingRecord.message,
        FindingRecord.status_until,
    )
    existing = {
        row.fingerprint: row
        for row in session.execute(select(*columns).where(FindingRecord.cluster.in_(list(scopes))))
    }

    events: list[EventSpec] = []
    inserts: list[dict[str, Any]] = []
    seen_ids: list[int] = []
    changes: dict[str, list[int]] = {}
    refreshed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for finding in report.findings:
        if finding.status is Status.UNKNOWN or finding.fingerprint in seen:
            continue
        seen.add(finding.fingerprint)
        reason = _exemption(finding, rules)
        desired = FindingStatus.EXEMPT.value if reason else FindingStatus.OPEN.value
        subject = ("finding", finding.fingerprint)
        row = existing.get(finding.fingerprint)
        if row is None:
            result.new += 1
            resource = finding.resource
            inserts.append(
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
                    "last_scan_id": scan.id,
                }
            )
            events.append(
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
        seen_ids.append(row.id)
        if row.severity != finding.severity.value or row.message != finding.message:
            refreshed.append(
                {"id": row.id, "severity": finding.severity.value, "message": finding.message}
            )
        old = row.status
        expired = old in KEPT_BY_PEOPLE and row.status_until is not None and row.status_until <= now
        if old == FindingStatus.RESOLVED.value:
            result.reopened += 1
            action = "finding.reopened"
        elif expired:
            result.updated += 1
            action = "finding.status"
            reason = reason or f"{old} until {row.status_until.isoformat()} has passed"
        elif old in KEPT_BY_PEOPLE or old == desired:
            result.unchanged += 1
            continue
        else:
            result.updated += 1
            action = "finding.status"
            if desired == FindingStatus.OPEN.value:
                reason = "no longer exempt"
        changes.setdefault(desired, []).append(row.id)
        events.append((actor, action, subject, {"from": old, "to": desired, "reason": reason}))

    to_resolve: list[int] = []
    for fingerprint, row in existing.items():
        if fingerprint in seen or row.status == FindingStatus.RESOLVED.value:
            continue
        if not scopes[row.cluster].covers(row):
            continue
        to_resolve.append(row.id)
        result.resolved += 1
        events.append(
            (
                actor,
                "finding.resolved",
                ("finding", fingerprint),
                {"from": row.status, "to": FindingStatus.RESOLVED.value, "scan": scan.id},
            )
        )
    if to_resolve:
        changes[FindingStatus.RESOLVED.value] = to_resolve

    _insert_findings(session, inserts)
    for chunk in _chunks(seen_ids):
        session.execute(
            update(FindingRecord)
            .where(FindingRecord.id.in_(chunk))
            .values(last_seen=now, last_scan_id=scan.id)
            .execution_options(synchronize_session=False)
        )
    if refreshed:
        session.execute(update(FindingRecord), refreshed)
    for status, ids in changes.items():
        _set_status(session, ids, status, now)

    session.add_all(_postures(units, scan.id, now, rules))
    events.append(
        (
            actor,
            "scan.recorded",
            ("scan", scan.id),
            {"started_by": started_by, "complete": complete, **result.to_dict()},
        )
    )
    append_events(session, events, at=now)
    return result
