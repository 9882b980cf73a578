"""OCI remediations end to end: the real ``oci`` SDK against the fake OCI API, the real
``kubernetes`` client against the fake Kubernetes API (LoadBalancer Services), a real SQLite
audit database. ``move-rules-to-nsg`` and ``make-endpoint-private`` are applied, verified and
rolled back; stale etags and failed work requests write nothing or are undone; a crash after any
step is reconciled without ever leaving a migrated rule in neither a security list nor an NSG.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from okeguard.audit import schema
from okeguard.audit.db import make_engine, session_factory
from okeguard.config import RemediationConfig
from okeguard.remediations import kube_actions, oci_actions, workflow
from okeguard.remediations.engine import Backends, SimulatedCrash, execute_plan
from okeguard.remediations.kube_writer import open_kube_writer
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.oci_writer import open_oci_writer
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import FakeOciApi, running_fake_oci_api
from tests.fakes.oci_world import COMPARTMENT, OkeWorld, build_oke_world, rule
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_chain_ok,
    oci_live_cluster,
    reconcile_after_lease,
    request_row,
)
from tests.unit.factories import namespace
from tests.unit.oke_factories import service

assert kube_actions and oci_actions  # imported to register their operations
FAST = RemediationConfig(poll_interval_seconds=0.01, work_request_timeout_seconds=30)
RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"
MIGRATION_STEPS = 16  # 4 NSGs created and filled, endpoint, 2 pools, 1 Service, check, 3 lists


@pytest.fixture
def oci_api() -> Iterator[FakeOciApi]:
    with running_fake_oci_api(work_request_polls=2) as api:
        yield api


@pytest.fixture
def world(oci_api: FakeOciApi) -> OkeWorld:
    world = build_oke_world(oci_api, secrets=0)
    # 28 more rules on the load-balancer list: its NSG is filled in two calls (25 + 4).
    lb = oci_api.get(world.security_lists["lb"])
    extra = [rule("ingress", "10.0.0.0/16", port=8000 + i) for i in range(28)]
    ingress = lb["ingressSecurityRules"] + [
        {k: v for k, v in r.items() if k != "direction"} for r in extra
    ]
    oci_api.update(world.security_lists["lb"], ingressSecurityRules=ingress)
    return world


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        yield Database(url, engine, session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def live(
    kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> LiveCluster:
    web = service(annotations={RULE_MODE: "SL-All"})
    kube_api.add(namespace("shop"), web)
    return oci_live_cluster(kube_api, oci_api, world.cluster_id, oci_config, FAST)


# -- helpers ----------------------------------------------------------------------------------


def _plan(live: LiveCluster, check_id: str, resource: str | None = None) -> Plan:
    inventory = live.read()
    found = [
        f
        for f in live.findings(inventory, (check_id,))
        if f.status.value == "open" and resource in (None, f.resource.name)
    ]
    return plan_finding(found[0], inventory, FAST)


def _migration(live: LiveCluster) -> Plan:
    return _plan(live, "oke.world-open-ingress", "workers-sl")


def _backends(live: LiveCluster) -> Backends:
    assert live.cluster.kubeconfig is not None
    kube = open_kube_writer("fake", kubeconfig=live.cluster.kubeconfig)
    oci = open_oci_writer(live.cluster, live.config.oci, live.oci_endpoints)
    return Backends(settings=FAST, kube=kube, oci=oci)


Canon = tuple[Any, ...]


def _span(value: Any) -> tuple[int, int] | None:
    return (value["min"], value["max"]) if value else None


def _canon(doc: dict[str, Any], direction: str | None = None) -> Canon:
    """A rule of the fake's store (security list or NSG form) as a comparable tuple holding
    every field that makes it the rule it is (source ports and ICMP type/code included)."""
    direction = (direction or doc["direction"]).lower()
    key = "source" if direction == "ingress" else "destination"
    options = doc.get("tcpOptions") or doc.get("udpOptions") or {}
    icmp = doc.get("icmpOptions")
    return (
        direction,
        str(doc["protocol"]),
        doc[key],
        doc.get(f"{key}Type") or "CIDR_BLOCK",
        bool(doc.get("isStateless")),
        _span(options.get("destinationPortRange")),
        _span(options.get("sourcePortRange")),
        (icmp["type"], icmp.get("code")) if icmp else None,
        doc.get("description"),
    )


def _plan_canon(data: dict[str, Any]) -> Canon:
    icmp = data.get("icmp")
    return (
        data["direction"],
        data["protocol"],
        data["peer"],
        data["peer_type"],
        data["stateless"],
        tuple(data["ports"]) if data["ports"] else None,
        tuple(data["source_ports"]) if data.get("source_ports") else None,
        (icmp["type"], icmp.get("code")) if icmp else None,
        data.get("description"),
    )


def _list_rules(api: FakeOciApi, sl_id: str) -> list[Canon]:
    doc = api.get(sl_id)
    return [_canon(r, "ingress") for r in doc.get("ingressSecurityRules") or []] + [
        _canon(r, "egress") for r in doc.get("egressSecurityRules") or []
    ]


def _our_nsgs(api: FakeOciApi) -> list[str]:
    return sorted(
        n["id"]
        for n in api.of_kind("networkSecurityGroup")
        if "okeguard-request" in (n.get("freeformTags") or {})
    )


def _snapshot(api: FakeOciApi, world: OkeWorld, kube: FakeKubeApi) -> dict[str, Any]:
    pools = {p: api.get(p)["nodeConfigDetails"] for p in world.node_pool_ids}
    return {
        "lists": {sl: sorted(_list_rules(api, sl)) for sl in world.security_lists.values()},
        "endpoint": api.get(world.cluster_id)["endpointConfig"],
        "pools": {
            p: (c["nsgIds"], c["nodePoolPodNetworkOptionDetails"]["podNsgIds"])
            for p, c in pools.items()
        },
        "mode": kube.get_object("Service", "web", "shop")["metadata"]["annotations"][RULE_MODE],
        "annotations": kube.get_object("Service", "web", "shop")["metadata"]["annotations"],
        "ours": _our_nsgs(api),
    }


def _migrated(plan: Plan) -> dict[str, set[Canon]]:
    """Security list OCID -> the rules the plan moves into NSGs (not the dropped ones)."""
    mirrored = {
        _plan_canon(r)
        for op in plan.operations
        if op.action == "oci.add-nsg-rules"
        for r in op.params["rules"]
    }
    return {
        op.target["ocid"]: {_plan_canon(r) for r in op.params["rules"]} & mirrored
        for op in plan.operations
        if op.action == "oci.remove-security-list-rules"
    }


def _assert_nowhere_lost(api: FakeOciApi, plan: Plan) -> None:
    in_nsgs = {_canon(r) for nsg in _our_nsgs(api) for r in api.nsg_rules.get(nsg, [])}
    for sl_id, rules in _migrated(plan).items():
        in_list = set(_list_rules(api, sl_id))
        lost = {r for r in rules if r not in in_list and r not in in_nsgs}
        assert not lost, f"rules of {sl_id} in neither place: {lost}"


# -- move-rules-to-nsg ------------------------------------------------------------------------


def test_move_rules_to_nsg_is_applied_verified_and_rolled_back(
    db: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, kube_api: FakeKubeApi
) -> None:
    before = _snapshot(oci_api, world, kube_api)
    plan = _migration(live)
    assert len(plan.operations) == MIGRATION_STEPS
    request_id = approved(db, plan, settings=FAST)
    oci_api.reset_requests()
    result = workflow.apply_request(db.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)

    after = _snapshot(oci_api, world, kube_api)
    ours = after["ours"]
    assert len(ours) == 4 and after["mode"] == "NSG"
    lb_nsg = next(n for n in ours if oci_api.get(n)["displayName"].endswith("-load-balancers"))
    assert after["annotations"]["oci.oraclecloud.com/oci-network-security-groups"] == lb_nsg
    assert all(rules == [] for rules in after["lists"].values())  # every rule left the lists
    ssh = _canon(rule("ingress", "0.0.0.0/0", port=22))
    in_nsgs = {_canon(r) for n in ours for r in oci_api.nsg_rules[n]}
    assert ssh not in in_nsgs  # dropped by the default variant: the fix
    assert set().union(*_migrated(plan).values()) == in_nsgs
    assert len(set(after["endpoint"]["nsgIds"]) & set(ours)) == 1
    for nsgs, pod_nsgs in after["pools"].values():
        assert len(set(nsgs) & set(ours)) == 1 and len(set(pod_nsgs) & set(ours)) == 1
    # Existing nodes were replaced by nodes carrying the NSGs.
    cycled = {c.node_pool_id: c for c in oci_api.node_cycles}
    assert set(cycled) == set(world.node_pool_ids)
    assert all(set(c.old_node_ids).isdisjoint(c.new_node_ids) for c in cycled.values())
    # Every update carried if-match, every create a retry token, no call added > 25 rules.
    updates = oci_api.requests_to("/20160918/securityLists/*", "PUT")
    updates += oci_api.requests_to("/20180222/nodePools/*", "PUT")
    updates += oci_api.requests_to("/20180222/clusters/*/actions/updateEndpointConfig", "POST")
    assert len(updates) == 6 and all(r.if_match for r in updates)
    creates = oci_api.requests_to("/20160918/networkSecurityGroups", "POST")
    assert creates and all(r.retry_token for r in creates)
    adds = oci_api.requests_to("/20160918/networkSecurityGroups/*/actions/addSecurityRules")
    sizes = sorted(len(r.body["securityRules"]) for r in adds)
    assert max(sizes) == 25 and 4 in sizes

    back = workflow.rollback_request(db.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert _snapshot(oci_api, world, kube_api) == {**before, "ours": []}
    assert not _our_nsgs(oci_api) and len(oci_api.node_cycles) == 4  # cycled again on undo
    assert_chain_ok(db)


def test_conservative_variant_keeps_the_world_open_rule_in_an_nsg(
    live: LiveCluster, oci_api: FakeOciApi
) -> None:
    inventory = live.read()
    finding = next(
        f
        for f in live.findings(inventory, ("oke.world-open-ingress",))
        if f.resource.name == "workers-sl"
    )
    plan = plan_finding(finding, inventory, FAST, "conservative")
    backends = _backends(live)
    outcome = execute_plan(plan, backends, lambda *_: None)
    assert outcome.state == "applied", outcome.reason
    ssh = _canon(rule("ingress", "0.0.0.0/0", port=22))
    assert any(_canon(r) == ssh for n in _our_nsgs(oci_api) for r in oci_api.nsg_rules[n])


def test_a_changed_security_list_stops_the_run_and_everything_is_undone(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, kube_api: FakeKubeApi
) -> None:
    plan = _migration(live)
    before = _snapshot(oci_api, world, kube_api)
    oci_api.update(world.security_lists["lb"], displayName="renamed")  # a new etag
    events: list[tuple[str, dict[str, Any]]] = []
    outcome = execute_plan(plan, _backends(live), lambda a, p: events.append((a, dict(p))))
    assert outcome.state == "rolled-back"
    assert "changed since the plan was made" in (outcome.reason or "")
    assert _snapshot(oci_api, world, kube_api) == before
    assert not oci_api.requests_to("/20160918/securityLists/*", "PUT")


def test_a_failed_node_cycle_rolls_the_migration_back(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, kube_api: FakeKubeApi
) -> None:
    plan = _migration(live)
    before = _snapshot(oci_api, world, kube_api)
    pool_step = next(
        i for i, op in enumerate(plan.operations) if op.action == "oci.attach-node-pool-nsgs"
    )

    def emit(action: str, payload: Any) -> None:
        if action == "remediation.step.started" and payload["step"] == pool_step:
            oci_api.fail_next_work_request("Pods could not be evicted: PDB allows 0 disruptions")

    outcome = execute_plan(plan, _backends(live), emit)
    assert outcome.state == "rolled-back"
    assert "FAILED" in (outcome.reason or "") and "PDB allows 0" in (outcome.reason or "")
    assert _snapshot(oci_api, world, kube_api) == before
    _assert_nowhere_lost(oci_api, plan)


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", range(MIGRATION_STEPS))
def test_a_crash_after_any_step_never_loses_a_rule(
    crash_after: int,
    db: Database,
    live: LiveCluster,
    oci_api: FakeOciApi,
    world: OkeWorld,
    kube_api: FakeKubeApi,
) -> None:
    before = _snapshot(oci_api, world, kube_api)
    plan = _migration(live)
    request_id = approved(db, plan, settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(db.sessions, request_id, "bob", live, crash_after=crash_after)
    assert request_row(db, request_id).state == "applying"
    _assert_nowhere_lost(oci_api, plan)

    results = reconcile_after_lease(db, live, actor="okeguard")
    assert [r.request_id for r in results] == [request_id]
    _assert_nowhere_lost(oci_api, plan)
    if crash_after == MIGRATION_STEPS - 1:
        assert request_row(db, request_id).state == "applied"
        assert all(rules == [] for rules in _snapshot(oci_api, world, kube_api)["lists"].values())
    else:
        assert request_row(db, request_id).state == "rolled-back", results[0].reason
        assert _snapshot(oci_api, world, kube_api) == before
    assert_chain_ok(db)


# -- make-endpoint-private --------------------------------------------------------------------


@pytest.fixture
def public(oci_api: FakeOciApi, world: OkeWorld) -> None:
    endpoint = {**oci_api.get(world.cluster_id)["endpointConfig"], "isPublicIpEnabled": True}
    oci_api.update(world.cluster_id, endpointConfig=endpoint)


def _public_ip(api: FakeOciApi, world: OkeWorld) -> bool:
    return bool(api.get(world.cluster_id)["endpointConfig"]["isPublicIpEnabled"])


@pytest.mark.usefixtures("public")
def test_make_endpoint_private_is_applied_verified_and_rolled_back(
    db: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    plan = _plan(live, "oke.public-api-endpoint")
    request_id = approved(db, plan, settings=FAST)
    oci_api.reset_requests()
    result = workflow.apply_request(db.sessions, request_id, "bob", live)
    assert result.state == "applied", result.reason
    assert not _public_ip(oci_api, world)
    (update,) = oci_api.requests_to("/20180222/clusters/*/actions/updateEndpointConfig")
    assert update.body == {"isPublicIpEnabled": False} and update.if_match
    assert len(oci_api.requests_to("/20180222/workRequests/*", "GET")) >= 2
    back = workflow.rollback_request(db.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert _public_ip(oci_api, world)
    assert_chain_ok(db)


@pytest.mark.usefixtures("public")
def test_a_stale_cluster_etag_is_refused_with_nothing_written(
    db: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    plan = _plan(live, "oke.public-api-endpoint")
    oci_api.update(world.cluster_id, freeformTags={"team": "x"})  # someone else wrote: new etag
    outcome = execute_plan(plan, _backends(live), lambda *_: None)
    assert outcome.state == "failed" and "changed since the plan was made" in str(outcome.reason)
    # The server's own 412 (the etag changed between the check and the write) is refused too.
    fresh = _plan(live, "oke.public-api-endpoint")
    oci_api.fail("/20180222/clusters/*/actions/updateEndpointConfig", 412, times=1)
    outcome = execute_plan(fresh, _backends(live), lambda *_: None)
    assert outcome.state == "failed" and "412" in str(outcome.reason)
    assert _public_ip(oci_api, world) and not oci_api.work_requests
    # Through the workflow, the re-plan notices the new etag and nothing is sent.
    request_id = approved(db, plan, settings=FAST)
    oci_api.reset_requests()
    with pytest.raises(workflow.Refused, match="changed since approval"):
        workflow.apply_request(db.sessions, request_id, "bob", live)
    assert request_row(db, request_id).state == "superseded"
    assert not [r for r in oci_api.requests if r.method != "GET"]
    assert_chain_ok(db)


@pytest.mark.usefixtures("public")
def test_a_failed_endpoint_work_request_is_reported_and_nothing_stays(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    plan = _plan(live, "oke.public-api-endpoint")
    oci_api.fail_next_work_request("endpoint update failed (fake)")
    outcome = execute_plan(plan, _backends(live), lambda *_: None)
    assert outcome.state == "rolled-back", outcome.reason
    assert "endpoint update failed (fake)" in str(outcome.reason)
    assert _public_ip(oci_api, world)


def test_every_oci_operation_is_registered() -> None:
    from okeguard.remediations.engine import ACTIONS

    assert {
        "oci.create-nsg",
        "oci.add-nsg-rules",
        "oci.attach-endpoint-nsgs",
        "oci.attach-node-pool-nsgs",
        "oci.verify-nsg-migration",
        "oci.remove-security-list-rules",
        "oci.set-endpoint-public",
        "k8s.attach-lb-nsg",
    } <= set(ACTIONS)


def _nsg_ref(world: OkeWorld) -> dict[str, Any]:
    return {
        "step": 1,
        "compartment_id": COMPARTMENT,
        "vcn_id": world.vcn_id,
        "display_name": "okeguard-prod-workers",
    }


def test_an_nsg_is_found_by_its_tag_without_creating_anything(
    oci_api: FakeOciApi, world: OkeWorld, live: LiveCluster
) -> None:
    def tagged(request: str) -> str:
        doc = {
            "compartmentId": COMPARTMENT,
            "vcnId": world.vcn_id,
            "displayName": "okeguard-prod-workers",
            "freeformTags": {"okeguard-request": request},
        }
        return oci_api.add("networkSecurityGroup", doc)

    tagged("5")
    ours = tagged("6")
    backends = Backends(settings=FAST, oci=live.backends().oci, request_id=6, plan_hash="h")
    assert oci_actions.find_nsg(backends, _nsg_ref(world)) == ours
    oci_api.remove(ours)
    backends.oci.created.clear()
    assert oci_actions.find_nsg(backends, _nsg_ref(world)) is None
    assert not oci_api.requests_to("/20160918/networkSecurityGroups", "POST")


def test_where_listing_is_refused_the_create_is_replayed_with_its_token(
    oci_api: FakeOciApi, world: OkeWorld, live: LiveCluster
) -> None:
    oci_api.fail("/20160918/networkSecurityGroups", 403, method="GET")
    backends = Backends(settings=FAST, oci=live.backends().oci, request_id=6, plan_hash="h")
    first = oci_actions.find_nsg(backends, _nsg_ref(world))
    backends.oci.created.clear()
    again = oci_actions.find_nsg(backends, _nsg_ref(world))
    assert first is not None and first == again
    posts = oci_api.requests_to("/20160918/networkSecurityGroups", "POST")
    assert len(posts) == 2 and posts[0].retry_token == posts[1].retry_token
    assert len(oci_api.of_kind("networkSecurityGroup")) == len(world.nsgs) + 1
