"""``--format table`` (the default): findings grouped by severity, then a one-line summary.

Coloured on a terminal (``NO_COLOR`` and ``--no-color`` respected); plain text otherwise.
"""

from __future__ import annotations

import io
from datetime import datetime

from rich.console import Console
from rich.text import Text

from okeguard.checks.model import SEVERITIES_DESC, Finding, Status
from okeguard.service import ScanReport

STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def local_time(value: datetime) -> str:
    """A time in the user's local zone, with the zone named."""
    local = value.astimezone()
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


class _Segments:
    """Text pieces with optional rich styles. Without colour they are simply joined: building a
    rich ``Text`` of a few hundred thousand spans takes a second for a large cluster."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str | None]] = []

    def append(self, text: str, style: str | None = None) -> None:
        self.parts.append((text, style))

    def plain(self) -> str:
        return "".join(text for text, _ in self.parts)

    def styled(self) -> Text:
        text = Text()
        for part, style in self.parts:
            text.append(part, style)
        return text


def _finding_lines(
    out: _Segments, finding: Finding, extra: str | None = None, *, with_cluster: bool = False
) -> None:
    out.append("  ")
    out.append(finding.check_id, style="bold")
    out.append("  ")
    if with_cluster:
        out.append(f"{finding.cluster}: ", style="dim")
    out.append(finding.resource.display())
    if finding.origin:
        out.append(f"  ({finding.origin})", style="dim")
    out.append("\n      ")
    out.append(finding.message)
    if extra:
        out.append(f"\n      {extra}", style="dim")
    out.append("\n")


def summary_line(report: ScanReport) -> str:
    """``shop-prod: 42 open findings (3 critical, …) · 2 exempt · 0 unknown · complete``."""
    counts = report.count_by_severity()
    status = report.count_by_status()
    total = sum(counts.values())
    parts = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
    detail = f" ({parts})" if parts else ""
    state = "complete" if report.complete else "INCOMPLETE"
    return (
        f"{report.cluster}: {total} open finding{'s' if total != 1 else ''}{detail}"
        f" · {status['exempt']} exempt · {status['unknown']} not evaluated"
        f" · {len(report.checks_run)} checks on {report.objects_scanned} objects · {state}"
    )


def render(
    report: ScanReport, *, color: bool = False, width: int | None = None, **_: object
) -> str:
    out = _Segments()
    several = "clusters" in report.source  # a merged report: findings of several clusters
    source = report.source.get("type", "?")
    when = f"evaluated at {local_time(report.evaluated_at)}"
    out.append(f"okeguard scan of {report.cluster} ({source}, {when})\n", style="bold")
    if not report.complete:
        for gap in report.incomplete:
            checks = ", ".join(gap["checks"]) or "none"
            out.append(
                f"INCOMPLETE: could not read {gap['kind']} ({gap['reason']}); not evaluated: {checks}\n",
                style="bold yellow",
            )
    open_findings = report.open_findings
    for severity in SEVERITIES_DESC:
        group = [f for f in open_findings if f.severity is severity]
        if not group:
            continue
        out.append("\n")
        out.append(f" {severity.value.upper()} ", style=STYLES[severity.value])
        out.append(f" {len(group)}\n")
        for finding in group:
            _finding_lines(out, finding, with_cluster=several)
    for status, title in ((Status.EXEMPT, "EXEMPT"), (Status.UNKNOWN, "NOT EVALUATED")):
        group = [f for f in report.findings if f.status is status]
        if group:
            out.append(f"\n {title} ", style="bold")
            out.append(f" {len(group)}\n")
            for finding in group:
                extra = f"exempt: {finding.exempt_reason}" if status is Status.EXEMPT else None
                _finding_lines(out, finding, extra, with_cluster=several)
    if report.skipped_kinds:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(report.skipped_kinds.items()))
        out.append(f"\nSkipped kinds okeguard does not check: {kinds}\n", style="dim")
    out.append("\n")
    out.append(summary_line(report), style="bold" if report.complete else "bold yellow")
    if not color:
        return out.plain() + "\n"
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        width=width or 10_000,
        soft_wrap=width is None,
        highlight=False,
    )
    console.print(out.styled())
    return buffer.getvalue()
