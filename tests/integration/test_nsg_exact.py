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

from okeguard.config import ClusterConfig, Config, OciAuthConfig, RemediationConfig
from okeguard.remediations import kube_actions, oci_actions, workflow
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import REGION, FakeOciApi, running_fake_oci_api
from tests.fakes.oci_world import COMPARTMENT, OkeWorld, build_oke_world
from tests.integration.database import Database
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
    assert kube_api.kubeconfig_path is not None
    cluster = ClusterConfig(
        name="prod",
        context="fake",
        kubeconfig=str(kube_api.kubeconfig_path),
        cluster_id=world.cluster_id,
        region=REGION,
        compartments=(COMPARTMENT,),
    )
    auth = OciAuthConfig(mode="config_file", config_file=str(oci_config))
    config = Config(remediation=FAST, clusters=(cluster,), oci=auth)
    return LiveCluster(config, cluster, oci_api.service_endpoints())


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
    database: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    before = all_lists(oci_api, world)
    request_id = approved(database, migration(live))
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    back = workflow.rollback_request(database.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert all_lists(oci_api, world) == before


def test_a_dropped_stateless_source_port_rule_comes_back_exactly(
    database: Database, live: LiveCluster, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    # Only the world-open "TCP source port 443, stateless" rule besides OKE's usual ones: the
    # default variant drops it (it reaches every destination port), a rollback must not bring
    # it back as TCP on all ports.
    workers, lb = world.security_lists["workers"], world.security_lists["lb"]
    for sl_id, key in ((workers, "ingress"), (workers, "egress"), (lb, "ingress")):
        field = f"{key}SecurityRules"
        plain = [
            r
            for r in oci_api.get(sl_id)[field]
            if r not in EXTRA_WORKER_INGRESS + EXTRA_LB_INGRESS + [EGRESS_SERVICE]
        ]
        oci_api.update(
            sl_id, **{field: plain + ([SPORT_443] if (sl_id, key) == (workers, "ingress") else [])}
        )
    before = all_lists(oci_api, world)
    assert "in " + canonical(SPORT_443) in before[workers]
    request_id = approved(database, migration(live))
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    back = workflow.rollback_request(database.sessions, request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert all_lists(oci_api, world)[workers] == before[workers]
    assert all_lists(oci_api, world) == before
