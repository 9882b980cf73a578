"""The catalogue contract, pinned once: every check of CHECKS.md is registered with its metadata,
no other check is, the flags that decide where a check runs hold, and the generated
docs/checks.md is current. Other tests take the ids they need from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from okeguard.checks.docs import checks_markdown
from okeguard.checks.registry import all_checks, get_check

ROOT = Path(__file__).resolve().parents[2]

# id -> (practices, default severity, remediation), exactly as shared/CHECKS.md specifies them
# (compared row by row on 2026-12-05; CI checkouts do not have shared/, so the table is the pin).
CATALOGUE = {
    # workload checks (CHECKS.md's first table): they read Pod templates, which manifests have
    "k8s.run-as-root": ("P9", "high", "add-security-context"),
    "k8s.privileged": ("P9", "critical", "add-security-context"),
    "k8s.privilege-escalation": ("P9", "medium", "add-security-context"),
    "k8s.dangerous-capabilities": ("P9", "high", "add-security-context"),
    "k8s.capabilities-not-dropped": ("P9", "low", "add-security-context"),
    "k8s.host-namespaces": ("P9", "high", "guidance"),
    "k8s.host-path": ("P9, P10", "high", "guidance"),
    "k8s.writable-root-fs": ("P10", "medium", "add-security-context"),
    "k8s.mutable-image-tag": ("P17", "medium", "guidance"),
    "k8s.image-not-pinned": ("P17", "info", "guidance"),
    "k8s.large-image": ("P17", "low", "guidance"),
    "k8s.untrusted-registry": ("P17", "medium", "guidance"),
    "k8s.credentials-in-env": ("P18", "high", "guidance"),
    # namespaces, RBAC, secrets, the cluster
    "k8s.missing-network-policy": ("P6", "medium", "add-default-deny-policy"),
    "k8s.cluster-admin-binding": ("P20", "high", "guidance"),
    "k8s.wildcard-rbac": ("P20", "medium", "guidance"),
    "k8s.anonymous-access": ("P20", "critical", "guidance"),
    "k8s.default-service-account": ("P19, P20", "low", "guidance"),
    "k8s.legacy-service-account-token": ("P19", "medium", "rotate-secret"),
    "k8s.stale-secret": ("P8", "medium", "rotate-secret"),
    "k8s.certificate-expiring": ("P8", "high", "guidance"),
    "k8s.ingress-without-tls": ("P11", "medium", "guidance"),
    "k8s.credentials-in-configmap": ("P18", "high", "guidance"),
    "k8s.no-log-collector": ("P14", "low", "guidance"),
    "k8s.no-monitoring": ("P15", "low", "guidance"),
    "kubeconfig.static-credentials": ("P19", "medium", "guidance"),
    # OKE: the OCI side
    "oke.public-api-endpoint": ("P2", "high", "make-endpoint-private"),
    "oke.legacy-endpoint": ("P2", "high", "guidance"),
    "oke.workers-in-public-subnet": ("P3", "high", "guidance"),
    "oke.security-lists-instead-of-nsgs": ("P4", "medium", "move-rules-to-nsg"),
    "oke.lb-security-list-mode": ("P7", "medium", "move-rules-to-nsg"),
    "oke.world-open-ingress": ("P3, P4", "high", "move-rules-to-nsg"),
    "oke.public-load-balancer": ("P1, P3", "medium", "guidance"),
    "oke.lb-without-tls": ("P11", "info", "guidance"),
    "oke.outdated-kubernetes": ("P5", "medium", "guidance"),
    "oke.node-pool-version-skew": ("P5", "medium", "guidance"),
    "oke.stale-node-image": ("P5", "medium", "guidance"),
    "oke.network-policy-not-enforced": ("P6", "high", "guidance"),
    "oke.flow-logs-disabled": ("P16", "medium", "guidance"),
    "oke.audit-retention-short": ("P13", "low", "guidance"),
    "oke.control-plane-logs-disabled": ("P12, P13", "low", "guidance"),
    "oke.vault-secret-not-rotated": ("P8, P18", "medium", "rotate-secret"),
}
WORKLOAD_CHECKS = list(CATALOGUE)[:13]
# OKE checks that read only Services: they run on manifests and without the OCI side too.
SERVICE_ONLY = {"oke.lb-security-list-mode", "oke.public-load-balancer", "oke.lb-without-tls"}


@pytest.mark.parametrize("check_id", sorted(CATALOGUE))
def test_every_catalogue_check_is_registered_with_its_metadata(check_id: str) -> None:
    spec = get_check(check_id)
    assert spec is not None, f"{check_id} is not registered"
    assert (", ".join(spec.practice), spec.severity.value, spec.remediation) == CATALOGUE[check_id]
    assert spec.title and spec.description


def test_no_check_is_registered_that_the_catalogue_lacks() -> None:
    assert sorted(spec.id for spec in all_checks()) == sorted(CATALOGUE)


def test_where_each_check_runs() -> None:
    specs = {spec.id: spec for spec in all_checks()}
    whole = {i for i, spec in specs.items() if spec.whole_cluster}
    # The two "in the cluster" checks cannot be judged from manifests. Workload checks read Pod
    # templates, which manifests have (as with kubescape/Polaris on a repo); only large-image
    # also needs Nodes. Which namespace/RBAC checks need the whole cluster is left open by
    # CHECKS.md and not asserted.
    assert {"k8s.no-log-collector", "k8s.no-monitoring", "k8s.large-image"} <= whole
    assert not whole & (set(WORKLOAD_CHECKS) - {"k8s.large-image"})
    oci = {i for i, spec in specs.items() if spec.oci}
    assert oci == {i for i in CATALOGUE if i.startswith("oke.")} - SERVICE_ONLY


def test_docs_checks_md_is_generated_from_the_registry() -> None:
    current = (ROOT / "docs" / "checks.md").read_text()
    assert current == checks_markdown(), (
        "docs/checks.md is stale: run okeguard checks --format markdown > docs/checks.md"
    )
    for check_id in CATALOGUE:
        assert f"## `{check_id}`" in current
