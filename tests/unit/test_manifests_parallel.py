"""A directory walk read in worker processes gives the inventory a walk in one process gives.

The walk hands its files to :func:`okeguard.inventory.parallel.map_in_order` when they hold more
than ``MIN_PARALLEL_BYTES``; these tests lower that bound to 0 (every file through the workers)
and raise it out of reach (every file here), and compare what comes out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from okeguard.errors import InputError
from okeguard.inventory import parallel
from okeguard.inventory.manifests import load_manifests
from okeguard.inventory.model import Inventory

pytestmark = pytest.mark.skipif(
    parallel.worker_count() < 2, reason="needs two cores to start worker processes"
)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{n}
  namespace: team-{t}
  creationTimestamp: 2024-05-01T10:00:00Z
spec:
  template:
    spec:
      hostNetwork: on
      containers:
        - name: app
          image: nginx:1.{n}
          securityContext:
            privileged: yes
            runAsNonRoot: no
          env:
            - name: DATABASE_URL
              value: postgres://app:hunter{n}@db:5432/app
---
apiVersion: v1
kind: Secret
metadata: {{name: creds-{n}, namespace: team-{t}}}
stringData: {{password: "s3cret-{n}"}}
"""


class _CountingPool(parallel.ProcessPoolExecutor):
    started = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).started += 1
        super().__init__(*args, **kwargs)


def _tree(root: Path, count: int = 40) -> Path:
    for n in range(count):
        folder = root / f"team-{n % 4}" / ("nested" if n % 3 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"app-{n:03}.yaml").write_text(DEPLOYMENT.format(n=n, t=n % 4))
    (root / "values.yaml").write_text("replicaCount: 2\nimage: {tag: latest}\n")
    (root / "team-1" / "docker-compose.yml").write_text("services:\n  web: {image: nginx}\n")
    (root / "team-2" / "package.json").write_text('{"name": "x"}')
    (root / "team-3" / "notes.yaml").write_text("{{ .Values.broken\n")
    return root


def _view(inventory: Inventory) -> Any:
    objects = [
        (kind, obj.namespace, obj.name, obj.origin, obj.raw)
        for kind, group in sorted(inventory.objects.items())
        for obj in group
    ]
    workloads = [
        (w.obj.name, [(c.name, c.security) for c in w.containers]) for w in inventory.workloads
    ]
    return objects, workloads, inventory.source.detail, dict(inventory.skipped_kinds)


def _load(monkeypatch: pytest.MonkeyPatch, root: Path, bound: int) -> Inventory:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", bound)
    return load_manifests([str(root)])


def test_the_walk_read_in_workers_equals_the_walk_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    here = _load(monkeypatch, root, 1 << 60)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.started = 0
    there = _load(monkeypatch, root, 0)
    assert _CountingPool.started == 1
    assert _view(there) == _view(here)
    assert len(there.objects["Deployment"]) == 40
    assert there.source.detail["skipped_files"] == here.source.detail["skipped_files"]
    assert len(there.source.detail["skipped_files"]) == 4  # values, compose, package, template
    web = there.workloads[0].containers[0].security
    assert web.privileged is True and web.run_as_non_root is False  # YAML 1.1 in the workers
    secret = there.objects["Secret"][0].raw
    assert "s3cret" not in repr(secret) and "hunter" not in repr(there.objects["Deployment"])


def test_the_first_broken_file_in_walk_order_is_named_from_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    broken = root / "team-0" / "app-000.yaml"
    broken.write_text(broken.read_text().replace("  name: web-0\n", "  name: [web-0\n"))
    later = root / "team-3" / "nested" / "app-031.yaml"
    later.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x\n")
    with pytest.raises(InputError) as here:
        _load(monkeypatch, root, 1 << 60)
    with pytest.raises(InputError) as there:
        _load(monkeypatch, root, 0)
    assert str(there.value) == str(here.value)
    assert str(there.value).startswith(f"{broken}:")
