"""Measuring one command as a separate process: wall time, CPU time (user + sys) and peak RSS.

Each measurement runs in a fresh ``python`` wrapper process that starts exactly one child and then
reports its own ``getrusage(RUSAGE_CHILDREN)``. ``ru_maxrss`` of children is the maximum over every
child a process has waited for, so only a wrapper with a single child (and its descendants, for a
tool that forks workers) gives that child's peak.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# Runs in the wrapper process: argv = [command as JSON, stdout file, timeout seconds].
_WRAPPER = r"""
import json, os, resource, signal, subprocess, sys, time
command, stdout_path, timeout = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
with open(stdout_path, "wb") as out:
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = child.communicate(timeout=timeout)
        code = child.returncode
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the whole group: tools may fork workers
        _, err = child.communicate()
        code = None
    wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "returncode": code, "wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
    "max_rss_mb": usage.ru_maxrss / 1024, "stderr_tail": err.decode(errors="replace")[-1500:],
}))
"""


@dataclass(frozen=True)
class Run:
    """One measured run of a command."""

    returncode: int | None  # None when it was killed at the timeout
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    stderr_tail: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def measure(command: list[str], stdout: Path | str, timeout: float) -> Run:
    """Run ``command`` once in a fresh wrapper, its standard output going to ``stdout``."""
    wrapper = [sys.executable, "-c", _WRAPPER, json.dumps(command), str(stdout), str(timeout)]
    done = subprocess.run(
        wrapper, capture_output=True, text=True, timeout=timeout + 120, check=True
    )
    return Run(**json.loads(done.stdout))


@dataclass(frozen=True)
class Summary:
    """Best (minimum) and median of each measure over the runs of one command."""

    name: str
    command: list[str]
    runs: int
    wall_best_s: float
    wall_median_s: float
    cpu_best_s: float
    cpu_median_s: float
    rss_best_mb: float
    rss_median_mb: float
    returncodes: list[int | None]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def summarise(name: str, command: list[str], runs: list[Run]) -> Summary:
    walls = [r.wall_s for r in runs]
    cpus = [r.cpu_s for r in runs]
    rss = [r.max_rss_mb for r in runs]
    return Summary(
        name=name,
        command=command,
        runs=len(runs),
        wall_best_s=min(walls),
        wall_median_s=statistics.median(walls),
        cpu_best_s=min(cpus),
        cpu_median_s=statistics.median(cpus),
        rss_best_mb=min(rss),
        rss_median_mb=statistics.median(rss),
        returncodes=[r.returncode for r in runs],
    )


def table(summaries: list[Summary]) -> str:
    """A plain-text table of the summaries (best / median per measure)."""
    header = (
        "command",
        "runs",
        "wall best",
        "wall median",
        "CPU best",
        "CPU median",
        "RSS best",
        "RSS median",
    )
    rows = [header]
    for s in summaries:
        rows.append(
            (
                s.name,
                str(s.runs),
                f"{s.wall_best_s:.2f} s",
                f"{s.wall_median_s:.2f} s",
                f"{s.cpu_best_s:.2f} s",
                f"{s.cpu_median_s:.2f} s",
                f"{s.rss_best_mb:.0f} MiB",
                f"{s.rss_median_mb:.0f} MiB",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
