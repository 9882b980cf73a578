"""``move-rules-to-nsg`` handles every rule exactly (issue 12): the rule model, its reading from
the SDK's models and writing back, snapshots, labels, the world-open check, and the plan (diff,
operation data, refusals, the load-balancer NSG and its Services)."""

from __future__ import annotations

import dataclasses
from typing import Any

import oci
import pytest
from hypothesis import given
from hypothesis import strategies as st

from okeguard.checks.model import Severity
from okeguard.checks.oke_network import rule_label, world_exposure
from okeguard.inventory.oci_convert import to_rule
from okeguard.inventory.oci_model import (
    IcmpMatch,
    OciState,
    PortRange,
    SecurityRule,
    oci_state_from_dict,
    oci_state_to_dict,
)
from okeguard.remediations.nsg_lb import LB_NSGS, forward_patch, undo_patch
from okeguard.remediations.nsg_plan_parts import rule_key
from okeguard.remediations.oci_writer import (
    nsg_rule_details,
    rule_from_dict,
    rule_to_dict,
    security_list_rule,
)
from okeguard.remediations.plan import PlanError
from tests.unit.oke_factories import ocid, open_findings, rule, scan_oci, security_list, service
from tests.unit.oke_factories import subnet as make_subnet
from tests.unit.test_oci_planners import RULE_MODE, SERVICE, inv, migrating_state, nsg_plan

core = oci.core.models
SPORT_443 = dataclasses.replace(
    rule(None, peer="0.0.0.0/0", stateless=True), source_ports=PortRange(443, 443)
)
PATH_MTU = rule(None, peer="0.0.0.0/0", protocol="1")
PATH_MTU = dataclasses.replace(PATH_MTU, icmp=IcmpMatch(3, 4))
UNREACHABLE = dataclasses.replace(rule(None, protocol="1"), icmp=IcmpMatch(3))


def sdk_ingress(**kw: Any) -> Any:
    return core.IngressSecurityRule(source="0.0.0.0/0", source_type="CIDR_BLOCK", **kw)


# -- reading rules from the SDK -----------------------------------------------------------------


def test_source_ports_and_icmp_type_and_code_are_read() -> None:
    tcp = sdk_ingress(
        protocol="6",
        is_stateless=True,
        tcp_options=core.TcpOptions(source_port_range=core.PortRange(min=443, max=443)),
    )
    assert to_rule(tcp, "ingress") == SPORT_443
    udp = sdk_ingress(
        protocol="17",
        udp_options=core.UdpOptions(
            source_port_range=core.PortRange(min=53, max=53),
            destination_port_range=core.PortRange(min=1024, max=65535),
        ),
    )
    read = to_rule(udp, "ingress")
    assert (read.source_ports, read.ports) == (PortRange(53, 53), PortRange(1024, 65535))
    mtu = to_rule(
        sdk_ingress(protocol="1", icmp_options=core.IcmpOptions(type=3, code=4)), "ingress"
    )
    assert mtu == PATH_MTU and mtu.inexact is None
    every_code = to_rule(
        sdk_ingress(protocol="1", icmp_options=core.IcmpOptions(type=3)), "ingress"
    )
    assert every_code.icmp == IcmpMatch(3, None)
    v6 = to_rule(
        sdk_ingress(protocol="58", icmp_options=core.IcmpOptions(type=128, code=0)), "ingress"
    )
    assert v6.icmp == IcmpMatch(128, 0) and v6.protocol == "58"


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"protocol": "17", "tcp_options": core.TcpOptions()}, "TCP options on protocol 17"),
        ({"protocol": "6", "tcp_options": core.TcpOptions()}, "empty TCP options"),
        (
            {"protocol": "6", "icmp_options": core.IcmpOptions(type=3)},
            "ICMP options on protocol 6",
        ),
        (
            {"protocol": "1", "icmp_options": core.IcmpOptions(code=4)},
            "ICMP options without a type",
        ),
        (
            {
                "protocol": "all",
                "udp_options": core.UdpOptions(
                    destination_port_range=core.PortRange(min=53, max=53)
                ),
            },
            "UDP options on protocol all",
        ),
    ],
)
def test_what_the_model_cannot_carry_is_named(kw: dict[str, Any], why: str) -> None:
    assert to_rule(sdk_ingress(**kw), "ingress").inexact == why


# -- writing them back, and the plan's form ---------------------------------------------------------

PORTS = st.none() | st.tuples(st.integers(1, 65535), st.integers(1, 65535)).map(
    lambda t: PortRange(min(t), max(t))
)


@st.composite
def rules(draw: st.DrawFn) -> SecurityRule:
    protocol = draw(st.sampled_from(["all", "1", "6", "17", "58", "47"]))
    ports = source_ports = icmp = None
    if protocol in ("6", "17"):
        ports, source_ports = draw(PORTS), draw(PORTS)
    if protocol in ("1", "58"):
        icmp = draw(
            st.none() | st.builds(IcmpMatch, st.integers(0, 255), st.none() | st.integers(0, 255))
        )
    return SecurityRule(
        direction=draw(st.sampled_from(["ingress", "egress"])),
        protocol=protocol,
        peer=draw(st.sampled_from(["0.0.0.0/0", "10.0.0.0/16", "::/0"])),
        peer_type="CIDR_BLOCK",
        stateless=draw(st.booleans()),
        ports=ports,
        description=draw(st.none() | st.text(max_size=8)),
        source_ports=source_ports,
        icmp=icmp,
    )


@given(rules())
def test_every_rule_survives_the_plan_the_nsg_and_the_security_list_unchanged(
    rule_: SecurityRule,
) -> None:
    assert rule_from_dict(rule_to_dict(rule_)) == rule_
    client = oci.base_client.BaseClient.__new__(oci.base_client.BaseClient)
    client.complex_type_mappings = oci.core.models.core_type_mapping
    client.type_mappings = oci.base_client.merge_type_mappings(
        client.primitive_type_map, oci.core.models.core_type_mapping
    )
    # Through the JSON the SDK sends and back through the models the SDK reads.
    for model, kind in (
        (nsg_rule_details(rule_), "SecurityRule"),
        (
            security_list_rule(rule_),
            "IngressSecurityRule" if rule_.direction == "ingress" else "EgressSecurityRule",
        ),
    ):
        wire = oci.base_client.BaseClient.sanitize_for_serialization(client, model)
        back = oci.base_client.BaseClient._BaseClient__deserialize(client, wire, kind)  # type: ignore[attr-defined]
        assert to_rule(back, rule_.direction) == rule_


def test_an_inexact_rule_is_never_written() -> None:
    inexact = dataclasses.replace(rule(22), inexact="empty TCP options")
    with pytest.raises(PlanError, match="empty TCP options"):
        rule_to_dict(inexact)


def test_snapshots_keep_the_new_fields_and_read_old_ones() -> None:
    sl = security_list("workers-sl", SPORT_443, PATH_MTU, UNREACHABLE)
    state = dataclasses.replace(migrating_state(), security_lists={sl.id: sl})
    data = oci_state_to_dict(state)
    assert oci_state_from_dict(data).security_lists[sl.id].rules == sl.rules
    for doc in data["security_lists"][sl.id]["rules"]:
        for key in ("source_ports", "icmp", "inexact"):
            doc.pop(key)  # a snapshot written before these fields existed
    old = oci_state_from_dict(data).security_lists[sl.id].rules
    assert [r.source_ports for r in old] == [None] * 3 and old[0].ports is None


def test_rules_differing_only_in_source_port_or_icmp_code_stay_apart() -> None:
    variants = [
        SPORT_443,
        dataclasses.replace(SPORT_443, source_ports=PortRange(80, 80)),
        PATH_MTU,
        dataclasses.replace(PATH_MTU, icmp=IcmpMatch(3, 3)),
        dataclasses.replace(PATH_MTU, icmp=IcmpMatch(3)),
        dataclasses.replace(PATH_MTU, icmp=None),
    ]
    assert len({rule_key(r) for r in variants}) == len(variants) == len(set(variants))


# -- labels and the world-open check -----------------------------------------------------------------


def test_labels_are_never_wider_than_the_rule() -> None:
    assert rule_label(SPORT_443) == "ingress rule 0.0.0.0/0 TCP sport 443 -> dport all (stateless)"
    both = dataclasses.replace(rule(22), source_ports=PortRange(1024, 65535))
    assert (
        rule_label(both) == "ingress rule 10.0.0.0/16 TCP sport 1024-65535 -> dport 22 (stateful)"
    )
    assert rule_label(PATH_MTU) == "ingress rule 0.0.0.0/0 ICMP type 3 code 4 (stateful)"
    assert rule_label(UNREACHABLE) == "ingress rule 10.0.0.0/16 ICMP type 3 (stateful)"
    assert (
        rule_label(rule(None, protocol="58"))
        == "ingress rule 10.0.0.0/16 ICMPv6 all types (stateful)"
    )
    assert rule_label(rule(22)) == "ingress rule 10.0.0.0/16 TCP 22 (stateful)"  # unchanged


def test_world_open_ingress_reads_source_ports_and_icmp_as_the_catalogue_says() -> None:
    # A source port does not narrow what a rule reaches: the sender picks it.
    assert world_exposure(SPORT_443) == (Severity.CRITICAL, "all ports")
    ssh = dataclasses.replace(SPORT_443, ports=PortRange(22, 22))
    assert world_exposure(ssh) == (Severity.CRITICAL, "SSH 22")
    # ICMP has no ports: never "all ports", whatever its type and code.
    for icmp in (PATH_MTU, dataclasses.replace(PATH_MTU, icmp=None)):
        assert world_exposure(icmp) is None
    sl = security_list("workers-sl", PATH_MTU, SPORT_443)
    state = dataclasses.replace(migrating_state(), security_lists={sl.id: sl})
    state = dataclasses.replace(
        state, subnets={**state.subnets, **{s.id: s for s in [make_subnet("workers", sl)]}}
    )
    (hit,) = [
        f
        for f in open_findings(scan_oci(state, "oke.world-open-ingress"))
        if f.resource.name == "workers-sl"
    ]
    assert "TCP sport 443 -> dport all (stateless) reaching all ports" in hit.message
    assert "ICMP" not in hit.message


# -- the plan ----------------------------------------------------------------------------------------


def exact_state(*extra: SecurityRule) -> OciState:
    state = migrating_state()
    workers = next(sl for sl in state.security_lists.values() if sl.name == "workers-sl")
    workers = dataclasses.replace(workers, rules=workers.rules + extra)
    return dataclasses.replace(state, security_lists={**state.security_lists, workers.id: workers})


def test_the_plan_carries_source_ports_and_icmp_in_its_data_and_its_diff() -> None:
    inside = dataclasses.replace(SPORT_443, peer="10.0.0.0/16", description="HTTPS answers")
    plan = nsg_plan(exact_state(inside, PATH_MTU, UNREACHABLE, SPORT_443), variant="conservative")
    workers = next(
        op
        for op in plan.operations
        if op.action == "oci.add-nsg-rules" and "workers" in op.target["name"]
    )
    assert rule_to_dict(inside) in workers.params["rules"]
    assert {
        "direction": "ingress",
        "protocol": "1",
        "peer": "0.0.0.0/0",
        "peer_type": "CIDR_BLOCK",
        "stateless": False,
        "ports": None,
        "source_ports": None,
        "icmp": {"type": 3, "code": 4},
        "description": None,
    } in workers.params["rules"]
    assert (
        "- ingress rule 10.0.0.0/16 TCP sport 443 -> dport all (stateless) 'HTTPS answers' ->"
        in plan.diff
    )
    assert "- ingress rule 0.0.0.0/0 ICMP type 3 code 4 (stateful) ->" in plan.diff
    assert "- ingress rule 10.0.0.0/16 ICMP type 3 (stateful) ->" in plan.diff
    removal = next(
        op
        for op in plan.operations
        if op.action == "oci.remove-security-list-rules" and op.target["name"] == "workers-sl"
    )
    assert [rule_from_dict(d) for d in removal.undo["rules"]].count(SPORT_443) == 1
    # The default variant drops the world-open one (it reaches every port) and says so exactly.
    default = nsg_plan(exact_state(inside, SPORT_443))
    assert (
        "- ingress rule 0.0.0.0/0 TCP sport 443 -> dport all (stateless) [dropped:" in default.diff
    )


def test_rules_the_model_cannot_carry_and_duplicates_are_refused_by_name() -> None:
    odd = dataclasses.replace(rule(22), inexact="empty TCP options")
    with pytest.raises(
        PlanError, match=r"'workers-sl': ingress rule 10.0.0.0/16 TCP 22 .*empty TCP options"
    ):
        nsg_plan(exact_state(odd))
    with pytest.raises(
        PlanError, match=r"holds ingress rule 0\.0\.0\.0/0 ICMP type 3 code 4 .* twice"
    ):
        nsg_plan(exact_state(PATH_MTU, PATH_MTU))


# -- the load balancers ------------------------------------------------------------------------------


def test_the_lb_nsg_is_attached_to_each_service_before_the_lb_list_is_emptied() -> None:
    plan = nsg_plan()
    ops = plan.operations
    attach = next(i for i, op in enumerate(ops) if op.action == "k8s.attach-lb-nsg")
    lb_removal = next(i for i, op in enumerate(ops) if op.target.get("name") == "lb-sl")
    verify = next(i for i, op in enumerate(ops) if op.action == "oci.verify-nsg-migration")
    assert attach < verify < lb_removal
    op = ops[attach]
    assert op.params["nsg"]["display_name"] == "okeguard-prod-load-balancers"
    assert ops[op.params["nsg"]["step"]].action == "oci.create-nsg"
    assert op.params["resourceVersion"] == "41" and op.undo == {"mode": "SL-All", "nsgs": None}
    assert ops[verify].params["services"] == [
        {"namespace": "shop", "name": "web", "nsg": op.params["nsg"]}
    ]
    assert "~ Service shop/web: mode 'SL-All' -> 'NSG'; " in plan.diff
    assert any("attached to the load balancers of Services shop/web" in r for r in plan.risks)
    mode = "/metadata/annotations/oci.oraclecloud.com~1security-rule-management-mode"
    nsgs = "/metadata/annotations/oci.oraclecloud.com~1oci-network-security-groups"
    assert forward_patch(op, "ocid1.nsg.lb") == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "test", "path": mode, "value": "SL-All"},
        {"op": "replace", "path": mode, "value": "NSG"},
        {"op": "add", "path": nsgs, "value": "ocid1.nsg.lb"},
    ]
    assert undo_patch(op, "ocid1.nsg.lb") == [
        {"op": "test", "path": mode, "value": "NSG"},
        {"op": "replace", "path": mode, "value": "SL-All"},
        {"op": "test", "path": nsgs, "value": "ocid1.nsg.lb"},
        {"op": "remove", "path": nsgs},
    ]


def test_a_service_already_in_nsg_mode_keeps_its_nsgs_and_gets_ours_too() -> None:
    own = service(annotations={RULE_MODE: "nsg", LB_NSGS: "ocid1.nsg.a, ocid1.nsg.b"})
    own["metadata"]["resourceVersion"] = "5"
    op = next(o for o in nsg_plan(docs=[own]).operations if o.action == "k8s.attach-lb-nsg")
    patch = forward_patch(op, "ocid1.nsg.lb")
    assert patch[-1]["value"] == "ocid1.nsg.a,ocid1.nsg.b,ocid1.nsg.lb"
    assert undo_patch(op, "ocid1.nsg.lb")[-1]["value"] == "ocid1.nsg.a, ocid1.nsg.b"
    full = service(annotations={LB_NSGS: ",".join(f"ocid1.nsg.{i}" for i in range(5))})
    with pytest.raises(PlanError, match="shop/web already names 5 NSGs"):
        nsg_plan(docs=[full])


def test_without_a_service_to_carry_it_the_lb_list_keeps_its_rules() -> None:
    plan = nsg_plan(docs=[])
    assert "okeguard-prod-load-balancers" not in str([op.to_dict() for op in plan.operations])
    assert not [op for op in plan.operations if op.target.get("name") == "lb-sl"]
    assert any(
        "no LoadBalancer Service in the load-balancer subnets" in r
        and "'lb-sl'" in r
        and "keep all their rules" in r
        for r in plan.risks
    )
    # A Service whose load balancer lives in another subnet cannot carry it either.
    elsewhere = service(
        annotations={"service.beta.kubernetes.io/oci-load-balancer-subnet1": ocid("subnet", "x")}
    )
    plan = nsg_plan(docs=[elsewhere])
    assert not [op for op in plan.operations if op.target.get("name") == "lb-sl"]
    assert "k8s.attach-lb-nsg" not in [op.action for op in plan.operations]


def test_lb_subnets_with_different_lists_keep_their_rules() -> None:
    state = migrating_state()
    other = security_list("lb2-sl", rule(80, peer="0.0.0.0/0"))
    lb2 = make_subnet("lb2", other, public=True)
    cluster = dataclasses.replace(
        state.cluster, lb_subnet_ids=(*state.cluster.lb_subnet_ids, lb2.id)
    )  # type: ignore[arg-type]
    state = dataclasses.replace(
        state,
        cluster=cluster,
        subnets={**state.subnets, lb2.id: lb2},
        security_lists={**state.security_lists, other.id: other},
    )
    plan = nsg_plan(state, docs=[SERVICE])
    assert not [op for op in plan.operations if op.target.get("name") in ("lb-sl", "lb2-sl")]
    assert any("different security lists" in r for r in plan.risks)
    assert inv(state).oci is state
