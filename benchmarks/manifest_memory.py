"""Manifest memory benchmark: does a 50 MB manifest set stay proportional in peak RSS?

Generates about ``--mb`` megabytes of Kubernetes manifests (deterministic, Deployments with a
Service and a ConfigMap beside some of them): half as many small multi-document files under
``many/``, half as one large multi-document file ``big.yaml``. Then runs the real
``okeguard scan --manifests DIR --format json -o /dev/null`` in a separate process per run and
reports its wall time and peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper with a
single child, see ``measure.py``), best and median of ``--repeat`` runs. The same objects are
also written as one ``kind: List`` document (``list.yaml``, what ``kubectl get -o yaml`` prints),
which is scanned as a second scenario; ``--only`` picks scenarios.

Examples:
  .venv/bin/python benchmarks/manifest_memory.py
  .venv/bin/python benchmarks/manifest_memory.py --mb 10 --repeat 1
  .venv/bin/python benchmarks/manifest_memory.py --only list --json benchmarks/out/memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from measure import measure, summarise, table

HERE = Path(__file__).resolve().parent
GENERATOR_VERSION = 2
IMAGES = ("nginx:1.27", "ghcr.io/acme/api:2.4.1", "redis", "busybox:latest", "envoyproxy/envoy")


class _Dumper(yaml.CSafeDumper):
    """Plain block YAML, as ``kubectl get -o yaml`` prints it."""


def _container(rng: random.Random, index: int) -> dict[str, Any]:
    env = [{"name": f"SETTING_{i}", "value": f"value-{rng.randrange(10**6)}"} for i in range(8)]
    env.append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}})
    container: dict[str, Any] = {
        "name": f"c{index}",
        "image": rng.choice(IMAGES),
        "imagePullPolicy": "IfNotPresent",
        "args": ["--port=8080", f"--replica-id={rng.randrange(1000)}", "--log-format=json"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}, "periodSeconds": 20},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True}],
    }
    if rng.random() < 0.5:
        container["securityContext"] = {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": rng.random() < 0.5,
            "capabilities": {"drop": ["ALL"]},
        }
    return container


def _deployment(rng: random.Random, namespace: str, number: int) -> dict[str, Any]:
    name = f"app-{number}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace, "tier": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"team": f"team-{number % 17}", "description": "x" * 120},
        },
        "spec": {
            "replicas": rng.randrange(1, 6),
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": dict(labels)},  # no YAML anchors,
                "spec": {
                    "serviceAccountName": f"sa-{number % 5}",
                    "containers": [_container(rng, i) for i in range(rng.randrange(1, 4))],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
                },
            },
        },
    }


def _extras(rng: random.Random, namespace: str, number: int) -> list[dict[str, Any]]:
    name = f"app-{number}"
    meta = {"name": name, "namespace": namespace}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**meta, "name": f"{name}-config"},
        "data": {"app.properties": "\n".join(f"key{i}={rng.random()}" for i in range(20))},
    }
    return [service, config]


def _documents(rng: random.Random, namespace: str, start: int, count: int) -> list[str]:
    out = []
    for number in range(start, start + count):
        docs = [_deployment(rng, namespace, number)]
        if number % 4 == 0:
            docs += _extras(rng, namespace, number)
        out += [yaml.dump(doc, Dumper=_Dumper, sort_keys=False) for doc in docs]
    return out


def generate(root: Path, megabytes: float, seed: int) -> dict[str, Any]:
    """Write ~``megabytes`` MB of manifests under ``root / "set"`` and the same objects again as
    one ``kind: List`` document, ``root / "list.yaml"`` (cached by size, seed and version)."""
    stamp = {"mb": megabytes, "seed": seed, "version": GENERATOR_VERSION}
    stamp_file = root / "stamp.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text())["stamp"] == stamp:
        return dict(json.loads(stamp_file.read_text()))
    shutil.rmtree(root, ignore_errors=True)
    (root / "set" / "many").mkdir(parents=True)
    rng = random.Random(seed)
    half = int(megabytes * 1e6 / 2)
    per_file = 20
    written = files = number = 0
    with (root / "list.yaml").open("w") as listed:
        listed.write("apiVersion: v1\nitems:\n")
        while written < 2 * half:
            big = written >= half  # first many small files, one namespace each; then one file
            namespace = "big" if big else f"ns-{files}"
            docs = _documents(rng, namespace, number, per_file)
            text = "---\n".join(docs) + ("---\n" if big else "")
            target = root / "set" / ("big.yaml" if big else f"many/ns-{files:05d}.yaml")
            with target.open("a") as out:
                out.write(text)
            for doc in docs:  # the same objects as items of a List, as `kubectl get -o yaml`
                listed.write(_as_item(doc))
            written += len(text)
            files += 0 if big else 1
            number += per_file
        listed.write("kind: List\nmetadata:\n  resourceVersion: ''\n")
    info = {"stamp": stamp, "files": files + 1, "bytes": written, "deployments": number}
    stamp_file.write_text(json.dumps(info))
    return info


def _as_item(document: str) -> str:
    lines = document.splitlines()
    return "".join(("- " if i == 0 else "  ") + line + "\n" for i, line in enumerate(lines))


SCENARIOS = {
    "set": ("set", "the directory: many small files and one large multi-document file"),
    "list": ("list.yaml", "the same objects as one kind: List document"),
    "many": ("set/many", "the small files only"),
    "big": ("set/big.yaml", "the large multi-document file only"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=50.0, help="size of the manifests (MB)")
    parser.add_argument("--seed", type=int, default=13, help="RNG seed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    parser.add_argument(
        "--only",
        choices=sorted(SCENARIOS),
        action="append",
        help="scenario to run (repeatable; default: set and list)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where the data goes")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--okeguard", help="okeguard executable (default: next to this Python)")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    okeguard = args.okeguard or shutil.which("okeguard", path=str(Path(sys.executable).parent))
    if not okeguard:
        parser.error("okeguard not found: pass --okeguard PATH or use the okeguard venv's Python")
    root = args.out / f"manifest-memory-{args.mb:g}mb-seed{args.seed}"
    info = generate(root, args.mb, args.seed)
    print(
        f"data: {info['bytes'] / 1e6:.1f} MB of YAML, {info['deployments']:,} Deployments "
        f"in {info['files']} files, and again as one List ({root})",
        file=sys.stderr,
    )
    summaries = []
    results: dict[str, Any] = {"data": info, "scenarios": {}}
    for name in args.only or ["set", "list"]:
        path, what = SCENARIOS[name]
        target = root / path
        size = sum(f.stat().st_size for f in ([target] if target.is_file() else target.rglob("*")))
        command = [okeguard, "scan", "--manifests", str(target), "--format", "json"]
        command += ["-o", os.devnull]
        print(f"{name}: {what}, {size / 1e6:.1f} MB", file=sys.stderr)
        runs = []
        for index in range(args.repeat):
            run = measure(command, os.devnull, args.timeout)
            runs.append(run)
            print(
                f"  [{index + 1}/{args.repeat}] {run.wall_s:.2f} s wall, "
                f"{run.max_rss_mb:.0f} MiB, exit {run.returncode}",
                file=sys.stderr,
            )
            if run.returncode not in (0, 1):
                print(f"    stderr: {run.stderr_tail.strip()[-600:]}", file=sys.stderr)
        summary = summarise(f"{name} ({size / 1e6:.0f} MB)", command, runs)
        summaries.append(summary)
        ratio = summary.rss_best_mb * 1024 * 1024 / size
        results["scenarios"][name] = {**summary.to_dict(), "bytes": size, "rss_per_byte": ratio}
    print(table(summaries))
    for name, result in results["scenarios"].items():
        print(f"{name}: peak RSS {result['rss_per_byte']:.1f}x the input size")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
