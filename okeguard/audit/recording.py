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
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from okeguard.audit.bulk import bulk_insert
from okeguard.audit.chain import append_events
from okeguard.audit.lifecycle import (
    FindingsDiff,
    Rules,
    Scope,
    StoredFinding,
    cluster_posture,
    diff_findings,
)
from okeguard.audit.models import ClusterPosture, ExceptionRule, FindingRecord, FindingStatus, Scan
from okeguard.audit.stores import active_exceptions
from okeguard.audit.types import utcnow
from okeguard.checks.model import Status
from okeguard.scanning import ScanReport, gc_paused

CHUNK = 500  # ids per IN (...) list: well under every database's bound-parameter limit


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


def _scope(report: ScanReport) -> Scope:
    blocked = {f.check_id for f in report.findings if f.status is Status.UNKNOWN}
    for gap in report.incomplete:
        blocked.update(gap["checks"])
    return Scope(frozenset(report.checks_run) - blocked, frozenset(report.namespaces))


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
    units: Sequence[ScanReport], scan_id: int, now: datetime, rules: Rules
) -> list[ClusterPosture]:
    """One posture row per cluster: open findings by severity and the posture score."""
    rows = []
    for unit in units:
        counts, score = cluster_posture(unit.findings, unit.check_severities(), rules)
        rows.append(
            ClusterPosture(
                scan_id=scan_id,
                cluster=unit.cluster,
                at=now,
                score=score,
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
    existing = cast(
        dict[str, StoredFinding],
        {
            row.fingerprint: row
            for row in session.execute(
                select(*columns).where(FindingRecord.cluster.in_(list(scopes)))
            )
        },
    )
    diff = diff_findings(
        report.findings, existing, scopes, rules, actor=actor, scan_id=scan.id, now=now
    )
    _apply(session, diff, scan.id, now)
    result = RecordResult(
        scan_id=scan.id,
        new=diff.new,
        updated=diff.updated,
        unchanged=diff.unchanged,
        resolved=diff.resolved,
        reopened=diff.reopened,
    )
    session.add_all(_postures(units, scan.id, now, rules))
    events = diff.events
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


def _apply(session: Session, diff: FindingsDiff, scan_id: int, now: datetime) -> None:
    """Write ``diff`` to the findings table (its events are appended by the caller)."""
    _insert_findings(session, diff.inserts)
    for chunk in _chunks(diff.seen_ids):
        session.execute(
            update(FindingRecord)
            .where(FindingRecord.id.in_(chunk))
            .values(last_seen=now, last_scan_id=scan_id)
            .execution_options(synchronize_session=False)
        )
    if diff.refreshed:
        session.execute(update(FindingRecord), diff.refreshed)
    for status, ids in diff.changes.items():
        _set_status(session, ids, status, now)
