"""Spec tests for the engine's behaviour on the Kubernetes checks: namespace filtering, ``only``,
disabled checks, fingerprints, ordering, gaps (the catalogue's metadata: ``test_catalogue.py``).

Written from CHECKS.md, not from the check modules.
"""

from __future__ import annotations

import pytest

from okeguard.checks.engine import run_checks
from okeguard.checks.registry import get_check
from okeguard.inventory.model import Gap
from tests.helpers import NOW, config, inventory, scan
from tests.unit.factories import bare_container, container, days_ago, describe, secret, workload


@pytest.mark.parametrize(
    "check_id", ["k8s.legacy-service-account-token", "k8s.stale-secret", "k8s.certificate-expiring"]
)
def test_secret_checks_declare_they_read_secrets(check_id: str) -> None:
    spec = get_check(check_id)
    assert spec is not None and "Secret" in spec.reads


# ---------------------------------------------------------------------------------------------
# engine behaviour


def _messy(name: str, ns: str) -> dict:
    return workload(
        "Deployment",
        name,
        ns,
        containers=[
            bare_container("app", image="nginx:1.27", securityContext={"privileged": True})
        ],
    )


def test_namespace_filter() -> None:
    docs = [_messy("web", "shop"), _messy("api", "billing")]
    found = scan(docs, namespaces=["shop"], whole_cluster=True)
    assert found, "expected findings in shop"
    for f in found:
        in_shop = f.resource.namespace == "shop" or (
            f.resource.kind == "Namespace" and f.resource.name == "shop"
        )
        assert in_shop, describe(f)
    assert any(f.resource.kind == "Namespace" and f.resource.name == "shop" for f in found)
    assert not any("billing" in (f.resource.namespace or f.resource.name) for f in found)


def test_only_runs_the_given_checks() -> None:
    found = scan([_messy("web", "shop")], checks=["k8s.privileged", "k8s.run-as-root"])
    assert sorted({f.check_id for f in found}) == ["k8s.privileged", "k8s.run-as-root"]


def test_disabled_checks_do_not_run() -> None:
    cfg = config(disabled=("k8s.privileged", "k8s.writable-root-fs"))
    result = run_checks(inventory([_messy("web", "shop")]), cfg, now=NOW)
    assert "k8s.privileged" not in result.checks_run
    ids = {f.check_id for f in result.findings}
    assert "k8s.privileged" not in ids and "k8s.writable-root-fs" not in ids
    assert "k8s.run-as-root" in ids


def test_fingerprints_stable_across_runs() -> None:
    docs = [_messy("web", "shop"), secret("db", created=days_ago(200))]
    first = [(f.check_id, f.fingerprint) for f in scan(docs, whole_cluster=True)]
    second = [(f.check_id, f.fingerprint) for f in scan(docs, whole_cluster=True)]
    assert first == second
    assert len({fp for _, fp in first}) == len(first), "two findings share a fingerprint"


def test_fingerprints_differ_per_container_and_workload() -> None:
    docs = [
        workload(
            "Deployment",
            "web",
            "shop",
            containers=[container("a", privileged=True), container("b", privileged=True)],
        ),
        workload("Deployment", "api", "shop", containers=[container("a", privileged=True)]),
    ]
    found = scan(docs, checks=["k8s.privileged"])
    assert sorted((f.resource.name, f.resource.container) for f in found) == [
        ("api", "a"),
        ("web", "a"),
        ("web", "b"),
    ]
    assert len({f.fingerprint for f in found}) == 3


def test_findings_sorted_by_severity() -> None:
    docs = [
        _messy("web", "shop"),
        workload("Deployment", "other", "shop", containers=[container(image="nginx:1.27")]),
    ]
    found = scan(docs, whole_cluster=True)
    ranks = [f.severity.rank for f in found]
    assert ranks == sorted(ranks, reverse=True)
    assert {f.severity.value for f in found} >= {"critical", "high", "medium", "low", "info"}


def test_secret_gap_makes_secret_checks_unknown_and_leaves_workload_checks_alone() -> None:
    gap = Gap(source="live", kind="Secret", reason="forbidden")
    result = run_checks(
        inventory([_messy("web", "shop")], whole_cluster=True, gaps=[gap]), config(), now=NOW
    )
    by_check: dict[str, list] = {}
    for f in result.findings:
        by_check.setdefault(f.check_id, []).append(f)
    for check_id in (
        "k8s.legacy-service-account-token",
        "k8s.stale-secret",
        "k8s.certificate-expiring",
    ):
        assert [f.status.value for f in by_check.get(check_id, [])] == ["unknown"], check_id
    assert [f.status.value for f in by_check["k8s.privileged"]] == ["open"]
