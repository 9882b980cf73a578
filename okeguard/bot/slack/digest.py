"""The daily digest: what each cluster's posture is, what changed since the channel's previous
digest, what waits for people (approvals, expiring exceptions) and the 30-day trend.

:func:`build_digest` reads the audit database into a :class:`~okeguard.bot.slack.digest_model.
Digest` (one query per table, whatever the number of clusters); :func:`record_digest` stores
what was sent, which is the next digest's baseline for score changes and "since".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

from okeguard.audit import queries
from okeguard.audit.anchors import head_anchor, record_anchor
from okeguard.audit.chain import append_event
from okeguard.audit.models import (
    DigestRecord,
    FindingStatus,
    RemediationRequest,
    RequestState,
)
from okeguard.bot.slack.digest_model import (
    ClusterDigest,
    Digest,
    ExceptionRow,
    FindingRow,
    RequestRow,
)

SEVERITIES = queries.SEVERITY_ORDER
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
    new: dict[str, list[FindingRow]] = {}
    resolved: dict[str, list[FindingRow]] = {}
    top: dict[str, list[FindingRow]] = {}
    for row in queries.digest_findings(session, clusters, since, top=TOP_RISKS):
        finding = finding_row(row)
        if row.status == FindingStatus.RESOLVED.value:
            resolved.setdefault(row.cluster, []).append(finding)
            continue
        if row.rn <= TOP_RISKS:
            top.setdefault(row.cluster, []).append(finding)
        if row.first_seen > since:
            new.setdefault(row.cluster, []).append(finding)
    return new, resolved, top


def request_row(request: RemediationRequest, at: datetime) -> RequestRow:
    """A remediation request as a digest/list line, dated ``at``."""
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
    waiting: list[RequestRow] = []
    done: list[RequestRow] = []
    for request in queries.digest_requests(session, now, since):
        if request.state == RequestState.APPLIED.value and request.applied_at is not None:
            done.append(request_row(request, request.applied_at))
        else:
            waiting.append(request_row(request, request.created_at))
    waiting.sort(key=lambda r: (r.at, r.id))
    done.sort(key=lambda r: (r.at, r.id))
    return tuple(waiting), tuple(done)


def _expiring_exceptions(session: Session, now: datetime) -> tuple[ExceptionRow, ...]:
    return tuple(
        ExceptionRow(
            id=rule.id,
            check_id=rule.check_id,
            selector=queries.exception_scope(rule),
            author=rule.author,
            reason=rule.reason,
            expires_at=rule.expires_at,
        )
        for rule in queries.expiring_exceptions(session, now, EXPIRY_HORIZON)
        if rule.expires_at is not None
    )


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
    previous = queries.previous_digest(session, channel, now)
    since = previous.sent_at if previous is not None else None
    cutoff = since if since is not None else now - FIRST_DIGEST_WINDOW
    reported: Mapping[str, Any] = previous.scores if previous is not None else {}

    postures = queries.posture_rows(
        session, list(clusters) if clusters is not None else None, window_start
    )
    names = sorted(postures)
    newest = {name: postures[name][-1] for name in names}
    sources = queries.scan_sources(session, (row.scan_id for row in newest.values()))
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
    "finding_row",
    "record_digest",
    "request_row",
    "resource_label",
]
