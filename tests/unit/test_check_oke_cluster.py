"""The OKE cluster checks: endpoint, versions, node images, policy enforcement, logs, audit and
Vault secrets (``okeguard/checks/oke_cluster.py``), and where the ``oke.*`` checks run (their
metadata is pinned in ``test_catalogue.py``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from okeguard.checks.model import Severity, Status
from okeguard.checks.oke_cluster import parse_version
from okeguard.checks.registry import all_checks
from okeguard.inventory.oci_model import VaultSecret
from tests.helpers import NOW, config, deployment
from tests.unit.oke_factories import (
    clean_state,
    gap,
    node_pool,
    ocid,
    scan_oci,
    subnet,
    with_cluster,
    with_subnets,
)


def _oke_ids(*, oci: bool | None = None) -> set[str]:
    """The registered ``oke.*`` checks (those with ``spec.oci`` equal to ``oci``, when given);
    their metadata is pinned in ``test_catalogue.py``."""
    return {s.id for s in all_checks() if s.id.startswith("oke.") and oci in (None, s.oci)}


# --- where the OKE checks run --------------------------------------------------------------


def test_oke_checks_are_not_applicable_without_the_oci_side() -> None:
    from okeguard.checks.engine import run_checks
    from okeguard.config import Config
    from tests.helpers import inventory

    run = run_checks(inventory([], whole_cluster=True), Config(), now=NOW)
    oke_ids, service_only = _oke_ids(oci=True), _oke_ids(oci=False)
    assert oke_ids and service_only
    assert oke_ids <= set(run.not_applicable)
    assert not oke_ids & set(run.checks_run)
    assert set(run.checks_run) >= service_only


def test_the_clean_state_passes_every_oke_check() -> None:
    findings = scan_oci(clean_state(), sorted(_oke_ids()))
    assert findings == []


# --- endpoint ------------------------------------------------------------------------------


def _endpoint(**changes: object) -> object:
    state = clean_state()
    assert state.cluster is not None and state.cluster.endpoint is not None
    return dataclasses.replace(state.cluster.endpoint, **changes)


@pytest.mark.parametrize(
    ("exposure", "severity"),
    [("private", Severity.HIGH), ("internal", Severity.HIGH), ("public", Severity.INFO)],
)
def test_public_api_endpoint_is_graded_by_exposure(exposure: str, severity: Severity) -> None:
    state = with_cluster(clean_state(), endpoint=_endpoint(is_public_ip_enabled=True))
    [finding] = scan_oci(state, "oke.public-api-endpoint", config=config(exposure))
    assert finding.severity is severity
    assert finding.resource.kind == "Cluster" and finding.resource.ocid == "ocid1.cluster.oc1..prod"
    assert "endpoint_config.is_public_ip_enabled is true" in finding.message


def test_endpoint_in_a_public_subnet_is_flagged() -> None:
    state = with_subnets(clean_state(), subnet("api", ocid("securitylist", "api-sl"), public=True))
    [finding] = scan_oci(state, "oke.public-api-endpoint")
    assert "endpoint subnet 'api' has prohibit_public_ip_on_vnic false" in finding.message


def test_endpoint_subnet_not_read_is_unknown() -> None:
    state = clean_state()
    subnets = {k: v for k, v in state.subnets.items() if k != ocid("subnet", "api")}
    [finding] = scan_oci(
        dataclasses.replace(state, subnets=subnets, gaps=(gap("subnet", ocid("subnet", "api")),)),
        "oke.public-api-endpoint",
    )
    assert finding.status is Status.UNKNOWN
    assert "403" in finding.message


def test_legacy_cluster_is_flagged_by_both_endpoint_checks() -> None:
    state = with_cluster(clean_state(), endpoint=None)
    findings = scan_oci(state, ["oke.legacy-endpoint", "oke.public-api-endpoint"])
    assert sorted(f.check_id for f in findings) == [
        "oke.legacy-endpoint",
        "oke.public-api-endpoint",
    ]
    legacy = next(f for f in findings if f.check_id == "oke.legacy-endpoint")
    assert "endpoint_config is null" in legacy.message


def test_cluster_not_read_makes_cluster_checks_unknown() -> None:
    policy = "Allow group g to read clusters in compartment apps"
    state = clean_state(cluster=None, gaps=(gap("cluster", policy=policy),))
    ids = [
        "oke.legacy-endpoint",
        "oke.public-api-endpoint",
        "oke.outdated-kubernetes",
        "oke.node-pool-version-skew",
        "oke.control-plane-logs-disabled",
        "oke.network-policy-not-enforced",
        "oke.flow-logs-disabled",
        "oke.security-lists-instead-of-nsgs",
    ]
    findings = scan_oci(state, ids)
    assert sorted(f.check_id for f in findings) == sorted(ids)
    assert all(f.status is Status.UNKNOWN and policy in f.message for f in findings)


# --- versions and images -------------------------------------------------------------------


def test_outdated_kubernetes() -> None:
    state = with_cluster(clean_state(), available_upgrades=("v1.32.1", "v1.33.0"))
    [finding] = scan_oci(state, "oke.outdated-kubernetes")
    assert "available_kubernetes_upgrades is [v1.32.1, v1.33.0]" in finding.message


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("v1.30.1", (1, 30, 1)), ("1.9", (1, 9)), ("v1.31.1-oke.2", (1, 31, 1)), ("latest", None)],
)
def test_parse_version(text: str, parsed: tuple[int, ...] | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    ("pool_version", "control", "flagged"),
    [
        ("v1.30.1", "v1.31.1", True),
        ("v1.31.0", "v1.31.1", True),
        ("v1.9.0", "v1.10.0", True),  # numeric, not string, comparison
        ("v1.10.0", "v1.9.0", False),
        ("v1.31.1", "v1.31.1", False),
    ],
)
def test_node_pool_version_skew(pool_version: str, control: str, flagged: bool) -> None:
    state = with_cluster(
        clean_state(node_pools=(node_pool(kubernetes_version=pool_version),)),
        kubernetes_version=control,
    )
    findings = scan_oci(state, "oke.node-pool-version-skew")
    assert bool(findings) is flagged
    if flagged:
        assert findings[0].resource.kind == "NodePool"
        assert f"kubernetes_version is {pool_version}" in findings[0].message


def test_unparseable_versions_and_unread_node_pools_are_unknown() -> None:
    state = clean_state(
        node_pools=(node_pool(kubernetes_version="weird"),), gaps=(gap("node_pools"),)
    )
    findings = scan_oci(state, "oke.node-pool-version-skew")
    assert len(findings) == 2 and {f.status for f in findings} == {Status.UNKNOWN}


@pytest.mark.parametrize(("days", "flagged"), [(59, False), (60, False), (61, True), (400, True)])
def test_stale_node_image_uses_the_default_age(days: int, flagged: bool) -> None:
    pool = node_pool(image_created=NOW - timedelta(days=days))
    findings = scan_oci(clean_state(node_pools=(pool,)), "oke.stale-node-image")
    assert bool(findings) is flagged
    if flagged:
        assert f"created {days} days ago" in findings[0].message
        assert "Oracle-Linux-8.10" in findings[0].message


def test_stale_node_image_honours_the_configured_age_and_unknown_dates() -> None:
    pools = (node_pool(image_created=NOW - timedelta(days=20)), node_pool("p2", image_created=None))
    findings = scan_oci(
        clean_state(node_pools=pools),
        "oke.stale-node-image",
        config=config(node_image_max_age_days=10),
    )
    assert {(f.resource.name, f.status) for f in findings} == {
        ("pool1", Status.OPEN),
        ("p2", Status.UNKNOWN),
    }


# --- network policy enforcement ------------------------------------------------------------

POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "deny", "namespace": "shop"},
    "spec": {"podSelector": {}},
}
CALICO = deployment(
    "calico-node",
    "kube-system",
    containers=[{"name": "calico-node", "image": "docker.io/calico/node:v3.28.0"}],
)
CILIUM_BY_IMAGE = deployment(
    "agent", "kube-system", containers=[{"name": "a", "image": "quay.io/cilium/cilium:v1.16"}]
)


@pytest.mark.parametrize("cni", ["FLANNEL_OVERLAY", "OCI_VCN_IP_NATIVE"])
def test_policies_without_an_engine_are_not_enforced(cni: str) -> None:
    state = with_cluster(clean_state(), cni_type=cni)
    [finding] = scan_oci(state, "oke.network-policy-not-enforced", docs=[POLICY])
    assert finding.severity is Severity.HIGH
    assert f"cni_type is {cni}" in finding.message
    assert "1 NetworkPolicies are not enforced" in finding.message


def test_workloads_without_policies_also_need_an_engine() -> None:
    [finding] = scan_oci(clean_state(), "oke.network-policy-not-enforced", docs=[deployment()])
    assert "recommended" in finding.message


@pytest.mark.parametrize("engine", [CALICO, CILIUM_BY_IMAGE])
def test_a_policy_engine_enforces_policies(engine: dict[str, object]) -> None:
    docs = [POLICY, deployment(), engine]
    assert scan_oci(clean_state(), "oke.network-policy-not-enforced", docs=docs) == []


def test_nothing_to_enforce_passes_and_system_workloads_do_not_count() -> None:
    system_only = deployment("coredns", "kube-system")
    assert scan_oci(clean_state(), "oke.network-policy-not-enforced", docs=[system_only]) == []


def test_network_policy_enforcement_needs_a_whole_cluster() -> None:
    findings = scan_oci(
        clean_state(), "oke.network-policy-not-enforced", docs=[POLICY], whole_cluster=False
    )
    assert findings == []


# --- logs and audit -------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "flagged"), [(90, True), (364, True), (365, False)])
def test_audit_retention(days: int, flagged: bool) -> None:
    findings = scan_oci(clean_state(audit_retention_days=days), "oke.audit-retention-short")
    assert bool(findings) is flagged
    if flagged:
        assert findings[0].resource.kind == "Tenancy"
        assert f"retention_period_days is {days}" in findings[0].message


def test_audit_retention_not_read_is_unknown_with_the_policy() -> None:
    policy = "Allow group g to read audit-events in tenancy"
    state = clean_state(audit_retention_days=None, gaps=(gap("audit", policy=policy),))
    [finding] = scan_oci(state, "oke.audit-retention-short")
    assert finding.status is Status.UNKNOWN and policy in finding.message


def test_control_plane_logs() -> None:
    [finding] = scan_oci(
        clean_state(control_plane_log_enabled=False), "oke.control-plane-logs-disabled"
    )
    assert finding.status is Status.OPEN and "oke-k8s-cp-prod" in finding.message
    [unknown] = scan_oci(
        clean_state(control_plane_log_enabled=None, gaps=(gap("control_plane_log"),)),
        "oke.control-plane-logs-disabled",
    )
    assert unknown.status is Status.UNKNOWN


# --- Vault secrets -------------------------------------------------------------------------


def _secret(name: str, age: int | None, rotation: bool = True) -> VaultSecret:
    return VaultSecret(
        id=ocid("vaultsecret", name),
        name=name,
        compartment_id=ocid("compartment", "apps"),
        vault_id=ocid("vault", "v"),
        current_version_created=NOW - timedelta(days=age) if age is not None else None,
        rotation_enabled=rotation,
    )


def test_vault_secrets_one_finding_per_secret() -> None:
    secrets = (
        _secret("fresh", 10),
        _secret("old", 120),
        _secret("manual", 5, rotation=False),
        _secret("both", 200, rotation=False),
        _secret("undated", None),
    )
    findings = scan_oci(clean_state(vault_secrets=secrets), "oke.vault-secret-not-rotated")
    by_name = {f.resource.name: f for f in findings}
    assert set(by_name) == {"old", "manual", "both", "undated"}
    assert "120 days old (maximum 90)" in by_name["old"].message
    assert "rotation_enabled is false" in by_name["manual"].message
    assert "200 days old" in by_name["both"].message and "rotation" in by_name["both"].message
    assert by_name["undated"].status is Status.UNKNOWN
    assert by_name["old"].resource.kind == "VaultSecret"
    assert by_name["old"].resource.ocid == ocid("vaultsecret", "old")


def test_vault_secret_age_is_configurable_and_gaps_are_unknown() -> None:
    state = clean_state(
        vault_secrets=(_secret("s", 40),), gaps=(gap("vault_secrets", ocid("compartment", "x")),)
    )
    findings = scan_oci(
        state, "oke.vault-secret-not-rotated", config=config(vault_secret_max_age_days=30)
    )
    assert {(f.resource.name, f.status) for f in findings} == {
        ("s", Status.OPEN),
        ("*", Status.UNKNOWN),
    }
