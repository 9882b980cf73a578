"""Scan-at-scale benchmark: okeguard on a synthetic 10,000-workload cluster, and checkov beside it.

Generates a deterministic synthetic cluster (``synthetic/``), writes it as a directory of
manifests (one multi-document YAML file per namespace) and as an ``okeguard.snapshot/v1`` file,
then times the real ``okeguard scan`` command on both, each run a separate process, reporting
wall time, CPU time and peak RSS (best and median of ``--repeat`` runs). When checkov is found it
scans the same manifests for a side-by-side ratio.

Examples:
  /work/venv/bin/python benchmarks/scan_scale.py
  /work/venv/bin/python benchmarks/scan_scale.py --scale 0.1 --checkov /work/checkov-venv/bin/checkov
  /work/venv/bin/python benchmarks/scan_scale.py --no-checkov --json benchmarks/out/results.json
  /work/venv/bin/python benchmarks/scan_scale.py --profile   # cProfile of each okeguard command
  /work/venv/bin/python benchmarks/scan_scale.py --compare-tree /tmp/before   # same reports?

``--compare-tree DIR`` also scans the data with the okeguard source tree in DIR (e.g. an export
of the commit before a change) and with this checkout's, at a fixed evaluation time, and says
whether the JSON reports (every finding, fingerprint and the summary) are identical
(``compare_reports.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import Run, Summary, measure, summarise, table
from synthetic import Sizes
from write_data import DataSet, prepare

HERE = Path(__file__).resolve().parent
TARGET_WALL_S = 2.0
TARGET_RSS_MB = 400.0
TARGET_CHECKOV_RATIO = 10.0


def okeguard_commands(okeguard: str, data: DataSet) -> dict[str, tuple[list[str], Path | str]]:
    """name -> (command, where its standard output goes)."""
    snap = ["scan", "--snapshot", str(data.snapshot)]
    return {
        "okeguard --version (startup)": ([okeguard, "--version"], os.devnull),
        "scan --snapshot, json": (
            [okeguard, *snap, "--format", "json", "-o", os.devnull],
            os.devnull,
        ),
        "scan --snapshot, table": (
            [okeguard, *snap, "--format", "table", "-o", str(data.root / "report.txt")],
            os.devnull,
        ),
        "scan --snapshot, sarif": (
            [okeguard, *snap, "--format", "sarif", "-o", str(data.root / "report.sarif")],
            os.devnull,
        ),
        "scan --manifests, json": (
            [
                okeguard,
                "scan",
                "--manifests",
                str(data.manifests),
                "--format",
                "json",
                "-o",
                os.devnull,
            ],
            os.devnull,
        ),
    }


def checkov_command(checkov: str, data: DataSet) -> tuple[list[str], Path]:
    command = [checkov, "-d", str(data.manifests), "--framework", "kubernetes"]
    command += ["--quiet", "--compact", "-o", "json", "--skip-download"]
    return command, data.root / "checkov.json"


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
    }


def tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else "unknown"


def source_state() -> dict[str, Any]:
    """The okeguard commit measured, and which of its files had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True
        )
        return done.stdout.rstrip()  # not strip(): porcelain lines start with a space

    changed = [line[3:] for line in git("status", "--porcelain", "--", "okeguard").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "uncommitted_okeguard_files": changed,
    }


def run_round_robin(
    commands: dict[str, tuple[list[str], Path | str]], repeat: int, timeout: float
) -> dict[str, list[Run]]:
    """Run every command ``repeat`` times, interleaved, so a burst of other load hits all alike."""
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    for round_index in range(repeat):
        for name, (command, stdout) in commands.items():
            run = measure(command, stdout, timeout)
            runs[name].append(run)
            status = "TIMEOUT" if run.timed_out else f"exit {run.returncode}"
            print(
                f"  [{round_index + 1}/{repeat}] {name}: {run.wall_s:.2f} s wall, {run.cpu_s:.2f} s CPU, "
                f"{run.max_rss_mb:.0f} MiB, {status}",
                file=sys.stderr,
            )
            if run.returncode not in (0, 1):  # 1 = findings (okeguard with --fail-on, checkov)
                print(f"    stderr: {run.stderr_tail.strip()[-600:]}", file=sys.stderr)
    return runs


def findings_summary(data: DataSet, with_checkov: bool) -> dict[str, Any]:
    """Counts from the reports the timed runs wrote, to show both tools did the work."""
    out: dict[str, Any] = {}
    sarif = data.root / "report.sarif"
    if sarif.exists():
        results = json.loads(sarif.read_bytes())["runs"][0]["results"]
        out["okeguard_findings"] = len(results)
    report = data.root / "checkov.json"
    if with_checkov and report.exists() and report.stat().st_size:
        try:
            parsed = json.loads(report.read_bytes())
        except ValueError:
            return out
        for item in parsed if isinstance(parsed, list) else [parsed]:
            summary = item.get("summary") or {}
            out["checkov_failed"] = out.get("checkov_failed", 0) + int(summary.get("failed", 0))
            out["checkov_passed"] = out.get("checkov_passed", 0) + int(summary.get("passed", 0))
    return out


def profile(
    okeguard: str, commands: dict[str, tuple[list[str], Path | str]], data: DataSet
) -> None:
    """Write a cProfile of each okeguard scan command and print its top functions."""
    import pstats

    directory = data.root / "profiles"
    directory.mkdir(exist_ok=True)
    for name, (command, _) in commands.items():
        if "scan" not in command:
            continue
        slug = name.replace("scan --", "").replace(", ", "-")
        path = directory / f"{slug}.prof"
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(path), okeguard, *command[1:]], check=True
        )
        print(f"\n=== {name}: {path}")
        stats = pstats.Stats(str(path))
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1 = 10,000 workloads (default); 0.1 = 1,000"
    )
    parser.add_argument(
        "--seed", type=int, default=20261127, help="RNG seed of the synthetic cluster"
    )
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where data and reports go")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per okeguard command (default 3)"
    )
    parser.add_argument(
        "--okeguard", help="okeguard executable (default: next to this Python, else PATH)"
    )
    parser.add_argument("--checkov", help="checkov executable (default: checkov on PATH)")
    parser.add_argument("--no-checkov", action="store_true", help="skip the checkov comparison")
    parser.add_argument("--checkov-repeat", type=int, default=1, help="runs of checkov (default 1)")
    parser.add_argument(
        "--checkov-timeout", type=float, default=2400, help="seconds (default 2400)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per okeguard run")
    parser.add_argument("--regenerate", action="store_true", help="rewrite the data even if cached")
    parser.add_argument("--profile", action="store_true", help="also cProfile each okeguard scan")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument(
        "--compare-tree",
        type=Path,
        help="another okeguard source tree: check that its reports equal this checkout's",
    )
    parser.add_argument(
        "--compare-after",
        type=Path,
        help="the tree to compare with --compare-tree's (default: this checkout)",
    )
    args = parser.parse_args(argv)

    okeguard = args.okeguard or shutil.which("okeguard", path=str(Path(sys.executable).parent))
    okeguard = okeguard or shutil.which("okeguard")
    if not okeguard:
        parser.error(
            "okeguard not found: pass --okeguard PATH or run with the okeguard venv's Python"
        )
    checkov = None if args.no_checkov else (args.checkov or shutil.which("checkov"))

    sizes = Sizes.at_scale(args.scale)
    started = datetime.now(UTC)
    data = prepare(sizes, args.seed, args.out, regenerate=args.regenerate)
    print(f"data: {data.describe()}", file=sys.stderr)

    commands = okeguard_commands(okeguard, data)
    source_before = source_state()
    load_before = os.getloadavg()
    print(f"okeguard: {args.repeat} interleaved rounds", file=sys.stderr)
    runs = run_round_robin(commands, args.repeat, args.timeout)
    summaries: list[Summary] = [summarise(name, commands[name][0], runs[name]) for name in commands]
    checkov_summary = None
    if checkov:
        command, stdout = checkov_command(checkov, data)
        print(
            f"checkov: {args.checkov_repeat} run(s), timeout {args.checkov_timeout:.0f} s",
            file=sys.stderr,
        )
        checkov_runs = run_round_robin(
            {"checkov -d (kubernetes)": (command, stdout)},
            args.checkov_repeat,
            args.checkov_timeout,
        )
        checkov_summary = summarise(
            "checkov -d (kubernetes)", command, checkov_runs["checkov -d (kubernetes)"]
        )
        summaries.append(checkov_summary)
    load_after = os.getloadavg()

    by_name = {s.name: s for s in summaries}
    snapshot_json = by_name["scan --snapshot, json"]
    manifests_json = by_name["scan --manifests, json"]
    targets: dict[str, Any] = {
        "snapshot_json_wall_best_s": {"value": snapshot_json.wall_best_s, "target": TARGET_WALL_S},
        # ru_maxrss is in KiB: the table shows MiB, the target is in MB (10^6 bytes)
        "snapshot_json_rss_best_mb": {
            "value": snapshot_json.rss_best_mb * 1.048576,
            "target": TARGET_RSS_MB,
        },
    }
    for item in targets.values():
        item["met"] = item["value"] <= item["target"]
    if checkov_summary is not None:
        timed_out = any(code is None for code in checkov_summary.returncodes)
        ratio = checkov_summary.wall_median_s / manifests_json.wall_median_s
        targets["checkov_wall_ratio_median"] = {
            "value": ratio,
            "target": TARGET_CHECKOV_RATIO,
            "met": ratio >= TARGET_CHECKOV_RATIO,
            "lower_bound": timed_out,  # checkov was killed at the timeout: the real ratio is larger
            "cpu_ratio_median": checkov_summary.cpu_median_s / manifests_json.cpu_median_s,
        }

    print()
    print(f"okeguard scan at scale {args.scale:g}: {data.describe()}")
    runs_text = f"{args.repeat} runs" + (f", checkov {args.checkov_repeat}" if checkov else "")
    load = f"1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    print(f"best / median of {runs_text}; {load}")
    print(table(summaries))
    print()
    for name, item in targets.items():
        bound = " (lower bound: checkov timed out)" if item.get("lower_bound") else ""
        print(
            f"{'PASS' if item['met'] else 'MISS'}  {name}: {item['value']:.2f} (target {item['target']:g}){bound}"
        )
    counts = findings_summary(data, checkov is not None)
    if counts:
        print("reports: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    comparison = None
    if args.compare_tree:
        from compare_reports import compare, describe

        tree = args.compare_tree.resolve()
        after = (args.compare_after or HERE.parent).resolve()
        sources = ["manifests", "snapshot"]
        comparison = compare(tree, data.root, data.manifests, data.snapshot, sources, after)
        print(describe(comparison, tree, after))

    if args.profile:
        profile(okeguard, commands, data)

    if args.json:
        result = {
            "date": started.strftime("%Y-%m-%d"),
            "started_at": started.isoformat(timespec="seconds"),
            "duration_s": round(time.time() - started.timestamp(), 1),
            "machine": machine(),
            "load_average_1m": {"before": load_before[0], "after": load_after[0]},
            "okeguard_version": tool_version([okeguard, "--version"]),
            "okeguard_command": okeguard,
            "okeguard_source": source_before,
            "okeguard_source_changed_during_run": source_state() != source_before,
            "checkov_version": tool_version([checkov, "--version"]) if checkov else None,
            "scale": args.scale,
            "seed": args.seed,
            "repeat": args.repeat,
            "checkov_repeat": args.checkov_repeat if checkov else 0,
            "data": data.to_dict(),
            "results": [s.to_dict() for s in summaries],
            "targets": targets,
            "reports": counts,
            "report_comparison": comparison,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
