"""``--format markdown``: a summary for pull-request comments (GitHub-flavoured Markdown)."""

from __future__ import annotations

from okeguard.checks.model import SEVERITIES_DESC, Finding, Severity, Status
from okeguard.service import ScanReport

ICONS = {"critical": "🟥", "high": "🟧", "medium": "🟨", "low": "🟦", "info": "⬜"}
# Low and info findings are folded away so the comment leads with what matters.
FOLDED = (Severity.LOW, Severity.INFO)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(findings: list[Finding], with_reason: bool = False) -> list[str]:
    header = "| Check | Resource | Finding |" + (" Reason |" if with_reason else "")
    rule = "|---|---|---|" + ("---|" if with_reason else "")
    rows = [header, rule]
    for f in findings:
        where = f.resource.display() + (f" (`{f.origin}`)" if f.origin else "")
        row = f"| `{f.check_id}` | {_cell(where)} | {_cell(f.message)} |"
        if with_reason:
            row += f" {_cell(f.exempt_reason or '')} |"
        rows.append(row)
    return rows


def render(report: ScanReport, **_: object) -> str:
    counts = report.count_by_severity()
    total = sum(counts.values())
    lines = [
        f"### okeguard: {total} open finding{'s' if total != 1 else ''} in `{report.cluster}`",
        "",
    ]
    if not report.complete:
        for gap in report.incomplete:
            lines.append(
                f"> **Incomplete scan:** could not read {gap['kind']} ({_cell(gap['reason'])})."
            )
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
        if severity in FOLDED:
            lines += [
                f"<details><summary>{title}</summary>",
                "",
                *_table(group),
                "",
                "</details>",
                "",
            ]
        else:
            lines += [f"#### {title}", "", *_table(group), ""]
    exempt = [f for f in report.findings if f.status is Status.EXEMPT]
    if exempt:
        lines += [
            f"<details><summary>Exempt ({len(exempt)})</summary>",
            "",
            *_table(exempt, True),
            "",
            "</details>",
            "",
        ]
    unknown = [f for f in report.findings if f.status is Status.UNKNOWN]
    if unknown:
        lines += [f"#### Not evaluated ({len(unknown)})", "", *_table(unknown), ""]
    lines.append(
        f"<sub>{len(report.checks_run)} checks on {report.objects_scanned} objects · okeguard</sub>"
    )
    return "\n".join(lines) + "\n"
