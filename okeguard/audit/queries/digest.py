"""The reads behind a digest: one query per table, whatever the number of clusters.

The digest itself (what is new, resolved, at risk; the trend) is put together by
``okeguard.bot.slack.digest``; these functions return rows for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.orm import Session

from okeguard.audit.models import (
    ClusterPosture,
    DigestRecord,
    FindingRecord,
    FindingStatus,
    RemediationRequest,
    RequestState,
    Scan,
)
from okeguard.audit.queries.findings import SEVERITY_ORDER, severity_rank
from okeguard.audit.queries.requests import waiting_for_approval


def posture_rows(
    session: Session, clusters: Sequence[str] | None, window_start: datetime
) -> dict[str, list[Row[Any]]]:
    """Per cluster (every one, or only ``clusters``), oldest first: every posture row from
    ``window_start`` on, preceded by the last row before it (the value the trend carries into
    the window, and the newest row of a cluster not scanned lately). A row has ``cluster``,
    ``at``, ``scan_id``, ``score``, ``complete`` and a count per severity name."""
    earlier = select(
        ClusterPosture.id,
        func.row_number()
        .over(
            partition_by=ClusterPosture.cluster,
            order_by=(ClusterPosture.at.desc(), ClusterPosture.id.desc()),
        )
        .label("rn"),
    ).where(ClusterPosture.at < window_start)
    recent: ColumnElement[bool] = ClusterPosture.at >= window_start
    if clusters is not None:
        earlier = earlier.where(ClusterPosture.cluster.in_(clusters))
        recent = and_(recent, ClusterPosture.cluster.in_(clusters))
    ranked = earlier.subquery()
    last_before = select(ranked.c.id).where(ranked.c.rn == 1)
    query = (
        select(
            ClusterPosture.cluster,
            ClusterPosture.at,
            ClusterPosture.scan_id,
            ClusterPosture.score,
            ClusterPosture.complete,
            *(getattr(ClusterPosture, s) for s in SEVERITY_ORDER),
        )
        .where(or_(recent, ClusterPosture.id.in_(last_before)))
        .order_by(ClusterPosture.cluster, ClusterPosture.at, ClusterPosture.id)
    )
    rows: dict[str, list[Row[Any]]] = {}
    for row in session.execute(query):
        rows.setdefault(row.cluster, []).append(row)
    return rows


def digest_findings(
    session: Session, clusters: Sequence[str], since: datetime, *, top: int
) -> Sequence[Row[Any]]:
    """The findings a digest shows for ``clusters``, in one query: the ``top`` worst open ones
    per cluster (``rn`` <= ``top``), open ones first seen after ``since``, and those resolved
    after it. By cluster, then worst first. A row has the findings-table columns a digest line
    needs plus ``status``, ``first_seen``, ``resolved_at`` and ``rn``."""
    if not clusters:
        return []
    rank = severity_rank()
    worst_first = (rank.desc(), FindingRecord.first_seen, FindingRecord.fingerprint)
    ranked = (
        select(
            FindingRecord.fingerprint,
            FindingRecord.check_id,
            FindingRecord.severity,
            FindingRecord.cluster,
            FindingRecord.resource_kind,
            FindingRecord.resource_namespace,
            FindingRecord.resource_name,
            FindingRecord.resource_container,
            FindingRecord.message,
            FindingRecord.status,
            FindingRecord.first_seen,
            FindingRecord.resolved_at,
            rank.label("rank"),
            func.row_number()
            .over(partition_by=(FindingRecord.cluster, FindingRecord.status), order_by=worst_first)
            .label("rn"),
        )
        .where(
            FindingRecord.cluster.in_(clusters),
            FindingRecord.status.in_([FindingStatus.OPEN.value, FindingStatus.RESOLVED.value]),
        )
        .subquery()
    )
    is_open = ranked.c.status == FindingStatus.OPEN.value
    query = (
        select(ranked)
        .where(
            or_(
                and_(is_open, or_(ranked.c.rn <= top, ranked.c.first_seen > since)),
                and_(ranked.c.status == FindingStatus.RESOLVED.value, ranked.c.resolved_at > since),
            )
        )
        .order_by(ranked.c.cluster, ranked.c.rank.desc(), ranked.c.first_seen, ranked.c.fingerprint)
    )
    return session.execute(query).all()


def digest_requests(
    session: Session, now: datetime, since: datetime
) -> Sequence[RemediationRequest]:
    """In one query: the requests waiting for approval at ``now`` (not expired), and those
    applied after ``since``."""
    applied = and_(
        RemediationRequest.state == RequestState.APPLIED.value,
        RemediationRequest.applied_at > since,
    )
    query = select(RemediationRequest).where(or_(waiting_for_approval(now), applied))
    return session.scalars(query).all()


def previous_digest(session: Session, channel: str, now: datetime) -> DigestRecord | None:
    """The newest digest sent to ``channel`` at or before ``now``."""
    query = (
        select(DigestRecord)
        .where(DigestRecord.channel == channel, DigestRecord.sent_at <= now)
        .order_by(DigestRecord.sent_at.desc(), DigestRecord.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def digest_sent_since(session: Session, channel: str, since: datetime) -> int | None:
    """The id of the newest digest sent to ``channel`` at or after ``since``, if any."""
    query = (
        select(DigestRecord.id)
        .where(DigestRecord.channel == channel, DigestRecord.sent_at >= since)
        .order_by(DigestRecord.id.desc())
    )
    return session.scalars(query).first()


def scan_sources(session: Session, scan_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The ``sources`` of each of the scans ``scan_ids`` (what they read, and their gaps)."""
    ids = sorted(set(scan_ids))
    if not ids:
        return {}
    query = select(Scan.id, Scan.sources).where(Scan.id.in_(ids))
    return {scan_id: sources for scan_id, sources in session.execute(query)}
