"""Previewing a fix on a large cluster: ``okeguard fix FINDING --snapshot`` at 10,000 workloads.

A preview locates the finding (a scan of the whole snapshot, as ``okeguard scan`` does) and
plans it (a pure function of the finding and the inventory). This benchmark times the preview of
each Kubernetes remediation beside the plain scan of the same snapshot, so the planning's own
cost shows as the difference. Each run is a separate process (best and median of ``--repeat``).

Examples:
  /work/venv/bin/python benchmarks/fix_scale.py
  /work/venv/bin/python benchmarks/fix_scale.py --scale 0.1 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from measure import measure, summarise, table
from synthetic import Sizes
from write_data import prepare

HERE = Path(__file__).resolve().parent
CHECKS = ("k8s.run-as-root", "k8s.missing-network-policy", "k8s.legacy-service-account-token")


def first_open(okeguard: str, snapshot: Path, check_id: str) -> str:
    """The fingerprint of the first open finding of ``check_id`` in the snapshot."""
    done = subprocess.run(
        [okeguard, "scan", "--snapshot", str(snapshot), "--check", check_id, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    return next(f["fingerprint"] for f in report["findings"] if f["status"] == "open")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 10,000 workloads")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()
    okeguard = shutil.which("okeguard", path=str(Path(sys.executable).parent)) or "okeguard"
    data = prepare(Sizes.at_scale(args.scale), args.seed, args.out)
    snapshot = data.snapshot
    commands = {
        "scan --snapshot --format json": [
            okeguard,
            "scan",
            "--snapshot",
            str(snapshot),
            "--format",
            "json",
        ]
    }
    for check_id in CHECKS:
        fingerprint = first_open(okeguard, snapshot, check_id)
        commands[f"fix ({check_id}) --format json"] = [
            okeguard,
            "fix",
            fingerprint[:16],
            "--snapshot",
            str(snapshot),
            "--format",
            "json",
        ]
    summaries = []
    for name, command in commands.items():
        runs = [measure(command, args.out / "fix-output.json", 600) for _ in range(args.repeat)]
        bad = [r.returncode for r in runs if r.returncode != 0]
        if bad:
            raise SystemExit(f"{name}: exit {bad[0]}")
        summaries.append(summarise(name, command, runs))
    print(f"{data.sizes.workloads} workloads, {snapshot.stat().st_size / 1e6:.1f} MB snapshot")
    print(table(summaries))


if __name__ == "__main__":
    main()
