"""``--format table`` (the default): findings grouped by severity, then a one-line summary.

Each finding leads with its short fingerprint (the id ``okeguard fix`` takes), its check and its
resource; the message follows, indented. Lines fit the terminal: messages wrap at word
boundaries and long resource names end in an ellipsis (``terminal.terminal_width``: ``COLUMNS``, else
the terminal on stdout; piped output is not wrapped). A report of several clusters starts with
one line per cluster, saying which are complete and why the others are not.

Coloured on a terminal (``NO_COLOR`` and ``--no-color`` respected); plain text otherwise.
"""

from __future__ import annotations

import io
from datetime import datetime

from rich.console import Console
from rich.text import Text

from okeguard.bot.formats.terminal import (
    ellipsize,
    ellipsize_left,
    short_id,
    terminal_width,
    wrap,
)
from okeguard.checks.model import SEVERITIES_DESC, Finding, Severity, Status
from okeguard.scanning import ScanReport

STYLES: dict[str, str] = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
INDENT = "      "


def local_time(value: datetime) -> str:
    """A time in the user's local zone, with the zone named."""
    local = value.astimezone()
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


class _Segments:
    """Text pieces with optional rich styles. Without colour they are simply joined: building a
    rich ``Text`` of a few hundred thousand spans takes a second for a large cluster."""

    def __init__(self, width: int | None) -> None:
        self.parts: list[tuple[str, str | None]] = []
        self.width = width

    def append(self, text: str, style: str | None = None) -> None:
        self.parts.append((text, style))

    def line(self, text: str, style: str | None = None, indent: str = "  ") -> None:
        """One paragraph, wrapped to the width (continuation lines indented)."""
        self.parts.append((wrap(text, self.width, indent, first_indent="") + "\n", style))

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
    head = f"  {short_id(finding.fingerprint)}  {finding.check_id}  "
    where = finding.resource.display()
    if with_cluster:
        where = f"{finding.cluster}: {where}"
    origin = f"  ({finding.origin})" if finding.origin else ""
    width = out.width
    origin_below = resource_below = False
    if width is not None and len(head) + len(where) + len(origin) > width:
        # the resource keeps the line (or the next one, after a long check id); the origin
        # moves below it, and a name too long for the line ends in an ellipsis
        origin_below = bool(origin)
        resource_below = width - len(head) < 16
        room = width - (len(INDENT) if resource_below else len(head))
        where = ellipsize(where, room)
    out.append(head[:2])
    out.append(head[2:].rstrip() if resource_below else head[2:], style="bold")
    if resource_below:
        out.append(f"\n{INDENT}")
    out.append(where)
    if origin and not origin_below:
        out.append(origin, style="dim")
    out.append("\n")
    if origin_below:
        assert finding.origin is not None
        # a path is never broken across lines: its start gives way, the file and line stay
        room = (width or 0) - len(INDENT) - len("at ")
        out.append(f"{INDENT}at {ellipsize_left(finding.origin, room)}\n", style="dim")
    out.append(wrap(finding.message, width, INDENT) + "\n")
    if extra:
        out.append(wrap(extra, width, INDENT) + "\n", style="dim")


def summary_line(report: ScanReport) -> str:
    """``shop-prod: 42 open findings (3 critical, …) · 2 exempt · 0 unknown · complete``."""
    counts = report.count_by_severity()
    status = report.count_by_status()
    total = sum(counts.values())
    parts = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
    detail = f" ({parts})" if parts else ""
    dead = ""
    if report.unreachable:
        clusters = len(report.parts) or 1
        dead = f" · {len(report.unreachable)} of {clusters} clusters unreachable"
    state = "complete" if report.complete else "INCOMPLETE"
    return (
        f"{report.cluster}: {total} open finding{'s' if total != 1 else ''}{detail}"
        f" · {status['exempt']} exempt · {status['unknown']} not evaluated"
        f" · {len(report.checks_run)} checks on {report.objects_scanned} objects{dead} · {state}"
    )


def _clusters(out: _Segments, report: ScanReport) -> None:
    """One line per cluster of a merged report: complete, or INCOMPLETE and why."""
    parts = report.parts
    name_width = max(len(p.cluster) for p in parts)
    out.append("\nClusters:\n", style="bold")
    for part in parts:
        reason = dict(part.unreachable).get(part.cluster)
        if reason is not None:
            state, what, style = "INCOMPLETE", f"unreachable: {reason}", "bold yellow"
        elif not part.complete:
            kinds = ", ".join(dict.fromkeys(str(g["kind"]) for g in part.incomplete))
            unknown = part.count_by_status()["unknown"]
            what = f"{sum(part.count_by_severity().values())} open; not evaluated: {unknown}"
            state, what, style = "INCOMPLETE", f"{what} (could not read {kinds})", "yellow"
        else:
            open_count = sum(part.count_by_severity().values())
            state, what, style = "complete", f"{open_count} open", None
        head = f"  {part.cluster:<{name_width}}  {state:<10}  "
        out.append(wrap(what, out.width, " " * len(head), first_indent=head) + "\n", style=style)


def render(
    report: ScanReport, *, color: bool = False, width: int | None = None, **_: object
) -> str:
    """The table as text. ``width``: columns to fit (0: do not fit; None: the terminal's)."""
    out = _Segments(terminal_width(width))
    several = "clusters" in report.source  # a merged report: findings of several clusters
    source = report.source.get("type", "?")
    when = f"evaluated at {local_time(report.evaluated_at)}"
    out.line(f"okeguard scan of {report.cluster} ({source}, {when})", style="bold")
    if len(report.parts) > 1:
        _clusters(out, report)
    dead = {name for name, _ in report.unreachable}
    if not report.complete:
        for gap in report.incomplete:
            if gap["kind"] is None and len(report.parts) > 1:
                continue  # an unreachable cluster: its line above says why
            checks = ", ".join(gap["checks"]) or "none"
            what = gap["kind"] or "the cluster"
            out.line(
                f"INCOMPLETE: could not read {what} ({gap['reason']}); not evaluated: {checks}",
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
        # the unknown findings of an unreachable cluster are every check: its line says so
        group = [f for f in report.findings if f.status is status and f.cluster not in dead]
        if group:
            out.append(f"\n {title} ", style="bold")
            out.append(f" {len(group)}\n")
            for finding in group:
                extra = f"exempt: {finding.exempt_reason}" if status is Status.EXEMPT else None
                _finding_lines(out, finding, extra, with_cluster=several)
    if report.skipped_kinds:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(report.skipped_kinds.items()))
        out.append("\n")
        out.line(f"Skipped kinds okeguard does not check: {kinds}", style="dim")
    out.append("\n")
    out.append(
        wrap(summary_line(report), out.width, "  ", first_indent=""),
        style="bold" if report.complete else "bold yellow",
    )
    if not color:
        return out.plain() + "\n"
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        width=10_000,  # the lines are fitted above: rich must not wrap them again
        soft_wrap=True,
        highlight=False,
    )
    console.print(out.styled())
    return buffer.getvalue()
