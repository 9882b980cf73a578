"""``--format markdown``: a summary for pull-request comments (GitHub-flavoured Markdown).

The heading names the cluster (or clusters); a report of several clusters adds a table of them,
complete or not and why, and a Cluster column to every findings table.
"""

from __future__ import annotations

from okeguard.checks.model import SEVERITIES_DESC, Finding, Severity, Status
from okeguard.scanning import ScanReport

ICONS: dict[str, str] = {
    Severity.CRITICAL: "🟥",
    Severity.HIGH: "🟧",
    Severity.MEDIUM: "🟨",
    Severity.LOW: "🟦",
    Severity.INFO: "⬜",
}
# Low and info findings are folded away so the comment leads with what matters.
FOLDED = (Severity.LOW, Severity.INFO)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """Inline code that a backtick in ``text`` cannot end early."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _table(
    findings: list[Finding], with_reason: bool = False, with_cluster: bool = False
) -> list[str]:
    header = "| Check | Resource | Finding |" + (" Reason |" if with_reason else "")
    rule = "|---|---|---|" + ("---|" if with_reason else "")
    if with_cluster:
        header, rule = "| Cluster " + header, "|---" + rule
    rows = [header, rule]
    for f in findings:
        where = f.resource.display() + (f" (`{f.origin}`)" if f.origin else "")
        row = f"| `{f.check_id}` | {_cell(where)} | {_cell(f.message)} |"
        if with_cluster:
            row = f"| {_cell(_code(f.cluster))} " + row
        if with_reason:
            row += f" {_cell(f.exempt_reason or '')} |"
        rows.append(row)
    return rows


def _clusters(report: ScanReport) -> list[str]:
    """One row per cluster of a merged report: its open findings, complete or not and why."""
    rows = ["| Cluster | Open | Scan |", "|---|---:|---|"]
    for part in report.parts:
        reason = dict(part.unreachable).get(part.cluster)
        if reason is not None:
            state, count = f"⚠️ **incomplete**: unreachable ({reason})", "-"
        elif not part.complete:
            kinds = ", ".join(dict.fromkeys(str(g["kind"]) for g in part.incomplete))
            state = f"⚠️ **incomplete**: could not read {kinds}" if kinds else "⚠️ **incomplete**"
            count = str(sum(part.count_by_severity().values()))
        else:
            state, count = "complete", str(sum(part.count_by_severity().values()))
        rows.append(f"| {_cell(_code(part.cluster))} | {count} | {_cell(state)} |")
    return [*rows, ""]


def render(report: ScanReport, **_: object) -> str:
    counts = report.count_by_severity()
    total = sum(counts.values())
    several = len(report.parts) > 1
    names = [p.cluster for p in report.parts] if several else [report.cluster]
    lines = [
        f"### okeguard: {total} open finding{'s' if total != 1 else ''}"
        f" in {', '.join(_code(name) for name in names)}",
        "",
    ]
    if several:
        lines += _clusters(report)
    if not report.complete:
        for gap in report.incomplete:
            if gap["kind"] is None and several:
                continue  # an unreachable cluster: the clusters table says why
            what = gap["kind"] or "the cluster"
            lines.append(f"> **Incomplete scan:** could not read {what} ({_cell(gap['reason'])}).")
        lines.append("")
    lines += ["| Severity | Open |", "|---|---:|"]
    lines += [f"| {ICONS[sev]} {sev} | {n} |" for sev, n in counts.items()]
    lines.append("")
    open_findings = report.open_findings
    for severity in SEVERITIES_DESC:
        group = [f for f in open_findings if f.severity is severity]
        if not group:
            continue
        title = f"{ICONS[severity.value]} {severity.value.capitalize()} ({len(group)})"
        table = _table(group, with_cluster=several)
        if severity in FOLDED:
            lines += [f"<details><summary>{title}</summary>", "", *table, "", "</details>", ""]
        else:
            lines += [f"#### {title}", "", *table, ""]
    exempt = [f for f in report.findings if f.status is Status.EXEMPT]
    if exempt:
        lines += [
            f"<details><summary>Exempt ({len(exempt)})</summary>",
            "",
            *_table(exempt, True, with_cluster=several),
            "",
            "</details>",
            "",
        ]
    # the unknown findings of an unreachable cluster are every check: its row says so
    dead = {name for name, _ in report.unreachable}
    unknown = [f for f in report.findings if f.status is Status.UNKNOWN and f.cluster not in dead]
    if unknown:
        table = _table(unknown, with_cluster=several)
        lines += [f"#### Not evaluated ({len(unknown)})", "", *table, ""]
    lines.append(
        f"<sub>{len(report.checks_run)} checks on {report.objects_scanned} objects · okeguard</sub>"
    )
    return "\n".join(lines) + "\n"
