"""Writing the synthetic cluster to disk: a manifest directory and an okeguard snapshot.

The manifests look like a per-namespace export: ``manifests/namespaces/<ns>.yaml`` holds the
Namespace and every object in it as multi-document YAML, ``manifests/cluster/`` the
cluster-scoped RBAC and the Nodes. The snapshot is built the way ``okeguard snapshot`` builds one
(validate and redact, ``build_inventory(whole_cluster=True)``, ``save_snapshot``).

Data is cached under ``out/w<workloads>-seed<seed>/`` and rewritten only when the sizes, the seed
or the generator's source change.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from synthetic import Cluster, Sizes, generate_cluster
from synthetic.base import REFERENCE_TIME

HERE = Path(__file__).resolve().parent
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job")


class _Dumper(yaml.CSafeDumper):
    """Block style for multi-line strings (certificates, properties files), as kubectl prints them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


@dataclass
class DataSet:
    """Where the data of one scale lives, and how big it is."""

    root: Path
    seed: int
    sizes: Sizes
    kinds: dict[str, int] = field(default_factory=dict)
    yaml_files: int = 0
    yaml_bytes: int = 0
    snapshot_bytes: int = 0
    generator: str = ""

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def snapshot(self) -> Path:
        return self.root / "snapshot.jsonl"

    @property
    def objects(self) -> int:
        return sum(self.kinds.values())

    @property
    def workloads(self) -> int:
        return sum(self.kinds.get(kind, 0) for kind in WORKLOAD_KINDS)

    def describe(self) -> str:
        return (
            f"{self.objects:,} objects ({self.workloads:,} workloads in "
            f"{self.kinds.get('Namespace', 0):,} namespaces), {self.yaml_bytes / 1e6:.1f} MB of YAML "
            f"in {self.yaml_files:,} files, {self.snapshot_bytes / 1e6:.1f} MB snapshot"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "seed": self.seed,
            "sizes": asdict(self.sizes),
            "objects": self.objects,
            "workloads": self.workloads,
            "kinds": self.kinds,
            "yaml_files": self.yaml_files,
            "yaml_bytes": self.yaml_bytes,
            "snapshot_bytes": self.snapshot_bytes,
            "generator": self.generator,
        }


def generator_version() -> str:
    """A hash of the generator's source and of okeguard's snapshot writing (validation,
    redaction, format): cached data is rewritten when either changes."""
    import okeguard.inventory

    inventory = Path(okeguard.inventory.__file__).parent
    sources = [*(HERE / "synthetic").glob("*.py"), Path(__file__)]
    sources += [inventory / name for name in ("snapshot.py", "normalize.py", "sensitive.py")]
    digest = hashlib.sha256()
    for path in sorted(sources):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def write_manifests(cluster: Cluster, directory: Path) -> tuple[int, int]:
    """Write the manifest tree; returns (files, bytes)."""
    files = total = 0
    groups = [("cluster", name, docs) for name, docs in cluster.cluster_scoped.items()]
    groups += [("namespaces", name, docs) for name, docs in cluster.namespaced.items()]
    for folder, name, docs in groups:
        path = directory / folder / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=120)
        data = text.encode()
        path.write_bytes(data)
        files += 1
        total += len(data)
    return files, total


def write_snapshot(cluster: Cluster, path: Path, label: str) -> int:
    """Build the inventory as ``okeguard snapshot`` does and save it; returns the bytes written.

    Validation redacts the documents in place, so this runs after the manifests are written.
    """
    from okeguard.inventory.manifests import objects_from_documents
    from okeguard.inventory.model import KubeconfigUser, SourceInfo, build_inventory
    from okeguard.inventory.snapshot import save_snapshot

    cluster_info = {
        "context": label,
        "server": "https://10.0.0.2:6443",
        "kubernetes_version": "v1.31.1",
    }
    user = KubeconfigUser(
        "user-synthetic",
        ("exec",),
        "oci",
        ("ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1.iad.synthetic"),
    )
    inventory = build_inventory(
        objects_from_documents(cluster.documents(), label),
        cluster=label,
        source=SourceInfo("live", cluster_info),
        whole_cluster=True,
        captured_at=REFERENCE_TIME,
        kubeconfig_users=[user],
    )
    return save_snapshot(inventory, path, cluster_info)


def prepare(sizes: Sizes, seed: int, out: Path, *, regenerate: bool = False) -> DataSet:
    """The data set for ``sizes`` and ``seed``, generated unless a matching one is cached."""
    root = out / f"w{sizes.workloads}-seed{seed}"
    meta_path = root / "meta.json"
    version = generator_version()
    if not regenerate and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("generator") == version and meta.get("sizes") == asdict(sizes):
            return DataSet(
                root,
                seed,
                sizes,
                meta["kinds"],
                meta["yaml_files"],
                meta["yaml_bytes"],
                meta["snapshot_bytes"],
                version,
            )
    if root.exists():
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    root.mkdir(parents=True, exist_ok=True)
    cluster = generate_cluster(sizes, seed)
    kinds = dict(Counter(doc["kind"] for doc in cluster.documents()))
    data = DataSet(root, seed, sizes, kinds, generator=version)
    data.yaml_files, data.yaml_bytes = write_manifests(cluster, data.manifests)
    data.snapshot_bytes = write_snapshot(cluster, data.snapshot, f"synthetic-w{sizes.workloads}")
    meta_path.write_text(json.dumps(data.to_dict(), indent=2) + "\n", encoding="utf-8")
    return data
