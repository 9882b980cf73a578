"""Reading recorded findings: lists filtered by status, severity and cluster (worst first), the
state of given fingerprints, the findings on one resource, and each cluster's newest scores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, select
from sqlalchemy.orm import Session

from okeguard.audit.models import ClusterPosture, FindingRecord, FindingStatus, Scan
from okeguard.checks.model import SEVERITIES_DESC, SEVERITY_NAMES

SEVERITY_ORDER = SEVERITY_NAMES  # worst first
_CHUNK = 500  # fingerprints per IN (...) list


def severity_rank() -> ColumnElement[int]:
    """SQL: a finding's severity as a number, 4 (critical) down to 0 (info); -1 when unknown.
    Order by it descending for worst first."""
    return case({s.value: s.rank for s in SEVERITIES_DESC}, value=FindingRecord.severity, else_=-1)


def recorded_findings(
    session: Session,
    *,
    statuses: Iterable[str] = (),
    severities: Iterable[str] = (),
    clusters: Iterable[str] = (),
    limit: int | None = None,
) -> Sequence[FindingRecord]:
    """Recorded findings, worst severity first, then by check id, cluster and age. Each filter
    left empty keeps everything; one with values keeps findings matching any of them."""
    query = select(FindingRecord).order_by(
        severity_rank().desc(), FindingRecord.check_id, FindingRecord.cluster, FindingRecord.id
    )
    for column, values in (
        (FindingRecord.status, list(statuses)),
        (FindingRecord.severity, list(severities)),
        (FindingRecord.cluster, list(clusters)),
    ):
        if values:
            query = query.where(column.in_(values))
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def open_findings(
    session: Session,
    *,
    severities: Iterable[str] = (),
    clusters: Iterable[str] = (),
    limit: int | None = None,
) -> Sequence[FindingRecord]:
    """The open findings (not resolved, exempt, snoozed or accepted), as
    :func:`recorded_findings` orders and filters them."""
    return recorded_findings(
        session,
        statuses=(FindingStatus.OPEN.value,),
        severities=severities,
        clusters=clusters,
        limit=limit,
    )


@dataclass(frozen=True)
class FindingState:
    """What a scan compares a finding with: its recorded status, severity and message."""

    status: str
    severity: str
    message: str


def finding_states(session: Session, fingerprints: Sequence[str]) -> dict[str, FindingState]:
    """The recorded state of each of ``fingerprints`` that is recorded, by fingerprint."""
    columns = (
        FindingRecord.fingerprint,
        FindingRecord.status,
        FindingRecord.severity,
        FindingRecord.message,
    )
    states: dict[str, FindingState] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        chunk = fingerprints[start : start + _CHUNK]
        query = select(*columns).where(FindingRecord.fingerprint.in_(chunk))
        for fingerprint, status, severity, message in session.execute(query):
            states[fingerprint] = FindingState(status, severity, message)
    return states


def findings_on_resource(
    session: Session, kind: str, name: str, namespace: str | None = None, *, limit: int = 500
) -> Sequence[FindingRecord]:
    """The recorded findings (any status) on the resource ``kind`` ``namespace``/``name``;
    ``namespace`` None: in any namespace."""
    query = select(FindingRecord).where(
        FindingRecord.resource_kind == kind, FindingRecord.resource_name == name
    )
    if namespace is not None:
        query = query.where(FindingRecord.resource_namespace == namespace)
    return session.scalars(query.order_by(FindingRecord.id).limit(limit)).all()


def latest_scores(session: Session, clusters: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    """Per cluster with recorded posture: (newest score, change against the scan before it,
    None after the first scan)."""
    out: dict[str, tuple[int, int | None]] = {}
    for cluster in clusters:
        scores = session.scalars(
            select(ClusterPosture.score)
            .where(ClusterPosture.cluster == cluster)
            .order_by(ClusterPosture.id.desc())
            .limit(2)
        ).all()
        if scores:
            out[cluster] = (scores[0], scores[0] - scores[1] if len(scores) > 1 else None)
    return out


def last_scan(session: Session) -> Scan | None:
    """The newest recorded scan, or None before the first."""
    return session.scalars(select(Scan).order_by(Scan.id.desc()).limit(1)).first()
