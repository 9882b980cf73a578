"""Fleet benchmark: scan N configured clusters, Kubernetes and OCI, served by the fake servers.

Starts the fake Kubernetes API server (one per cluster, each holding a small shop) and one fake
OCI API server holding N OKE clusters (``tests/fakes/oci_world.py``), writes an okeguard.yaml
listing them, and times ``okeguard.fleet.scan_configured`` (the function behind
``okeguard scan --config``) at several concurrency bounds. It reports OCI requests per cluster,
Kubernetes requests per cluster, and wall time. An optional per-request delay on the OCI fake
models the round trip to a real region (default 20 ms).

Examples:
  /work/venv/bin/python benchmarks/fleet_scale.py
  /work/venv/bin/python benchmarks/fleet_scale.py --clusters 50 --parallel 1 4 8 --oci-latency 0.05
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from okeguard.config import load_config  # noqa: E402
from okeguard.fleet import scan_configured  # noqa: E402
from tests.fakes.kube_api import running_fake_kube_api  # noqa: E402
from tests.fakes.oci_api import REGION, FakeOciApi, running_fake_oci_api  # noqa: E402
from tests.fakes.oci_world import COMPARTMENT, build_oke_world  # noqa: E402
from tests.helpers import HARDENED_CONTAINER, deployment  # noqa: E402


def shop(index: int) -> list[dict[str, Any]]:
    """A small application namespace: a few workloads, one of them unhardened."""
    ns = f"team-{index}"
    docs = [deployment(f"svc-{i}", namespace=ns, containers=[HARDENED_CONTAINER]) for i in range(5)]
    docs.append(deployment("legacy", namespace=ns))
    return docs


def run(clusters: int, parallel: list[int], oci_latency: float, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {"clusters": clusters, "oci_latency_s": oci_latency, "runs": []}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        oci_api = stack.enter_context(running_fake_oci_api())
        kube_apis = [stack.enter_context(running_fake_kube_api(shop(i))) for i in range(clusters)]
        entries = []
        for i, kube in enumerate(kube_apis):
            world = build_oke_world(oci_api)
            kubeconfig = kube.write_kubeconfig(folder / f"kubeconfig-{i}", context=f"c{i}")
            entries.append(
                {
                    "name": f"cluster-{i:02d}",
                    "context": f"c{i}",
                    "kubeconfig": str(kubeconfig),
                    "cluster_id": world.cluster_id,
                    "region": REGION,
                    "compartments": [COMPARTMENT],
                }
            )
        oci_config = FakeOciApi().write_config(folder)
        path = folder / "okeguard.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "oci": {"mode": "config_file", "config_file": str(oci_config)},
                    "clusters": entries,
                }
            )
        )
        config = load_config(path)
        if oci_latency:
            oci_api.delay("*", oci_latency)
        for bound in parallel:
            walls = []
            for _ in range(repeat):
                oci_api.reset_requests()
                for kube in kube_apis:
                    kube.reset_requests()
                started = time.perf_counter()
                report = scan_configured(
                    config, max_parallel=bound, oci_endpoints=oci_api.service_endpoints()
                )
                walls.append(time.perf_counter() - started)
                oci_requests = oci_api.count()
                kube_requests = sum(len(k.requests) for k in kube_apis)
            results["runs"].append(
                {
                    "max_parallel": bound,
                    "wall_best_s": min(walls),
                    "wall_median_s": statistics.median(walls),
                    "oci_requests_per_cluster": oci_requests / clusters,
                    "kube_requests_per_cluster": kube_requests / clusters,
                    "findings": len(report.findings),
                    "complete": report.complete,
                }
            )
            row = results["runs"][-1]
            print(
                f"max_parallel={bound:>2}: {row['wall_best_s']:6.2f} s best, {row['wall_median_s']:6.2f} s median; "
                f"{row['oci_requests_per_cluster']:.0f} OCI + {row['kube_requests_per_cluster']:.0f} Kubernetes "
                f"requests per cluster; {row['findings']} findings; complete={row['complete']}",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument(
        "--oci-latency", type=float, default=0.02, help="seconds added to every OCI request"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = run(args.clusters, args.parallel, args.oci_latency, args.repeat)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
