"""Are the reports of two okeguard source trees identical on the synthetic cluster?

Scans the synthetic data set (manifests and snapshot, as ``benchmarks/scan_scale.py`` writes
them) with this checkout and with another source tree (``--tree``, e.g. an export of the commit
before a change), each in its own process, and compares the ``okeguard.scan/v1`` JSON reports:
every finding (check, severity, status, resource, message, fingerprint, origin...), in order,
and the summary. The time of evaluation is fixed (the data's reference time), so that ages in
messages ("rotated 404 days ago") do not change between the two runs; the generation time and
the duration are left out of the comparison.

Examples:
  git archive HEAD~3 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
  .venv/bin/python benchmarks/compare_reports.py --tree /tmp/before
  .venv/bin/python benchmarks/compare_reports.py --tree /tmp/before --scale 0.1 --source snapshot
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from synthetic import Sizes
from synthetic.base import REFERENCE_TIME
from write_data import prepare

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Runs in a fresh interpreter whose okeguard comes from PYTHONPATH: argv = [source, path, out].
_SCAN = r"""
import sys
from datetime import datetime
from okeguard.bot.formats import renderer
from okeguard.service import ScanRequest, run_scan
source, path, out, now = sys.argv[1:5]
request = ScanRequest(
    snapshot=path if source == "snapshot" else None,
    manifests=(path,) if source == "manifests" else (),
    now=datetime.fromisoformat(now),
)
text = renderer("json")(run_scan(request), color=False)
with open(out, "wb") as f:
    f.write(text if isinstance(text, bytes) else text.encode())
"""


def scan(tree: Path, source: str, path: Path, out: Path) -> dict[str, Any]:
    """The report of ``tree``'s okeguard on ``path``, without its times."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", _SCAN, source, str(path), str(out), REFERENCE_TIME.isoformat()]
    subprocess.run(command, env=env, check=True, cwd="/")
    report: dict[str, Any] = json.loads(out.read_bytes())
    for key in ("generated_at", "evaluated_at"):
        report.pop(key, None)
    report["summary"].pop("duration_seconds", None)
    return report


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two reports, in a few lines (none: identical)."""
    if before == after:
        return []
    out = [f"top-level key {key!r} differs" for key in before if before.get(key) != after.get(key)]
    old = {f["fingerprint"]: f for f in before["findings"]}
    new = {f["fingerprint"]: f for f in after["findings"]}
    out.append(f"findings only before: {len(old.keys() - new.keys())}")
    out.append(f"findings only after: {len(new.keys() - old.keys())}")
    changed = [key for key in old.keys() & new.keys() if old[key] != new[key]]
    out.append(f"findings changed: {len(changed)}")
    for key in changed[:3]:
        fields = {
            k: (old[key].get(k), new[key].get(k))
            for k in old[key]
            if old[key].get(k) != new[key].get(k)
        }
        out.append(f"  {old[key]['check_id']} {key}: {fields}")
    if not changed and old.keys() == new.keys() and before["findings"] != after["findings"]:
        out.append("the same findings in another order")
    return out


def compare(
    tree: Path,
    data_root: Path,
    manifests: Path,
    snapshot: Path,
    sources: list[str],
    after_tree: Path = ROOT,
) -> dict[str, Any]:
    """Compare the reports of ``tree`` and ``after_tree`` (default: this checkout) for each
    source; returns {source: {identical, findings, fingerprints, differences}}."""
    results: dict[str, Any] = {}
    for source in sources:
        path = snapshot if source == "snapshot" else manifests
        before = scan(tree, source, path, data_root / f"report-{source}-before.json")
        after = scan(after_tree, source, path, data_root / f"report-{source}-after.json")
        found = differences(before, after)
        results[source] = {
            "identical": not found,
            "findings": len(after["findings"]),
            "fingerprints": len({f["fingerprint"] for f in after["findings"]}),
            "differences": found,
        }
    return results


def describe(results: dict[str, Any], tree: Path, after_tree: Path = ROOT) -> str:
    lines = []
    for source, result in results.items():
        verdict = "IDENTICAL" if result["identical"] else "DIFFERENT"
        lines.append(
            f"{verdict}  {source} reports of {after_tree} and {tree}: {result['findings']:,} "
            f"findings, {result['fingerprints']:,} fingerprints"
        )
        lines.extend(f"    {line}" for line in result["differences"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, required=True, help="the other okeguard source tree")
    parser.add_argument(
        "--after", type=Path, default=ROOT, help="the tree to compare with it (this checkout)"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 10,000 workloads (default)")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where the data is")
    parser.add_argument(
        "--source", choices=("manifests", "snapshot"), action="append", help="default: both"
    )
    args = parser.parse_args(argv)
    data = prepare(Sizes.at_scale(args.scale), args.seed, args.out)
    sources = args.source or ["manifests", "snapshot"]
    tree, after = args.tree.resolve(), args.after.resolve()
    results = compare(tree, data.root, data.manifests, data.snapshot, sources, after)
    print(describe(results, tree, after))
    return 0 if all(r["identical"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
