"""The daily digest message: each cluster's posture and what changed, then the approvals,
exceptions and remediations that need people's attention; at most 50 blocks however large."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import Block, DividerBlock

from okeguard.audit.anchors import Anchor
from okeguard.bot.slack.blocks_common import (
    MAX_BLOCKS,
    SEVERITY_EMOJI,
    Message,
    clip_mrkdwn,
    code,
    context,
    escape,
    header,
    mention,
    message,
    pack_lines,
    score_text,
    section,
    severity_counts,
    slack_date,
)
from okeguard.bot.slack.digest_model import (
    ClusterDigest,
    Digest,
    ExceptionRow,
    FindingRow,
    RequestRow,
)

LIST_CAP = 5  # findings shown per list in a cluster's full view
COMPACT_CAP = 3  # and in its compact view, when there are many clusters
SINCE = "the last digest"


def digest_finding_line(row: FindingRow) -> str:
    return (
        f"{SEVERITY_EMOJI.get(row.severity, ':white_circle:')} {code(row.check_id)} "
        f"{code(row.resource)} — {clip_mrkdwn(escape(row.message), 160)}"
    )


def request_line(row: RequestRow) -> str:
    """One remediation request: id, remediation, where, who, and when."""
    what = f"#{row.id} *{escape(row.remediation)}* on {escape(row.cluster)} ({code(row.check_id)})"
    if row.state == "applied":
        by = f" — approved by {mention(row.approver)}" if row.approver else ""
        return f"{what}{by}, applied {slack_date(row.at)}"
    tail = f", expires {slack_date(row.expires_at)}" if row.expires_at else ""
    return f"{what} — {escape(row.state)}, asked by {mention(row.requester)} {slack_date(row.at)}{tail}"


def exception_line(row: ExceptionRow) -> str:
    return (
        f"#{row.id} {code(row.check_id)} for {escape(row.selector)} — by {mention(row.author)}, "
        f"expires {slack_date(row.expires_at)}: _{clip_mrkdwn(escape(row.reason), 200)}_"
    )


def _capped(title: str, rows: Sequence[FindingRow], cap: int) -> list[str]:
    if not rows:
        return [f"*{title}:* none"]
    lines = [f"*{title}* ({len(rows)})"] + [f"• {digest_finding_line(r)}" for r in rows[:cap]]
    if len(rows) > cap:
        lines.append(f"_and {len(rows) - cap} more_")
    return lines


def _cluster_head(c: ClusterDigest) -> str:
    lines = [
        f"*{escape(c.cluster)}* · posture {score_text(c.score, c.score_change, since=SINCE)}",
        severity_counts(c.by_severity),
    ]
    if c.incomplete:
        what = clip_mrkdwn(escape(", ".join(c.incomplete)), 400)
        lines.append(
            f":warning: *Incomplete:* {what} — findings for these are `unknown`, not passing"
        )
    return "\n".join(lines)


def _cluster_full(c: ClusterDigest) -> list[Block]:
    return [
        section(_cluster_head(c)),
        section(
            "\n".join(
                _capped("New since the last digest", c.new, LIST_CAP)
                + _capped("Resolved", c.resolved, LIST_CAP)
            )
        ),
        section("\n".join(_capped("Top risks", c.top_risks, LIST_CAP))),
        DividerBlock(),
    ]


def _cluster_compact(c: ClusterDigest) -> Block:
    lines = [_cluster_head(c)]
    lines += _capped("New", c.new, COMPACT_CAP)
    lines += _capped("Resolved", c.resolved, COMPACT_CAP)
    lines += _capped("Top risks", c.top_risks, COMPACT_CAP)
    return section("\n".join(lines))


def _cluster_line(c: ClusterDigest) -> str:
    gap = " :warning: incomplete" if c.incomplete else ""
    return (
        f"*{escape(c.cluster)}* {score_text(c.score, c.score_change, since=SINCE)} · "
        f"{severity_counts(c.by_severity)} · {len(c.new)} new, {len(c.resolved)} resolved{gap}"
    )


def _clusters(clusters: Sequence[ClusterDigest], budget: int) -> list[Block]:
    """The clusters in ``budget`` blocks: full views, else compact ones, else one line each."""
    if len(clusters) * 4 - 1 <= budget:
        return [b for c in clusters for b in _cluster_full(c)][:-1]  # the tail has a divider
    if len(clusters) <= budget:
        return [_cluster_compact(c) for c in clusters]
    worst_first = sorted(clusters, key=lambda c: (c.score, c.cluster))
    blocks, _ = pack_lines(
        [_cluster_line(c) for c in worst_first], max_blocks=budget, more="and {n} more clusters"
    )
    return list(blocks)


def audit_head_context(anchor: Anchor) -> Block:
    """The audit chain's head as an anchor: short to read, in full (as code) to copy and keep."""
    return context(
        f":link: Audit head {code(anchor.short)}",
        f"anchor {code(str(anchor))} — keep it: `okeguard audit verify --head` proves later "
        "that no audit row up to it was deleted or rewritten",
    )


def digest_message(digest: Digest, *, chart_attached: bool) -> Message:
    """The daily digest: per cluster score, counts, new/resolved and top risks; then pending
    approvals, exceptions expiring this week and remediations applied (each capped)."""
    since = f"Since {slack_date(digest.since)}" if digest.since else "First digest for this channel"
    head: list[Block] = [
        header("okeguard daily digest"),
        context(f"{since} · generated {slack_date(digest.generated_at)}"),
    ]
    tail: list[Block] = [DividerBlock()]
    for title, lines, more in (
        (
            ":hourglass_flowing_sand: *Pending approvals*",
            [request_line(r) for r in digest.pending_approvals],
            "and {n} more: /okeguard approvals",
        ),
        (
            ":calendar: *Exceptions expiring this week*",
            [exception_line(r) for r in digest.expiring_exceptions],
            "and {n} more: /okeguard exceptions list",
        ),
        (
            ":hammer_and_wrench: *Remediations applied*",
            [request_line(r) for r in digest.remediations_applied],
            "and {n} more: okeguard remediations list",
        ),
    ):
        if lines:
            blocks, _ = pack_lines(
                [f"• {line}" for line in lines], max_blocks=1, title=title, more=more
            )
            tail += blocks
        else:
            tail.append(section(f"{title}: none"))
    if chart_attached:
        tail.append(context(":chart_with_upwards_trend: The 30-day trend chart is attached."))
    if digest.audit_head is not None:
        tail.append(audit_head_context(digest.audit_head))
    if not digest.clusters:
        body: list[Block] = [section("No cluster has been scanned yet.")]
    else:
        body = _clusters(digest.clusters, MAX_BLOCKS - len(head) - len(tail))
    scores = ", ".join(f"{c.cluster} {c.score}/100" for c in digest.clusters[:5])
    more = f" and {len(digest.clusters) - 5} more" if len(digest.clusters) > 5 else ""
    text = (
        f"okeguard digest: {scores or 'no clusters'}{more}; "
        f"{len(digest.pending_approvals)} pending approvals"
    )
    return message(text, head + body + tail)
