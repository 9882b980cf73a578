"""The OCI planners (``move-rules-to-nsg``, ``make-endpoint-private``) as pure functions of a
finding and a hand-built inventory: order of operations, variants, undo data, determinism."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.inventory.oci_model import ClusterEndpoint, OciState
from okeguard.remediations.endpoint import plan_make_endpoint_private
from okeguard.remediations.nsg_migration import plan_move_rules_to_nsg
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import plan_finding
from tests.helpers import inventory
from tests.unit.oke_factories import (
    EGRESS_ALL,
    clean_state,
    node_pool,
    nsg,
    ocid,
    open_findings,
    rule,
    scan_oci,
    security_list,
    service,
    subnet,
    with_cluster,
    with_lists,
    with_nsgs,
    with_subnets,
    world,
)

SETTINGS = RemediationConfig()
RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"
SERVICE = service(annotations={RULE_MODE: "SL-All"})
SERVICE["metadata"]["resourceVersion"] = "41"


def migrating_state() -> OciState:
    """Endpoint and pool without NSGs; the workers' list has SSH open to the world."""
    state = clean_state(node_pools=(node_pool(nsg_ids=(), etag="pool-etag"),))
    endpoint = ClusterEndpoint(ocid("subnet", "api"), False, ())
    state = with_cluster(state, endpoint=endpoint, etag="cluster-etag")
    workers = security_list("workers-sl", EGRESS_ALL, rule(10250), world(22), rule(None))
    lb = security_list("lb-sl", rule(443, peer="0.0.0.0/0"))
    return with_lists(state, dataclasses.replace(workers, etag="w-etag"), lb)


def inv(state: OciState, docs: Iterable[Mapping[str, Any]] = (SERVICE,)) -> Inventory:
    return dataclasses.replace(inventory(docs, whole_cluster=True), oci=state)


def finding(state: OciState, check: str, docs: Iterable[Mapping[str, Any]] = (SERVICE,)) -> Finding:
    found = [f for f in open_findings(scan_oci(state, check, docs=docs))]
    assert found, f"{check} did not fire"
    return sorted(found, key=lambda f: f.fingerprint)[0]


def nsg_plan(state: OciState | None = None, variant: str = "default", **kw: Any) -> Plan:
    state = state or migrating_state()
    found = finding(state, "oke.security-lists-instead-of-nsgs")
    return plan_move_rules_to_nsg(found, inv(state, **kw), SETTINGS, variant)


def actions(plan: Plan) -> list[str]:
    return [op.action for op in plan.operations]


def test_the_plan_creates_attaches_verifies_and_only_then_removes() -> None:
    plan = nsg_plan()
    acts = actions(plan)
    assert acts == [
        "oci.create-nsg",  # endpoint
        "oci.create-nsg",  # workers
        "oci.create-nsg",  # load balancers
        "oci.add-nsg-rules",
        "oci.add-nsg-rules",
        "oci.add-nsg-rules",
        "oci.attach-endpoint-nsgs",
        "oci.attach-node-pool-nsgs",
        "k8s.attach-lb-nsg",  # before any rule leaves the load-balancer list
        "oci.verify-nsg-migration",
        "oci.remove-security-list-rules",
        "oci.remove-security-list-rules",
        "oci.remove-security-list-rules",
    ]
    names = [op.params["nsg"]["display_name"] for op in plan.operations[:3]]
    assert names == [
        "okeguard-prod-endpoint",
        "okeguard-prod-workers",
        "okeguard-prod-load-balancers",
    ]
    # Later steps name the NSG by the step creating it.
    for op in plan.operations[3:6]:
        assert plan.operations[op.params["nsg"]["step"]].action == "oci.create-nsg"
    assert plan.variants == ("default", "conservative")


def test_undo_data_is_precomputed() -> None:
    plan = nsg_plan()
    endpoint = next(op for op in plan.operations if op.action == "oci.attach-endpoint-nsgs")
    assert endpoint.undo == {"nsg_ids": []} and endpoint.params["etag"] == "cluster-etag"
    pool = next(op for op in plan.operations if op.action == "oci.attach-node-pool-nsgs")
    assert pool.undo == {"nsg_ids": [], "pod_nsg_ids": []} and pool.params["etag"] == "pool-etag"
    assert pool.params["cycling"] == {"maximum_surge": "1", "maximum_unavailable": "0"}
    for op in plan.operations:
        if op.action == "oci.remove-security-list-rules":
            assert op.undo["rules"] == op.params["rules"] and op.params["rules"]
    workers = next(op for op in plan.operations if op.target.get("name") == "workers-sl")
    assert workers.params["etag"] == "w-etag" and len(workers.params["rules"]) == 4


def test_default_variant_drops_world_open_ssh_and_says_so() -> None:
    plan = nsg_plan()
    workers_rules = plan.operations[4].params["rules"]
    assert {"0.0.0.0/0"} & {
        r["peer"] for r in workers_rules if r["direction"] == "ingress"
    } == set()
    assert "[dropped: world-open ingress reaching SSH 22]" in plan.diff
    assert any("dropped from 'workers-sl'" in risk for risk in plan.risks)
    conservative = nsg_plan(variant="conservative")
    kept = conservative.operations[4].params["rules"]
    assert any(r["peer"] == "0.0.0.0/0" and r["ports"] == [22, 22] for r in kept)
    assert "dropped" not in conservative.diff
    assert any("stays open" in risk for risk in conservative.risks)
    assert conservative.hash != plan.hash


def test_world_open_api_port_moves_in_the_default_variant() -> None:
    lb_rule = [r for r in nsg_plan().operations[5].params["rules"]]
    assert lb_rule == [dict(lb_rule[0], peer="0.0.0.0/0", ports=[443, 443])]


def test_risks_name_node_cycling_shared_lists_and_the_lb_nsg() -> None:
    risks = " | ".join(nsg_plan().risks)
    assert "node pool 'pool1': its 1 nodes are replaced" in risks
    assert "PodDisruptionBudgets" in risks
    assert "no subnet outside the cluster relies on them" in risks
    assert "existing nodes get the NSGs only by being replaced" in risks
    assert "okeguard-prod-load-balancers" in risks
    assert "moved unchanged although open to the world: ingress rule 0.0.0.0/0 TCP 443" not in risks
    api = security_list("lb-sl", rule(6443, peer="0.0.0.0/0"))
    risky = " | ".join(nsg_plan(with_lists(migrating_state(), api)).risks)
    assert "moved unchanged although open to the world: ingress rule 0.0.0.0/0 TCP 6443" in risky


def test_lb_service_patch_is_guarded_and_undoable() -> None:
    # A Service whose load balancer is outside the load-balancer subnets only changes mode.
    elsewhere = {"service.beta.kubernetes.io/oci-load-balancer-subnet1": ocid("subnet", "other")}
    outside = service(annotations={RULE_MODE: "SL-All", **elsewhere})
    outside["metadata"]["resourceVersion"] = "41"
    plan = nsg_plan(docs=[SERVICE, outside])
    patch_op = next(op for op in plan.operations if op.action == "k8s.patch")
    path = "/metadata/annotations/oci.oraclecloud.com~1security-rule-management-mode"
    assert patch_op.target == {"kind": "Service", "namespace": "shop", "name": "web"}
    assert patch_op.params["patch"] == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "test", "path": path, "value": "SL-All"},
        {"op": "replace", "path": path, "value": "NSG"},
    ]
    assert patch_op.undo["patch"] == [
        {"op": "test", "path": path, "value": "NSG"},
        {"op": "replace", "path": path, "value": "SL-All"},
    ]
    bare = service(name="api", annotations=elsewhere)
    bare["metadata"]["resourceVersion"] = "7"
    op = next(o for o in nsg_plan(docs=[SERVICE, bare]).operations if o.action == "k8s.patch")
    assert op.params["patch"][1]["op"] == "add" and op.params["patch"][1]["path"] == path
    assert op.undo["patch"][1] == {"op": "remove", "path": path}
    nsg_mode = service(annotations={RULE_MODE: "NSG", **elsewhere})
    assert "k8s.patch" not in actions(nsg_plan(docs=[SERVICE, nsg_mode]))


def test_same_inputs_give_the_same_plan_byte_for_byte() -> None:
    first = nsg_plan()
    assert nsg_plan().to_dict() == first.to_dict()
    # Rules and mappings listed in another order plan identically.
    state = migrating_state()
    shuffled = {
        k: dataclasses.replace(v, rules=tuple(reversed(v.rules)))
        for k, v in reversed(list(state.security_lists.items()))
    }
    other = dataclasses.replace(
        state,
        security_lists=shuffled,
        subnets=dict(reversed(list(state.subnets.items()))),
    )
    again = plan_move_rules_to_nsg(
        finding(state, "oke.security-lists-instead-of-nsgs"), inv(other), SETTINGS, "default"
    )
    assert again.hash == first.hash
    assert Plan.from_dict(first.to_dict()).hash == first.hash


def test_a_changed_etag_changes_the_hash() -> None:
    state = migrating_state()
    bumped = with_cluster(state, etag="cluster-etag-2")
    found = finding(state, "oke.security-lists-instead-of-nsgs")
    a = plan_move_rules_to_nsg(found, inv(state), SETTINGS, "default")
    b = plan_move_rules_to_nsg(found, inv(bumped), SETTINGS, "default")
    assert a.hash != b.hash


def test_every_finding_kind_plans_through_plan_finding() -> None:
    state = migrating_state()
    for check in (
        "oke.security-lists-instead-of-nsgs",
        "oke.lb-security-list-mode",
        "oke.world-open-ingress",
    ):
        plan = plan_finding(finding(state, check), inv(state), SETTINGS)
        assert plan.remediation == "move-rules-to-nsg" and plan.check_id == check


def test_world_open_rule_in_an_nsg_is_refused() -> None:
    state = with_nsgs(migrating_state(), nsg("workers-nsg", world(10250)))
    pool = node_pool(nsg_ids=(ocid("networksecuritygroup", "workers-nsg"),))
    state = dataclasses.replace(state, node_pools=(pool,))
    found = [
        f
        for f in open_findings(scan_oci(state, "oke.world-open-ingress"))
        if f.resource.kind == "NetworkSecurityGroup"
    ]
    with pytest.raises(PlanError, match="in NSG workers-nsg, not in a security list"):
        plan_move_rules_to_nsg(found[0], inv(state), SETTINGS, "default")


def test_unread_security_lists_and_unknown_variants_are_refused() -> None:
    state = migrating_state()
    found = finding(state, "oke.security-lists-instead-of-nsgs")
    with pytest.raises(PlanError, match="variants default, conservative"):
        plan_move_rules_to_nsg(found, inv(state), SETTINGS, "bold")
    missing = with_subnets(state, subnet("workers", ocid("securitylist", "gone")))
    with pytest.raises(PlanError, match="was not read"):
        plan_move_rules_to_nsg(found, inv(missing), SETTINGS, "default")
    with pytest.raises(PlanError, match="no OCI state"):
        plan_move_rules_to_nsg(found, inventory([SERVICE]), SETTINGS, "default")


def test_a_full_endpoint_nsg_list_is_refused() -> None:
    state = migrating_state()
    full = tuple(ocid("networksecuritygroup", f"n{i}") for i in range(5))
    crowded = with_cluster(state, endpoint=ClusterEndpoint(ocid("subnet", "api"), False, full))
    found = finding(state, "oke.security-lists-instead-of-nsgs")
    with pytest.raises(PlanError, match="already has 5 NSGs"):
        plan_move_rules_to_nsg(found, inv(crowded), SETTINGS, "default")


# -- make-endpoint-private ---------------------------------------------------------------------


def public_state() -> OciState:
    endpoint = ClusterEndpoint(
        ocid("subnet", "api"), True, (ocid("networksecuritygroup", "api-nsg"),)
    )
    return with_cluster(clean_state(), endpoint=endpoint, etag="etag-7")


def test_make_endpoint_private_is_one_pinned_operation() -> None:
    state = public_state()
    found = finding(state, "oke.public-api-endpoint", docs=())
    plan = plan_make_endpoint_private(found, inv(state, docs=()), SETTINGS, "default")
    (op,) = plan.operations
    assert op.action == "oci.set-endpoint-public"
    assert op.params == {"value": False, "etag": "etag-7"} and op.undo == {"value": True}
    assert op.target["ocid"] == state.cluster.id  # type: ignore[union-attr]
    assert any("Bastion" in r and "private endpoint" in r for r in plan.risks)
    assert "+is_public_ip_enabled: false" in plan.diff
    again = plan_make_endpoint_private(found, inv(state, docs=()), SETTINGS, "default")
    assert again.hash == plan.hash


def test_make_endpoint_private_refuses_legacy_and_subnet_only_exposure() -> None:
    legacy = with_cluster(clean_state(), endpoint=None)
    found = finding(legacy, "oke.public-api-endpoint", docs=())
    with pytest.raises(PlanError, match="not VCN-native"):
        plan_make_endpoint_private(found, inv(legacy, docs=()), SETTINGS, "default")
    public_subnet = with_subnets(
        clean_state(), subnet("api", ocid("securitylist", "api-sl"), public=True)
    )
    found = finding(public_subnet, "oke.public-api-endpoint", docs=())
    with pytest.raises(PlanError, match="move the endpoint to a private subnet"):
        plan_make_endpoint_private(found, inv(public_subnet, docs=()), SETTINGS, "default")
    with pytest.raises(PlanError, match="one variant"):
        plan_make_endpoint_private(found, inv(public_subnet, docs=()), SETTINGS, "other")
