"""The digest's trend chart: open findings by severity over the last 30 days, one panel per
cluster, as a PNG for Slack's file upload.

matplotlib is imported inside :func:`trend_png` (it is slow to import and only the digest needs
it), and only its object-oriented API is used: no pyplot, so no global figure state is shared
between threads of the bot.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import date, timedelta

from okeguard.bot.slack.digest_model import Digest
from okeguard.checks.model import SEVERITY_NAMES, Severity

TITLE = "Open findings by severity, last 30 days"
MAX_PANELS = 6
COLUMNS = 3
DPI = 100
DAYS = 30
TICK_EVERY = 7  # days between date labels, counted back from the newest day
SEVERITY_COLOURS: Mapping[str, str] = {
    Severity.CRITICAL: "darkred",
    Severity.HIGH: "orange",
    Severity.MEDIUM: "gold",
    Severity.LOW: "steelblue",
    Severity.INFO: "lightgray",
}


def _total(series: Mapping[date, Mapping[str, int]]) -> int:
    """Open findings on the newest day: how clusters are picked when there are too many."""
    return sum(series[max(series)].values()) if series else 0


def trend_png(digest: Digest, *, width_px: int = 1200, height_px: int = 600) -> bytes | None:
    """The trend of ``digest`` as a PNG of exactly ``width_px`` by ``height_px`` pixels, or None
    when there is no trend data. With more than six clusters, the six with the most open
    findings today are drawn (the title says so). The same digest always gives the same bytes.
    """
    series = {cluster: days for cluster, days in digest.trend.items() if days}
    if not series:
        return None

    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    chosen = sorted(series, key=lambda c: (-_total(series[c]), c))[:MAX_PANELS]
    title = TITLE
    if len(series) > MAX_PANELS:
        title += f" ({MAX_PANELS} of {len(series)} clusters, those with the most findings)"
    panels = sorted(chosen)
    columns = min(len(panels), COLUMNS)
    rows = math.ceil(len(panels) / columns)

    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    severities = list(SEVERITY_NAMES)  # worst at the bottom of each stack: easiest to read
    # Every panel spans the same 30 days, as day numbers (0 = the oldest) with date labels.
    last_day = max(max(days) for days in series.values())
    first_day = last_day - timedelta(days=DAYS - 1)
    ticks = list(range(DAYS - 1, -1, -TICK_EVERY))[::-1]
    tick_labels = [(first_day + timedelta(days=t)).strftime("%b %d") for t in ticks]
    for index, cluster in enumerate(panels):
        ax = axes[index // columns][index % columns]
        days = sorted(d for d in series[cluster] if d >= first_day)
        ax.stackplot(
            [(d - first_day).days for d in days],
            *([series[cluster][d].get(s, 0) for d in days] for s in severities),
            labels=severities,
            colors=[SEVERITY_COLOURS[s] for s in severities],
        )
        ax.set_title(cluster, fontsize="medium")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0, DAYS - 1)
        ax.set_xticks(ticks, tick_labels, fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)

    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(severities))
    figure.suptitle(title)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
