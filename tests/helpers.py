"""Shared test helpers: build inventories from Python dicts and run checks on them."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from okeguard.checks.engine import run_checks
from okeguard.checks.model import Finding
from okeguard.config import ChecksConfig, Config
from okeguard.inventory.manifests import objects_from_documents
from okeguard.inventory.model import Gap, Inventory, KubeconfigUser, SourceInfo, build_inventory

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def inventory(
    docs: Iterable[Mapping[str, Any]],
    *,
    whole_cluster: bool = False,
    kubeconfig_users: list[KubeconfigUser] | None = None,
    gaps: list[Gap] | None = None,
    cluster: str = "test",
) -> Inventory:
    """An inventory of deep copies of ``docs`` (loaders redact in place)."""
    objects = objects_from_documents([copy.deepcopy(dict(d)) for d in docs], "<test>")
    return build_inventory(
        objects,
        cluster=cluster,
        source=SourceInfo("test"),
        whole_cluster=whole_cluster,
        kubeconfig_users=kubeconfig_users,
        gaps=gaps or [],
    )


def scan(
    docs: Iterable[Mapping[str, Any]],
    *,
    checks: Iterable[str] | None = None,
    config: Config | None = None,
    now: datetime = NOW,
    namespaces: Iterable[str] | None = None,
    **inventory_kwargs: Any,
) -> list[Finding]:
    """Run checks (all, or the ids in ``checks``) over ``docs`` and return the findings."""
    inv = inventory(docs, **inventory_kwargs)
    only = set(checks) if checks is not None else None
    return run_checks(
        inv,
        config or Config(),
        now=now,
        only=only,
        namespaces=set(namespaces) if namespaces else None,
    ).findings


def config(exposure: str = "private", **checks: Any) -> Config:
    """A configuration with the given exposure and check settings."""
    return Config(exposure=exposure, checks=ChecksConfig(**checks))  # type: ignore[arg-type]


def deployment(
    name: str = "web",
    namespace: str | None = "shop",
    *,
    containers: list[dict[str, Any]] | None = None,
    pod_spec: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment whose pod spec is ``pod_spec`` plus ``containers`` (one nginx by default)."""
    spec = dict(pod_spec or {})
    spec.setdefault("containers", containers or [{"name": "app", "image": "nginx:1.27"}])
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    pod_labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": pod_labels},
            "template": {"metadata": {"labels": pod_labels}, "spec": spec},
        },
    }


HARDENED_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.example.com/shop/app:1.2.3@sha256:" + "a" * 64,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def ids(findings: Iterable[Finding]) -> list[str]:
    return [f.check_id for f in findings]


def wait_for(what: str, probe: Any, timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll ``probe()`` until it returns something truthy (returned); fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def after_lease(seconds: float = 30.0) -> datetime:
    """A moment after a run's lease (default length) has run out: when a crashed run's request
    may be taken over. Tests that simulate a crash reconcile "then"."""
    from datetime import timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds + 1)
