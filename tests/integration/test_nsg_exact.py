"""``move-rules-to-nsg`` mirrors and restores every rule exactly (issue 12).

The real ``oci`` SDK against the fake OCI API, the real ``kubernetes`` client against the fake
Kubernetes API (LoadBalancer Services), a real audit database (SQLite and PostgreSQL). Rules
with source-port ranges and ICMP type/code go into the NSGs as they are and come back into the
security lists byte for byte; the load balancers keep their rules through an NSG attached by
annotation before their security list is emptied; a crash after any step never leaves an
original rule in force nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from okeguard.config import RemediationConfig
from okeguard.remediations import kube_actions, oci_actions, workflow
from okeguard.remediations.engine import SimulatedCrash, execute_plan
from okeguard.remediations.kube_writer import MERGE_PATCH
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import FakeOciApi, running_fake_oci_api
from tests.fakes.oci_world import OkeWorld, build_oke_world
from tests.helpers import after_lease
from tests.integration.database import Database
from tests.integration.requests_support import oci_live_cluster
from tests.unit.factories import namespace
from tests.unit.oke_factories import service

assert kube_actions and oci_actions  # imported to register their operations
FAST = RemediationConfig(poll_interval_seconds=0.01, work_request_timeout_seconds=30)
RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"
LB_NSGS = "oci.oraclecloud.com/oci-network-security-groups"

# Rules in the API's security-list shape, as OKE's quick-create writes them (and a few more).
SPORT_443 = {  # stateless return traffic of HTTPS: source port 443, any destination port
    "protocol": "6",
    "source": "0.0.0.0/0",
    "sourceType": "CIDR_BLOCK",
    "isStateless": True,
    "tcpOptions": {"sourcePortRange": {"min": 443, "max": 443}},
}
SPORT_443_INSIDE = {**SPORT_443, "source": "10.0.0.0/16"}
PATH_MTU = {  # OKE's default: ICMP type 3 code 4 from anywhere (path MTU discovery)
    "protocol": "1",
    "source": "0.0.0.0/0",
    "sourceType": "CIDR_BLOCK",
    "isStateless": False,
    "icmpOptions": {"type": 3, "code": 4},
}
UNREACHABLE_VCN = {  # OKE's default: ICMP type 3 (every code) from the VCN
    "protocol": "1",
    "source": "10.0.0.0/16",
    "sourceType": "CIDR_BLOCK",
    "isStateless": False,
    "icmpOptions": {"type": 3},
}
UDP_BOTH = {
    "protocol": "17",
    "source": "10.0.0.0/16",
    "sourceType": "CIDR_BLOCK",
    "isStateless": True,
    "description": "DNS answers to high ports",
    "udpOptions": {
        "sourcePortRange": {"min": 53, "max": 53},
        "destinationPortRange": {"min": 1024, "max": 65535},
    },
}
ICMP6_ECHO = {
    "protocol": "58",
    "source": "fd00::/48",
    "sourceType": "CIDR_BLOCK",
    "isStateless": False,
    "icmpOptions": {"type": 128, "code": 0},
}
EGRESS_SERVICE = {
    "protocol": "6",
    "destination": "all-fra-services-in-oracle-services-network",
    "destinationType": "SERVICE_CIDR_BLOCK",
    "isStateless": False,
    "tcpOptions": {"destinationPortRange": {"min": 443, "max": 443}},
}
EXTRA_WORKER_INGRESS = [SPORT_443, SPORT_443_INSIDE, PATH_MTU, UNREACHABLE_VCN, UDP_BOTH]
EXTRA_LB_INGRESS = [PATH_MTU, ICMP6_ECHO]


def canonical(doc: dict[str, Any]) -> str:
    """A stored rule as canonical JSON: equal strings are byte-for-byte equal rules."""
    return json.dumps(
        {k: v for k, v in doc.items() if k not in ("id", "isValid", "timeCreated")}, sort_keys=True
    )


def list_rules(api: FakeOciApi, sl_id: str) -> list[str]:
    doc = api.get(sl_id)
    ingress = [canonical(r) for r in doc.get("ingressSecurityRules") or []]
    egress = [canonical(r) for r in doc.get("egressSecurityRules") or []]
    return sorted(["in " + r for r in ingress] + ["out " + r for r in egress])


def all_lists(api: FakeOciApi, world: OkeWorld) -> dict[str, list[str]]:
    return {sl: list_rules(api, sl) for sl in world.security_lists.values()}


def nsg_form(doc: dict[str, Any], direction: str) -> dict[str, Any]:
    """A security-list rule as an NSG holds it (with its ``direction``)."""
    return {**doc, "direction": direction}


def ours(api: FakeOciApi) -> dict[str, str]:
    """The NSGs okeguard created: display name -> OCID."""
    return {
        n["displayName"]: n["id"]
        for n in api.of_kind("networkSecurityGroup")
        if "okeguard-request" in (n.get("freeformTags") or {})
    }


@pytest.fixture
def oci_api() -> Iterator[FakeOciApi]:
    with running_fake_oci_api(work_request_polls=2) as api:
        yield api


@pytest.fixture
def world(oci_api: FakeOciApi) -> OkeWorld:
    world = build_oke_world(oci_api, secrets=0, node_pools=1, nodes_per_pool=1)
    workers = oci_api.get(world.security_lists["workers"])
    oci_api.update(
        world.security_lists["workers"],
        ingressSecurityRules=workers["ingressSecurityRules"] + EXTRA_WORKER_INGRESS,
        egressSecurityRules=workers["egressSecurityRules"] + [EGRESS_SERVICE],
    )
    lb = oci_api.get(world.security_lists["lb"])
    oci_api.update(
        world.security_lists["lb"],
        ingressSecurityRules=lb["ingressSecurityRules"] + EXTRA_LB_INGRESS,
    )
    return world


@pytest.fixture
def live(
    kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> LiveCluster:
    kube_api.add(namespace("shop"), service(annotations={RULE_MODE: "SL-All"}))
    return oci_live_cluster(kube_api, oci_api, world.cluster_id, oci_config, FAST)


def migration(live: LiveCluster, variant: str = "default") -> Plan:
    inventory = live.read()
    found = [
        f
        for f in live.findings(inventory, ("oke.world-open-ingress",))
        if f.status.value == "open" and f.resource.name == "workers-sl"
    ]
    return plan_finding(found[0], inventory, FAST, variant)


def approved(database: Database, plan: Plan) -> int:
    request = workflow.request_fix(database.sessions, plan, "alice", FAST)
    workflow.decide(database.sessions, request.id, "bob", FAST, approve=True, plan_hash=plan.hash)
    return request.id


def test_a_rollback_restores_every_rule_byte_for_byte(
    database: Database,
    live: LiveCluster,
    oci_api: FakeOciApi,
    world: OkeWorld,
    kube_api: FakeKubeApi,
) -> None:
    before = all_lists(oci_api, world)
    web_before = kube_api.get_object("Service", "web", "shop")["metadata"]["annotations"]
    plan = migration(live)
    request_id = approved(database, plan)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    # Every mirrored rule is in an NSG exactly as it was in its list (the default variant drops
    # the world-open SSH 22 and "source port 443, any destination port" rules: the fix).
    nsgs = ours(oci_api)
    held = {canonical(r) for n in nsgs.values() for r in oci_api.nsg_rules[n]}
    for doc in [*EXTRA_WORKER_INGRESS, *EXTRA_LB_INGRESS]:
        assert (canonical(nsg_form(doc, "INGRESS")) in held) is (doc is not SPORT_443)
    assert canonical(nsg_form(EGRESS_SERVICE, "EGRESS")) in held
    assert all(rules == [] for rules in all_lists(oci_api, world).values())
    # The load balancer keeps its rules through the load-balancer NSG, attached by annotation.
    web = kube_api.get_object("Service", "web", "shop")["metadata"]["annotations"]
    assert web[RULE_MODE] == "NSG" and web[LB_NSGS] == nsgs["okeguard-prod-oke-load-balancers"]
    # A re-scan no longer finds the world-open rules of the workers' list nor the SL-mode LB.
    inventory = live.read()
    still = {
        (f.check_id, f.resource.name)
        for f in live.findings(inventory, ("oke.world-open-ingress", "oke.lb-security-list-mode"))
        if f.status.value == "open"
    }
    assert ("oke.world-open-ingress", "workers-sl") not in still
    assert not {c for c, _ in still} & {"oke.lb-security-list-mode"}

    back = workflow.rollback_request(database.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert (
        all_lists(oci_api, world)[world.security_lists["workers"]]
        == before[world.security_lists["workers"]]
    )
    assert all_lists(oci_api, world) == before
    assert kube_api.get_object("Service", "web", "shop")["metadata"]["annotations"] == web_before
    assert not ours(oci_api)


def test_a_dropped_stateless_source_port_rule_comes_back_exactly(
    database: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    # Only the world-open "TCP source port 443, stateless" rule besides OKE's usual ones: the
    # default variant drops it (it reaches every destination port), and a rollback must not
    # bring it back as TCP on all ports (it once did).
    workers, lb = world.security_lists["workers"], world.security_lists["lb"]
    extras = [*EXTRA_WORKER_INGRESS, *EXTRA_LB_INGRESS, EGRESS_SERVICE]
    for sl_id, field in ((workers, "ingress"), (workers, "egress"), (lb, "ingress")):
        key = f"{field}SecurityRules"
        plain = [r for r in oci_api.get(sl_id)[key] if r not in extras]
        oci_api.update(
            sl_id,
            **{
                key: plain
                + ([SPORT_443] if key == "ingressSecurityRules" and sl_id == workers else [])
            },
        )
    before = all_lists(oci_api, world)
    assert "in " + canonical(SPORT_443) in before[workers]
    plan = migration(live)
    assert "- ingress rule 0.0.0.0/0 TCP sport 443 -> dport all (stateless) [dropped:" in plan.diff
    request_id = approved(database, plan)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    back = workflow.rollback_request(database.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert all_lists(oci_api, world)[workers] == before[workers]
    assert all_lists(oci_api, world) == before


def test_the_verify_step_keeps_the_lists_when_a_service_lost_its_nsg(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, kube_api: FakeKubeApi
) -> None:
    plan = migration(live)
    before = all_lists(oci_api, world)
    verify = next(
        i for i, op in enumerate(plan.operations) if op.action == "oci.verify-nsg-migration"
    )
    attach = plan.operations[verify - 1]
    assert attach.action == "k8s.attach-lb-nsg"

    def emit(action: str, payload: Any) -> None:
        # Someone takes the NSG off the Service between its attachment and the check.
        if action == "remediation.step.started" and payload["step"] == verify:
            edit = [{"op": "remove", "path": "/metadata/annotations/" + LB_NSGS.replace("/", "~1")}]
            writer.patch("Service", "shop", "web", edit)

    backends = live.backends()
    writer = backends.kube
    outcome = execute_plan(plan, backends, emit)
    assert outcome.state in ("rolled-back", "failed")
    assert "Service shop/web does not carry NSG okeguard-prod-oke-load-balancers" in str(
        outcome.reason
    )
    assert not oci_api.requests_to("/20160918/securityLists/*", "PUT")
    assert all_lists(oci_api, world) == before


def test_without_a_service_the_load_balancer_list_keeps_its_rules(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, kube_api: FakeKubeApi
) -> None:
    # The only Service is not a LoadBalancer any more: nothing can carry the load-balancer NSG.
    live.backends().kube.patch(
        "Service", "shop", "web", {"spec": {"type": "ClusterIP"}}, content_type=MERGE_PATCH
    )
    lb = world.security_lists["lb"]
    before = list_rules(oci_api, lb)
    plan = migration(live)
    assert not [op for op in plan.operations if op.target.get("ocid") == lb]
    assert not [op for op in plan.operations if "load-balancers" in str(op.params.get("nsg"))]
    assert any(
        "load-balancer NSG cannot be attached (no LoadBalancer Service" in r and "'lb-sl'" in r
        for r in plan.risks
    )
    outcome = execute_plan(plan, live.backends(), lambda *_: None)
    assert outcome.state == "applied", outcome.reason
    assert list_rules(oci_api, lb) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {**SPORT_443_INSIDE, "tcpOptions": {}},
            r"'workers-sl': ingress rule 10\.0\.0\.0/16 TCP all ports \(stateless\) has empty TCP options",
        ),
        (
            {**PATH_MTU, "icmpOptions": {"code": 4}},
            r"'workers-sl': ingress rule 0\.0\.0\.0/0 ICMP all types \(stateful\) has ICMP options without a type",
        ),
        (
            UDP_BOTH,
            r"'workers-sl' holds ingress rule 10\.0\.0\.0/16 UDP sport 53 -> dport 1024-65535 \(stateless\) twice",
        ),
    ],
)
def test_rules_read_from_oci_that_cannot_move_exactly_are_refused(
    live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld, extra: dict[str, Any], message: str
) -> None:
    workers = world.security_lists["workers"]
    ingress = oci_api.get(workers)["ingressSecurityRules"]
    oci_api.update(workers, ingressSecurityRules=[*ingress, extra])
    with pytest.raises(PlanError, match=message):
        migration(live)


# -- a crash after every step -------------------------------------------------------------------


def in_force_nowhere(
    api: FakeOciApi, kube: FakeKubeApi, world: OkeWorld, originals: dict[str, list[str]]
) -> list[str]:
    """Original rules (of ``originals``) in force neither in their security list nor, for every
    resource of the subnets using that list, in an NSG attached to it."""
    pool = api.get(world.node_pool_ids[0])["nodeConfigDetails"]
    web = kube.get_object("Service", "web", "shop")["metadata"].get("annotations") or {}
    lb_nsgs = [n.strip() for n in (web.get(LB_NSGS) or "").split(",") if n.strip()]
    attached = {  # the resources of each security list's subnets -> the NSGs they carry
        world.security_lists["endpoint"]: [api.get(world.cluster_id)["endpointConfig"]["nsgIds"]],
        world.security_lists["workers"]: [
            pool["nsgIds"],
            pool["nodePoolPodNetworkOptionDetails"]["podNsgIds"],
        ],
        world.security_lists["lb"]: [lb_nsgs if web.get(RULE_MODE) == "NSG" else []],
    }
    lost = []
    for sl_id, rules in originals.items():
        live_rules = set(list_rules(api, sl_id))
        for rule in rules:
            if rule in live_rules:
                continue
            direction, doc = rule.split(" ", 1)
            wanted = canonical(
                nsg_form(json.loads(doc), "INGRESS" if direction == "in" else "EGRESS")
            )
            for nsg_ids in attached[sl_id]:
                if not any(
                    wanted in {canonical(r) for r in api.nsg_rules.get(n, [])} for n in nsg_ids
                ):
                    lost.append(f"{sl_id}: {rule}")
                    break
    return lost


def test_the_steps_of_the_plan(live: LiveCluster) -> None:
    assert [op.action for op in migration(live, "conservative").operations] == STEPS


STEPS = [
    *["oci.create-nsg"] * 4,  # endpoint, workers, pods, load balancers
    *["oci.add-nsg-rules"] * 4,
    "oci.attach-endpoint-nsgs",
    "oci.attach-node-pool-nsgs",
    "k8s.attach-lb-nsg",
    "oci.verify-nsg-migration",
    *["oci.remove-security-list-rules"] * 3,
]


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", range(len(STEPS)))
def test_a_crash_after_any_step_leaves_every_rule_in_force_and_is_undone_exactly(
    crash_after: int,
    database: Database,
    live: LiveCluster,
    oci_api: FakeOciApi,
    world: OkeWorld,
    kube_api: FakeKubeApi,
) -> None:
    # The conservative variant drops nothing: every original rule must stay in force throughout.
    before = all_lists(oci_api, world)
    web_before = kube_api.get_object("Service", "web", "shop")["metadata"]["annotations"]
    plan = migration(live, "conservative")
    request_id = approved(database, plan)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=crash_after)
    assert in_force_nowhere(oci_api, kube_api, world, before) == []

    results = workflow.reconcile(database.sessions, "okeguard", lambda _: live, now=after_lease())
    assert [r.request_id for r in results] == [request_id]
    assert in_force_nowhere(oci_api, kube_api, world, before) == []
    if crash_after == len(STEPS) - 1:
        assert results[0].state == "applied", results[0].reason
        assert all(rules == [] for rules in all_lists(oci_api, world).values())
        back = workflow.rollback_request(database.sessions, request_id, "bob", live)
        assert back.state == "rolled-back", back.reason
    else:
        assert results[0].state == "rolled-back", results[0].reason
    assert all_lists(oci_api, world) == before
    assert kube_api.get_object("Service", "web", "shop")["metadata"]["annotations"] == web_before
    assert not ours(oci_api)
