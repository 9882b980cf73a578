"""Scan messages: the summary posted after a scan (new and changed findings, with their buttons)
and the plain findings list of ``/okeguard findings``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, DividerBlock

from okeguard.bot.slack.blocks_common import (
    MAX_BLOCKS,
    SEVERITY_EMOJI,
    SEVERITY_RANK,
    Message,
    clip_mrkdwn,
    clip_plain,
    code,
    context,
    escape,
    header,
    message,
    pack_lines,
    score_text,
    section,
    severity_counts,
    slack_date,
)
from okeguard.bot.slack.digest_model import FindingRow
from okeguard.checks.model import Finding, Status
from okeguard.checks.registry import get_check
from okeguard.scanning import ScanReport

ACTION_PREVIEW = "okeguard.preview"
ACTION_REQUEST = "okeguard.request"
ACTION_SNOOZE = "okeguard.snooze"
ACTION_ACCEPT = "okeguard.accept"

MESSAGE_CHARS = 400  # a finding's message in a list: enough to say what is wrong
FINDINGS_LIST_SECTIONS = 5  # about 40 findings: a list, not a report
GUIDANCE_HINT = (
    ":information_source: _guidance: no automatic fix, change it by hand (see `okeguard checks`)_"
)


@dataclass(frozen=True)
class _Shown:
    finding: Finding
    changed: bool


def is_actionable(finding: Finding) -> bool:
    """Whether a finding gets fix buttons: an automatic remediation, and open (an ``unknown`` or
    exempt finding cannot be planned)."""
    return finding.remediation != "guidance" and finding.status is Status.OPEN


def finding_actions(fingerprint: str) -> ActionsBlock:
    """The four buttons of an actionable finding; every value is its fingerprint."""
    return ActionsBlock(
        elements=[
            ButtonElement(text="Preview fix", action_id=ACTION_PREVIEW, value=fingerprint),
            ButtonElement(
                text="Request fix", action_id=ACTION_REQUEST, value=fingerprint, style="primary"
            ),
            ButtonElement(text="Snooze 7 days", action_id=ACTION_SNOOZE, value=fingerprint),
            ButtonElement(text="Accept risk…", action_id=ACTION_ACCEPT, value=fingerprint),
        ]
    )


def _check_title(check_id: str) -> str:
    spec = get_check(check_id)
    return spec.title if spec is not None else check_id


def _finding_line(item: _Shown, *, with_cluster: bool) -> str:
    f = item.finding
    tag = "changed" if item.changed else "new"
    status = "" if f.status is Status.OPEN else f" (_{f.status.value}_)"
    where = f"{escape(f.cluster)} · " if with_cluster else ""
    text = clip_mrkdwn(escape(f.message), MESSAGE_CHARS)
    return f"• {where}{code(f.resource.display())} _{tag}_{status} — {text}"


def _sorted_groups(new: Sequence[Finding], changed: Sequence[Finding]) -> list[list[_Shown]]:
    """New and changed findings grouped by check: worst check first, then by check id."""
    items = [_Shown(f, False) for f in new] + [_Shown(f, True) for f in changed]
    items.sort(
        key=lambda i: (-i.finding.severity.rank, i.finding.check_id, i.finding.resource.display())
    )
    groups: dict[str, list[_Shown]] = {}
    for item in items:
        groups.setdefault(item.finding.check_id, []).append(item)
    return sorted(
        groups.values(),
        key=lambda g: (-max(i.finding.severity.rank for i in g), g[0].finding.check_id),
    )


def _group_blocks(
    group: list[_Shown], budget: int, *, with_cluster: bool
) -> tuple[list[Block], int]:
    """The blocks of one check's findings within ``budget`` blocks, and how many were left out
    (nothing is shown when not even the first finding fits)."""
    first = group[0].finding
    worst = max(group, key=lambda i: i.finding.severity.rank).finding.severity
    title = (
        f"{SEVERITY_EMOJI[worst.value]} *{escape(_check_title(first.check_id))}* "
        f"{code(first.check_id)} · {worst.value} · {len(group)} new or changed"
    )
    passive = [i for i in group if not is_actionable(i.finding)]
    active = [i for i in group if is_actionable(i.finding)]
    blocks: list[Block] = []
    hidden_passive = 0
    if passive:
        lines = [_finding_line(i, with_cluster=with_cluster) for i in passive]
        hint = any(i.finding.remediation == "guidance" for i in passive)
        head, hidden_passive = pack_lines(
            lines,
            max_blocks=1,
            title=f"{title}\n{GUIDANCE_HINT}" if hint else title,
            more="and {n} more here",
        )
        blocks += head
    shown = 0
    for item in active:
        line = _finding_line(item, with_cluster=with_cluster)
        if not blocks:  # the check's title goes atop its first finding: one block saved
            line = f"{title}\n{line}"
        if len(blocks) + 2 > budget:
            break
        blocks += [section(line), finding_actions(item.finding.fingerprint)]
        shown += 1
    if not blocks or len(blocks) > budget:
        return [], len(group)
    return blocks, hidden_passive + len(active) - shown


def scan_summary(
    report: ScanReport,
    *,
    new: Sequence[Finding],
    changed: Sequence[Finding],
    unchanged_count: int,
    score: int,
    score_change: int | None,
    cluster_label: str,
) -> Message:
    """The message posted after a scan: counts, score, gaps, then only the new and changed
    findings (worst first, with fix buttons where a fix exists), at most 50 blocks."""
    counts = report.count_by_severity()
    unknown = report.count_by_status().get(Status.UNKNOWN.value, 0)
    summary = [
        f"*Open findings:* {severity_counts(counts)}",
        f"*Posture score:* {score_text(score, score_change, since='the last scan')}",
        f"*Since the last scan:* {len(new)} new · {len(changed)} changed · "
        f"{unchanged_count} unchanged",
    ]
    if unknown:
        summary.append(f":grey_question: {unknown} findings `unknown`: not evaluated, not passing")
    blocks: list[Block] = [
        header(f"okeguard scan · {cluster_label}"),
        section("\n".join(summary)),
        context(
            f"Evaluated {slack_date(report.evaluated_at)} · {report.objects_scanned} objects · "
            f"{len(report.checks_run)} checks · {report.duration_seconds:.1f}s"
        ),
    ]
    if report.incomplete:
        blocks.append(_incomplete_section(report))
    blocks.append(DividerBlock())

    tail_reserve = 2  # the "unchanged" and the "and N more" context blocks
    hidden = 0
    groups = _sorted_groups(new, changed)
    with_cluster = len({f.cluster for f in [*new, *changed]}) > 1
    for group in groups:
        budget = MAX_BLOCKS - tail_reserve - len(blocks)
        group_blocks, left_out = (
            ([], len(group)) if hidden else _group_blocks(group, budget, with_cluster=with_cluster)
        )
        blocks += group_blocks
        hidden += left_out
    if not groups:
        blocks.append(section(":white_check_mark: No new or changed findings since the last scan."))
    if unchanged_count:
        blocks.append(context(f"and {unchanged_count} findings unchanged since the last scan"))
    if hidden:
        blocks.append(
            context(
                f"… and {hidden} more new findings: `okeguard findings list` or `/okeguard findings`"
            )
        )
    text = (
        f"okeguard scan of {cluster_label}: {sum(counts.values())} open "
        f"({counts.get('critical', 0)} critical, {counts.get('high', 0)} high), "
        f"{len(new)} new, {len(changed)} changed; posture {score}/100"
    )
    return message(text, blocks)


def _gap_what(gap: Mapping[str, Any]) -> str:
    return str(gap.get("kind") or gap.get("source") or "?")


def _incomplete_section(report: ScanReport) -> Block:
    gaps = report.incomplete
    kinds = clip_plain(", ".join(dict.fromkeys(_gap_what(g) for g in gaps)), 300)
    title = (
        f":warning: *Incomplete:* {escape(kinds)} — findings for these are `unknown`, not passing"
    )
    lines = []
    for gap in gaps:
        checks = ", ".join(gap.get("checks") or []) or "no check"
        lines.append(
            f"• {escape(_gap_what(gap))} ({escape(str(gap['source']))}): "
            f"{escape(str(gap['reason']))} — affects {escape(checks)}"
        )
    blocks, _ = pack_lines(lines, max_blocks=1, title=title, more="and {n} more gaps")
    return blocks[0]


def _as_row(item: FindingRow | Finding) -> FindingRow:
    if isinstance(item, FindingRow):
        return item
    return FindingRow(
        fingerprint=item.fingerprint,
        check_id=item.check_id,
        severity=item.severity.value,
        cluster=item.cluster,
        resource=item.resource.display(),
        message=item.message,
    )


def finding_row_line(row: FindingRow, *, with_cluster: bool) -> str:
    """One finding on one line: severity, check, resource, message, fingerprint prefix."""
    where = f"{escape(row.cluster)} · " if with_cluster else ""
    return (
        f"{SEVERITY_EMOJI.get(row.severity, ':white_circle:')} {code(row.check_id)} "
        f"{where}{code(row.resource)} — {clip_mrkdwn(escape(row.message), 300)} "
        f"`{escape(row.fingerprint[:12])}`"
    )


def findings_list(rows: Sequence[FindingRow | Finding], *, title: str) -> Message:
    """A capped list of findings (worst first), each with the fingerprint prefix that
    ``/okeguard fix`` takes."""
    ordered = sorted(
        (_as_row(r) for r in rows),
        key=lambda r: (-SEVERITY_RANK.get(r.severity, -1), r.check_id, r.resource),
    )
    with_cluster = len({r.cluster for r in ordered}) > 1
    blocks: list[Block] = [header(title)]
    if not ordered:
        blocks.append(section(":white_check_mark: No findings."))
        return message(f"{title}: no findings", blocks)
    lines = [finding_row_line(r, with_cluster=with_cluster) for r in ordered]
    sections, _ = pack_lines(
        lines,
        max_blocks=FINDINGS_LIST_SECTIONS,
        more="… and {n} more: narrow it with /okeguard findings CLUSTER SEVERITY",
    )
    blocks += sections
    return message(f"{title}: {len(ordered)} findings", blocks)
