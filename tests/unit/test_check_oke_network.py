"""The OKE network checks: security lists and NSGs, worker placement, flow logs and the load
balancers of LoadBalancer Services (``okeguard/checks/oke_network.py`` and ``oke_services.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from okeguard.checks.model import Severity, Status
from okeguard.inventory.oci_model import FlowLog, WorkerNode
from tests.helpers import config
from tests.unit.oke_factories import (
    EGRESS_ALL,
    VCN_ID,
    clean_state,
    gap,
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
    without,
    world,
)

WORKERS_SL = ocid("securitylist", "workers-sl")


def workers_list(*rules: object) -> object:
    return security_list("workers-sl", *rules)  # type: ignore[arg-type]


# --- oke.world-open-ingress ----------------------------------------------------------------


def test_world_open_ingress_passes_on_the_clean_state() -> None:
    assert scan_oci(clean_state(), "oke.world-open-ingress") == []


@pytest.mark.parametrize(
    ("bad_rule", "severity", "shown"),
    [
        (world(22), Severity.CRITICAL, "ingress rule 0.0.0.0/0 TCP 22 (stateful) reaching SSH 22"),
        (world((20, 25)), Severity.CRITICAL, "TCP 20-25 (stateful) reaching SSH 22"),
        (world(3389), Severity.CRITICAL, "RDP 3389"),
        (world(10250), Severity.CRITICAL, "kubelet 10250"),
        (world(6443), Severity.HIGH, "TCP 6443 (stateful) reaching API 6443"),
        (world((31000, 31000)), Severity.HIGH, "reaching the NodePort range"),
        (world((29000, 30000)), Severity.HIGH, "the NodePort range"),
        (world(None), Severity.CRITICAL, "TCP all ports (stateful) reaching all ports"),
        (world(None, protocol="all"), Severity.CRITICAL, "all protocols all ports"),
        (world(None, protocol="17"), Severity.CRITICAL, "UDP all ports"),
        (world(22, stateless=True), Severity.CRITICAL, "TCP 22 (stateless)"),
        (rule(22, peer="::/0"), Severity.CRITICAL, "ingress rule ::/0 TCP 22"),
    ],
)
def test_world_open_ingress_flags_sensitive_ports_from_anywhere(
    bad_rule: object, severity: Severity, shown: str
) -> None:
    state = with_lists(clean_state(), workers_list(EGRESS_ALL, bad_rule))  # type: ignore[arg-type]
    [finding] = scan_oci(state, "oke.world-open-ingress")
    assert finding.severity is severity
    assert finding.resource.kind == "SecurityList"
    assert finding.resource.name == "workers-sl"
    assert finding.resource.ocid == WORKERS_SL
    assert shown in finding.message
    assert "security list 'workers-sl'" in finding.message


@pytest.mark.parametrize(
    "harmless",
    [
        world(443),  # a public web port
        world((8000, 8100)),
        rule(22, peer="10.0.0.0/8"),  # not from anywhere
        world(None, protocol="1"),  # ICMP has no ports
        rule(22, peer="0.0.0.0/0", direction="egress"),
        world((10251, 29999)),  # just around the sensitive ports
    ],
)
def test_world_open_ingress_ignores_other_rules(harmless: object) -> None:
    state = with_lists(clean_state(), workers_list(harmless))  # type: ignore[arg-type]
    assert scan_oci(state, "oke.world-open-ingress") == []


def test_world_open_ingress_reports_one_finding_per_list_naming_every_rule() -> None:
    state = with_lists(clean_state(), workers_list(world(443), world(6443), world(22)))
    [finding] = scan_oci(state, "oke.world-open-ingress")
    assert finding.severity is Severity.CRITICAL  # the worst rule
    assert "TCP 6443" in finding.message and "TCP 22" in finding.message
    assert "TCP 443" not in finding.message


def test_world_open_ingress_reads_nsgs_of_endpoint_and_node_pools() -> None:
    state = with_nsgs(clean_state(), nsg("api-nsg", world(6443)), nsg("workers-nsg", world(22)))
    findings = scan_oci(state, "oke.world-open-ingress")
    by_name = {f.resource.name: f for f in findings}
    assert set(by_name) == {"api-nsg", "workers-nsg"}
    assert by_name["api-nsg"].resource.kind == "NetworkSecurityGroup"
    assert by_name["api-nsg"].severity is Severity.HIGH
    assert by_name["workers-nsg"].severity is Severity.CRITICAL
    assert "NSG 'workers-nsg'" in by_name["workers-nsg"].message
    assert len({f.fingerprint for f in findings}) == 2


def test_world_open_ingress_reads_pod_nsgs_and_pod_subnets() -> None:
    pods_sl = security_list("pods-sl", world(None, protocol="all"))
    pool = node_pool(
        pod_subnet_ids=(ocid("subnet", "pods"),),
        pod_nsg_ids=(ocid("networksecuritygroup", "pods-nsg"),),
    )
    state = with_subnets(clean_state(node_pools=(pool,)), subnet("pods", pods_sl))
    state = with_nsgs(with_lists(state, pods_sl), nsg("pods-nsg", rule(30000, peer="::/0")))
    names = {f.resource.name for f in scan_oci(state, "oke.world-open-ingress")}
    assert names == {"pods-sl", "pods-nsg"}


def test_world_open_ingress_ignores_lists_of_subnets_outside_the_cluster() -> None:
    other = security_list("other-sl", world(22))
    state = with_subnets(with_lists(clean_state(), other), subnet("bastion", other))
    assert scan_oci(state, "oke.world-open-ingress") == []


def test_world_open_ingress_is_unknown_for_a_security_list_not_read() -> None:
    policy = "Allow group okeguard to read virtual-network-family in tenancy"
    state = clean_state()
    state = dataclasses.replace(
        state,
        security_lists=without(state.security_lists, WORKERS_SL),
        gaps=(gap("security_list", WORKERS_SL, policy),),
    )
    [finding] = scan_oci(state, "oke.world-open-ingress")
    assert finding.status is Status.UNKNOWN
    assert finding.resource.ocid == WORKERS_SL
    assert "403 NotAuthorizedOrNotFound" in finding.message
    assert policy in finding.message
    assert "subnet 'workers'" in finding.message


def test_world_open_ingress_is_unknown_even_without_a_recorded_gap() -> None:
    state = clean_state()
    state = dataclasses.replace(state, security_lists=without(state.security_lists, WORKERS_SL))
    [finding] = scan_oci(state, "oke.world-open-ingress")
    assert finding.status is Status.UNKNOWN
    assert "was not read" in finding.message


def test_world_open_ingress_is_unknown_for_unread_subnets_nsgs_and_node_pools() -> None:
    state = clean_state()
    state = dataclasses.replace(
        state,
        subnets=without(state.subnets, ocid("subnet", "workers")),
        nsgs=without(state.nsgs, ocid("networksecuritygroup", "api-nsg")),
        gaps=(gap("node_pools"),),
    )
    findings = scan_oci(state, "oke.world-open-ingress")
    assert {f.status for f in findings} == {Status.UNKNOWN}
    assert {f.resource.kind for f in findings} == {"Subnet", "NetworkSecurityGroup", "NodePool"}


def test_world_open_ingress_is_unknown_when_the_cluster_was_not_read() -> None:
    state = clean_state(cluster=None, gaps=(gap("cluster"),))
    [finding] = scan_oci(state, "oke.world-open-ingress")
    assert finding.status is Status.UNKNOWN
    assert finding.resource.kind == "Cluster"
    assert "403 NotAuthorizedOrNotFound reading cluster" in finding.message


# --- oke.security-lists-instead-of-nsgs ----------------------------------------------------


def test_nsgs_everywhere_pass() -> None:
    assert scan_oci(clean_state(), "oke.security-lists-instead-of-nsgs") == []


def test_node_pool_without_nsgs_over_rule_carrying_lists_is_flagged() -> None:
    state = clean_state(node_pools=(node_pool(nsg_ids=()),))
    [finding] = scan_oci(state, "oke.security-lists-instead-of-nsgs")
    assert finding.resource.kind == "NodePool"
    assert finding.resource.ocid == ocid("nodepool", "pool1")
    assert "nsg_ids is empty" in finding.message
    assert "security list 'workers-sl' of subnet 'workers' carries 2 rules" in finding.message


def test_endpoint_without_nsgs_is_flagged_on_the_cluster() -> None:
    state = clean_state()
    assert state.cluster is not None and state.cluster.endpoint is not None
    endpoint = dataclasses.replace(state.cluster.endpoint, nsg_ids=())
    [finding] = scan_oci(
        with_cluster(state, endpoint=endpoint), "oke.security-lists-instead-of-nsgs"
    )
    assert finding.resource.kind == "Cluster"
    assert "endpoint_config.nsg_ids is empty" in finding.message


def test_no_nsgs_but_empty_security_lists_pass() -> None:
    state = with_lists(clean_state(node_pools=(node_pool(nsg_ids=()),)), workers_list())  # type: ignore[arg-type]
    assert scan_oci(state, "oke.security-lists-instead-of-nsgs") == []


def test_no_nsgs_and_unread_lists_are_unknown() -> None:
    state = clean_state(node_pools=(node_pool(nsg_ids=()),))
    state = dataclasses.replace(state, security_lists=without(state.security_lists, WORKERS_SL))
    [finding] = scan_oci(state, "oke.security-lists-instead-of-nsgs")
    assert finding.status is Status.UNKNOWN
    assert WORKERS_SL in finding.message


# --- oke.workers-in-public-subnet ----------------------------------------------------------


def test_private_workers_pass() -> None:
    assert scan_oci(clean_state(), "oke.workers-in-public-subnet") == []


def test_public_placement_subnet_is_flagged() -> None:
    state = with_subnets(clean_state(), subnet("workers", WORKERS_SL, public=True))
    [finding] = scan_oci(state, "oke.workers-in-public-subnet")
    assert finding.resource.kind == "NodePool" and finding.severity is Severity.HIGH
    assert "prohibit_public_ip_on_vnic false" in finding.message


def test_nodes_with_public_ips_give_one_finding_per_pool() -> None:
    nodes = tuple(
        WorkerNode(ocid("instance", f"n{i}"), f"node-{i}", f"10.0.1.{i}", f"130.61.0.{i}")
        for i in range(5)
    )
    [finding] = scan_oci(
        clean_state(node_pools=(node_pool(nodes=nodes),)), "oke.workers-in-public-subnet"
    )
    assert "node 'node-0' has public IP 130.61.0.0" in finding.message
    assert "2 more nodes have public IPs" in finding.message


def test_unread_placement_subnet_is_unknown() -> None:
    state = clean_state()
    state = dataclasses.replace(
        state,
        subnets=without(state.subnets, ocid("subnet", "workers")),
        gaps=(gap("subnet", ocid("subnet", "workers")),),
    )
    [finding] = scan_oci(state, "oke.workers-in-public-subnet")
    assert finding.status is Status.UNKNOWN


# --- oke.flow-logs-disabled ----------------------------------------------------------------


def test_a_vcn_flow_log_covers_every_subnet() -> None:
    assert scan_oci(clean_state(), "oke.flow-logs-disabled") == []


def test_subnet_flow_logs_count_when_enabled_and_active() -> None:
    logs = (
        FlowLog(ocid("log", "api"), "api", ocid("subnet", "api"), True, True),
        FlowLog(ocid("log", "workers"), "workers", ocid("subnet", "workers"), True, True),
        FlowLog(ocid("log", "lb"), "lb", ocid("subnet", "lb"), True, False),  # not active
    )
    findings = scan_oci(clean_state(flow_logs=logs), "oke.flow-logs-disabled")
    assert [f.resource.name for f in findings] == ["lb"]
    assert "subnet 'lb' (load balancers)" in findings[0].message
    assert findings[0].resource.ocid == ocid("subnet", "lb")


def test_disabled_vcn_flow_log_flags_every_cluster_subnet() -> None:
    logs = (FlowLog(ocid("log", "vcn"), "vcn", VCN_ID, False, True),)
    findings = scan_oci(clean_state(flow_logs=logs), "oke.flow-logs-disabled")
    assert sorted(f.resource.name for f in findings) == ["api", "lb", "workers"]
    assert len({f.fingerprint for f in findings}) == 3


def test_flow_logs_not_read_are_unknown() -> None:
    state = clean_state(flow_logs=(), gaps=(gap("flow_logs", policy="Allow ... read log-groups"),))
    findings = scan_oci(state, "oke.flow-logs-disabled")
    assert findings and {f.status for f in findings} == {Status.UNKNOWN}
    assert "read log-groups" in findings[0].message


# --- LoadBalancer Services ------------------------------------------------------------------

NSG_MODE = {"oci.oraclecloud.com/security-rule-management-mode": "NSG"}
LEGACY = "service.beta.kubernetes.io/oci-load-balancer-security-list-management-mode"
NLB = {"oci.oraclecloud.com/load-balancer-type": "nlb"}


def test_nsg_mode_passes_for_lb_and_nlb() -> None:
    docs = [service("a", annotations=NSG_MODE), service("b", annotations={**NSG_MODE, **NLB})]
    assert scan_oci(clean_state(), "oke.lb-security-list-mode", docs=docs) == []


@pytest.mark.parametrize(
    ("annotations", "mode", "source"),
    [
        ({}, "All", "CCM default 'All'"),
        ({LEGACY: "Frontend"}, "Frontend", f"{LEGACY} is 'Frontend'"),
        ({LEGACY: "None"}, "None", "manages no rules"),
        ({LEGACY: "bogus"}, "All", "not a valid mode"),
        ({"oci.oraclecloud.com/security-rule-management-mode": "SL-All"}, "SL-All", "is 'SL-All'"),
        (NLB, "None", "CCM default 'None'"),
        (
            {
                **NLB,
                "oci-network-load-balancer.oraclecloud.com/security-list-management-mode": "All",
            },
            "All",
            "security list",
        ),
    ],
)
def test_other_modes_are_flagged(annotations: dict[str, str], mode: str, source: str) -> None:
    [finding] = scan_oci(
        clean_state(), "oke.lb-security-list-mode", docs=[service(annotations=annotations)]
    )
    assert finding.resource.kind == "Service"
    assert (finding.resource.namespace, finding.resource.name) == ("shop", "web")
    assert f"mode is {mode!r}" in finding.message
    assert source in finding.message


def test_new_annotation_beats_the_legacy_one() -> None:
    annotations = {**NSG_MODE, LEGACY: "All"}
    assert (
        scan_oci(
            clean_state(), "oke.lb-security-list-mode", docs=[service(annotations=annotations)]
        )
        == []
    )


def test_service_checks_skip_other_service_types_and_honour_exemptions() -> None:
    exempt = {
        "okeguard.io/exempt": "oke.lb-security-list-mode",
        "okeguard.io/exempt-reason": "CCM-free",
    }
    docs = [service("internal", type_="ClusterIP"), service("old", annotations=exempt)]
    [finding] = scan_oci(clean_state(), "oke.lb-security-list-mode", docs=docs)
    assert finding.status is Status.EXEMPT and finding.exempt_reason == "CCM-free"


@pytest.mark.parametrize(
    ("exposure", "severity"),
    [("private", Severity.MEDIUM), ("internal", Severity.MEDIUM), ("public", Severity.INFO)],
)
def test_public_load_balancer_is_graded_by_exposure(exposure: str, severity: Severity) -> None:
    findings = scan_oci(
        clean_state(), "oke.public-load-balancer", docs=[service()], config=config(exposure)
    )
    [finding] = findings
    assert finding.severity is severity
    assert "loadBalancerSourceRanges is empty" in finding.message
    assert "service.beta.kubernetes.io/oci-load-balancer-internal is unset" in finding.message


@pytest.mark.parametrize(
    "doc",
    [
        service(annotations={"service.beta.kubernetes.io/oci-load-balancer-internal": "true"}),
        service(annotations={**NLB, "oci-network-load-balancer.oraclecloud.com/internal": "true"}),
        service(source_ranges=["203.0.113.0/24"]),
    ],
)
def test_internal_or_restricted_load_balancers_pass(doc: dict[str, object]) -> None:
    assert scan_oci(clean_state(), "oke.public-load-balancer", docs=[doc]) == []


def test_nlb_needs_its_own_internal_annotation() -> None:
    doc = service(
        annotations={**NLB, "service.beta.kubernetes.io/oci-load-balancer-internal": "true"}
    )
    [finding] = scan_oci(clean_state(), "oke.public-load-balancer", docs=[doc])
    assert "oci-network-load-balancer.oraclecloud.com/internal is unset" in finding.message


def test_source_ranges_open_to_the_world_are_public() -> None:
    doc = service(source_ranges=["10.0.0.0/8", "0.0.0.0/0"])
    [finding] = scan_oci(clean_state(), "oke.public-load-balancer", docs=[doc])
    assert "includes 0.0.0.0/0" in finding.message


def test_lb_without_tls() -> None:
    ssl = "service.beta.kubernetes.io/oci-load-balancer-ssl-ports"
    docs = [
        service("plain"),
        service("wrong", annotations={ssl: "8443"}),
        service("tls", annotations={ssl: "80, 443"}),
        service("http", ports=(80,)),
        service("nlb", annotations=NLB),  # layer 4: TLS passes through to the pods
    ]
    findings = scan_oci(clean_state(), "oke.lb-without-tls", docs=docs)
    assert sorted(f.resource.name for f in findings) == ["plain", "wrong"]
    assert {f.severity for f in findings} == {Severity.INFO}
    wrong = next(f for f in findings if f.resource.name == "wrong")
    assert f"{ssl} is '8443'" in wrong.message


def test_open_findings_helper_keeps_only_open() -> None:
    assert open_findings(scan_oci(clean_state(), "oke.lb-without-tls", docs=[service()]))
