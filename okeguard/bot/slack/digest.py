"""The daily digest: what each cluster's posture is, what changed since the channel's previous
digest, what waits for people (approvals, expiring exceptions) and the 30-day trend.

:func:`build_digest` reads the audit database into a :class:`~okeguard.bot.slack.digest_model.
Digest` (one query per table, whatever the number of clusters); :func:`record_digest` stores
what was sent, which is the next digest's baseline for score changes and "since".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from okeguard.audit.anchors import head_anchor, record_anchor
from okeguard.audit.chain import append_event
from okeguard.audit.models import (
    ClusterPosture,
    DigestRecord,
    ExceptionRule,
    FindingRecord,
    FindingStatus,
    RemediationRequest,
    RequestState,
    Scan,
)
from okeguard.bot.slack.digest_model import (
    ClusterDigest,
    Digest,
    ExceptionRow,
    FindingRow,
    RequestRow,
)
from okeguard.checks.model import SEVERITIES_DESC

SEVERITIES: tuple[str, ...] = tuple(s.value for s in SEVERITIES_DESC)
TOP_RISKS = 5
TREND_DAYS = 30
FIRST_DIGEST_WINDOW = timedelta(hours=24)  # "new" and "resolved" for a channel's first digest
EXPIRY_HORIZON = timedelta(days=7)

Counts = dict[str, int]


def resource_label(
    kind: str, namespace: str | None, name: str, container: str | None = None
) -> str:
    """``Deployment shop/web (container app)``; cluster-scoped objects have no namespace part."""
    where = f"{namespace}/{name}" if namespace else name
    label = f"{kind} {where}"
    return f"{label} (container {container})" if container else label


def exception_selector(rule: ExceptionRule) -> str:
    """What an exception covers, for people: ``cluster shop-prod, Deployment shop/web``."""
    kind, namespace, name = rule.resource_kind, rule.resource_namespace, rule.resource_name
    if name:
        resource = f"{kind} {namespace}/{name}" if namespace else f"{kind or ''} {name}"
    elif namespace:
        resource = f"{kind} in namespace {namespace}" if kind else f"namespace {namespace}"
    else:
        resource = f"every {kind}" if kind else ""
    parts = [f"cluster {rule.cluster}" if rule.cluster else "", resource.strip()]
    return ", ".join(p for p in parts if p) or "everywhere"


def _severity_rank() -> ColumnElement[int]:
    ranks = {s.value: s.rank for s in SEVERITIES_DESC}
    return case(ranks, value=FindingRecord.severity, else_=-1)


def _postures(
    session: Session, clusters: Sequence[str] | None, window_start: datetime
) -> dict[str, list[Any]]:
    """Per cluster, oldest first: every posture row from ``window_start`` on, preceded by the
    last row before it (the value the trend carries into the window, and the newest row of a
    cluster not scanned lately)."""
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
            *(getattr(ClusterPosture, s) for s in SEVERITIES),
        )
        .where(or_(recent, ClusterPosture.id.in_(last_before)))
        .order_by(ClusterPosture.cluster, ClusterPosture.at, ClusterPosture.id)
    )
    rows: dict[str, list[Any]] = {}
    for row in session.execute(query):
        rows.setdefault(row.cluster, []).append(row)
    return rows


def _counts(row: Any) -> Counts:
    return {s: int(getattr(row, s)) for s in SEVERITIES}


def _trend(rows: Sequence[Any], today: date) -> dict[date, Counts]:
    """Counts of the last row of each day over the window, carried over days without a scan."""
    first_day = today - timedelta(days=TREND_DAYS - 1)
    last_of_day: dict[date, Counts] = {}
    for row in rows:  # oldest first, so the last write of a day wins
        last_of_day[max(row.at.astimezone(UTC).date(), first_day)] = _counts(row)
    trend: dict[date, Counts] = {}
    current: Counts | None = None
    for offset in range(TREND_DAYS):
        day = first_day + timedelta(days=offset)
        current = last_of_day.get(day, current)
        if current is not None:
            trend[day] = dict(current)
    return trend


def _incomplete(sources: Mapping[str, Any] | None, cluster: str) -> tuple[str, ...]:
    """The kinds the scan could not read. Entries naming a cluster count for that cluster only
    (entries without one belong to the whole scan)."""
    kinds: dict[str, None] = {}
    for gap in (sources or {}).get("incomplete") or ():
        if gap.get("cluster") not in (None, cluster):
            continue
        what = gap.get("kind") or gap.get("source")
        if what:
            kinds[str(what)] = None
    return tuple(kinds)


def finding_row(row: Any) -> FindingRow:
    """A findings-table row (or a select of its columns) as a digest/list line."""
    return FindingRow(
        fingerprint=row.fingerprint,
        check_id=row.check_id,
        severity=row.severity,
        cluster=row.cluster,
        resource=resource_label(
            row.resource_kind, row.resource_namespace, row.resource_name, row.resource_container
        ),
        message=row.message,
    )


def _findings(
    session: Session, clusters: Sequence[str], since: datetime
) -> tuple[dict[str, list[FindingRow]], dict[str, list[FindingRow]], dict[str, list[FindingRow]]]:
    """New, resolved and top-risk findings per cluster, in one query, each list worst first."""
    if not clusters:
        return {}, {}, {}
    rank = _severity_rank()
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
                and_(is_open, or_(ranked.c.rn <= TOP_RISKS, ranked.c.first_seen > since)),
                and_(ranked.c.status == FindingStatus.RESOLVED.value, ranked.c.resolved_at > since),
            )
        )
        .order_by(ranked.c.cluster, ranked.c.rank.desc(), ranked.c.first_seen, ranked.c.fingerprint)
    )
    new: dict[str, list[FindingRow]] = {}
    resolved: dict[str, list[FindingRow]] = {}
    top: dict[str, list[FindingRow]] = {}
    for row in session.execute(query):
        finding = finding_row(row)
        if row.status == FindingStatus.RESOLVED.value:
            resolved.setdefault(row.cluster, []).append(finding)
            continue
        if row.rn <= TOP_RISKS:
            top.setdefault(row.cluster, []).append(finding)
        if row.first_seen > since:
            new.setdefault(row.cluster, []).append(finding)
    return new, resolved, top


def _request_row(request: RemediationRequest, at: datetime) -> RequestRow:
    plan = request.plan or {}
    return RequestRow(
        id=request.id,
        remediation=str(plan.get("remediation") or "?"),
        cluster=str(plan.get("cluster") or "?"),
        check_id=str(plan.get("check_id") or "?"),
        state=request.state,
        requester=request.requester,
        approver=request.approver,
        at=at,
        expires_at=request.expires_at,
    )


def _requests(
    session: Session, now: datetime, since: datetime
) -> tuple[tuple[RequestRow, ...], tuple[RequestRow, ...]]:
    """Requests waiting for approval (not expired), and those applied after ``since``."""
    pending = and_(
        RemediationRequest.state == RequestState.PENDING_APPROVAL.value,
        or_(RemediationRequest.expires_at.is_(None), RemediationRequest.expires_at > now),
    )
    applied = and_(
        RemediationRequest.state == RequestState.APPLIED.value,
        RemediationRequest.applied_at > since,
    )
    query = select(RemediationRequest).where(or_(pending, applied))
    waiting: list[RequestRow] = []
    done: list[RequestRow] = []
    for request in session.scalars(query):
        if request.state == RequestState.APPLIED.value and request.applied_at is not None:
            done.append(_request_row(request, request.applied_at))
        else:
            waiting.append(_request_row(request, request.created_at))
    waiting.sort(key=lambda r: (r.at, r.id))
    done.sort(key=lambda r: (r.at, r.id))
    return tuple(waiting), tuple(done)


def _expiring_exceptions(session: Session, now: datetime) -> tuple[ExceptionRow, ...]:
    query = (
        select(ExceptionRule)
        .where(ExceptionRule.expires_at > now, ExceptionRule.expires_at <= now + EXPIRY_HORIZON)
        .order_by(ExceptionRule.expires_at, ExceptionRule.id)
    )
    return tuple(
        ExceptionRow(
            id=rule.id,
            check_id=rule.check_id,
            selector=exception_selector(rule),
            author=rule.author,
            reason=rule.reason,
            expires_at=rule.expires_at,
        )
        for rule in session.scalars(query)
        if rule.expires_at is not None
    )


def _previous_digest(session: Session, channel: str, now: datetime) -> DigestRecord | None:
    query = (
        select(DigestRecord)
        .where(DigestRecord.channel == channel, DigestRecord.sent_at <= now)
        .order_by(DigestRecord.sent_at.desc(), DigestRecord.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def _scan_sources(session: Session, scan_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    ids = sorted(set(scan_ids))
    if not ids:
        return {}
    query = select(Scan.id, Scan.sources).where(Scan.id.in_(ids))
    return {row.id: row.sources for row in session.execute(query)}


def build_digest(
    session: Session,
    *,
    channel: str,
    now: datetime,
    clusters: Sequence[str] | None = None,
) -> Digest:
    """The digest for ``channel`` at ``now``: every cluster with recorded posture (or only
    ``clusters``; one never scanned is left out, having no score), sorted by name.

    "Since" is the channel's previous digest (for the first one: the last 24 hours). Scores and
    counts come from each cluster's newest recorded scan; ``score_change`` compares with the
    score the previous digest reported. ``audit_head`` is the audit chain's head, the anchor the
    digest publishes (None while the chain is empty). Reads only; one query per table.
    """
    now = now.astimezone(UTC)
    today = now.date()
    window_start = datetime.combine(today - timedelta(days=TREND_DAYS - 1), time(), UTC)
    previous = _previous_digest(session, channel, now)
    since = previous.sent_at if previous is not None else None
    cutoff = since if since is not None else now - FIRST_DIGEST_WINDOW
    reported: Mapping[str, Any] = previous.scores if previous is not None else {}

    postures = _postures(session, list(clusters) if clusters is not None else None, window_start)
    names = sorted(postures)
    newest = {name: postures[name][-1] for name in names}
    sources = _scan_sources(session, (row.scan_id for row in newest.values()))
    new, resolved, top = _findings(session, names, cutoff)

    digests = []
    for name in names:
        latest = newest[name]
        before = reported.get(name)
        digests.append(
            ClusterDigest(
                cluster=name,
                score=int(latest.score),
                score_change=int(latest.score) - int(before) if before is not None else None,
                by_severity=_counts(latest),
                new=tuple(new.get(name, ())),
                resolved=tuple(resolved.get(name, ())),
                top_risks=tuple(top.get(name, ())),
                incomplete=()
                if latest.complete
                else _incomplete(sources.get(latest.scan_id), name),
            )
        )
    pending, applied = _requests(session, now, cutoff)
    trend = {name: t for name in names if (t := _trend(postures[name], today))}
    head = head_anchor(session)
    return Digest(
        generated_at=now,
        since=since,
        clusters=tuple(digests),
        pending_approvals=pending,
        expiring_exceptions=_expiring_exceptions(session, now),
        remediations_applied=applied,
        trend=trend,
        audit_head=head if head.id else None,
    )


def record_digest(session: Session, digest: Digest, *, channel: str, actor: str) -> DigestRecord:
    """Store ``digest`` as sent to ``channel`` (its scores are the next digest's baseline) and
    append its ``digest.sent`` audit event; in the caller's transaction (no commit).

    The audit head the digest published is recorded first (``audit.anchored``, and one
    ``audit.anchor`` log line), so the chain shows when each anchor was taken."""
    scores = {c.cluster: c.score for c in digest.clusters}
    record = DigestRecord(channel=channel, sent_at=digest.generated_at, scores=scores)
    session.add(record)
    session.flush()
    if digest.audit_head is not None:
        record_anchor(session, digest.audit_head, actor, f"slack:{channel}", at=digest.generated_at)
    append_event(
        session,
        actor,
        "digest.sent",
        ("digest", record.id),
        {
            "channel": channel,
            "clusters": [c.cluster for c in digest.clusters],
            "scores": scores,
            "counts": {c.cluster: dict(c.by_severity) for c in digest.clusters},
        },
        at=digest.generated_at,
    )
    return record


__all__ = [
    "build_digest",
    "exception_selector",
    "record_digest",
    "resource_label",
]
