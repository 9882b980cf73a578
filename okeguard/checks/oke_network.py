"""OKE network checks (practices P3, P4, P16): security lists and NSGs of the cluster's subnets,
worker placement and flow logs. The load-balancer checks are in :mod:`okeguard.checks.oke_services`.

Like :mod:`okeguard.checks.oke_cluster` they fail closed: a subnet, security list or NSG the
cluster uses that the collector could not read makes the check ``unknown`` for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from okeguard.checks.model import ResourceRef, Severity
from okeguard.checks.oke_cluster import (
    cluster_ref,
    cluster_unknown,
    node_pool_ref,
    node_pools_unknown,
    oci_state,
    unknown_hit,
)
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.oci_model import (
    PROTOCOL_NAMES,
    OciGap,
    OciState,
    OkeCluster,
    SecurityRule,
)

WORLD = ("0.0.0.0/0", "::/0")
SENSITIVE_PORTS: Mapping[int, str] = {22: "SSH", 3389: "RDP", 6443: "API", 10250: "kubelet"}
CRITICAL_PORTS = frozenset({22, 3389, 10250})
NODEPORT_RANGE = (30000, 32767)


# --- the cluster's network -------------------------------------------------------------------


def cluster_subnets(state: OciState, cluster: OkeCluster) -> dict[str, list[str]]:
    """Every subnet the cluster uses (endpoint, workers, pods, load balancers), with its roles."""
    roles: dict[str, list[str]] = {}

    def add(subnet_ids: Iterable[str], role: str) -> None:
        for subnet_id in subnet_ids:
            if role not in roles.setdefault(subnet_id, []):
                roles[subnet_id].append(role)

    if cluster.endpoint is not None:
        add([cluster.endpoint.subnet_id], "endpoint")
    for pool in state.node_pools:
        add(pool.subnet_ids, "workers")
        add(pool.pod_subnet_ids, "pods")
    add(cluster.lb_subnet_ids, "load balancers")
    return roles


def cluster_nsg_ids(state: OciState, cluster: OkeCluster) -> list[str]:
    """The NSGs attached to the endpoint, the node pools and their pods, without repeats."""
    ids = list(cluster.endpoint.nsg_ids) if cluster.endpoint else []
    for pool in state.node_pools:
        ids += [*pool.nsg_ids, *pool.pod_nsg_ids]
    return list(dict.fromkeys(ids))


def _span(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low}-{high}"


def _what(rule: SecurityRule) -> str:
    """The protocol and what of it the rule matches, never wider than the rule."""
    if rule.protocol == "all":
        return "all protocols all ports"
    what = PROTOCOL_NAMES.get(rule.protocol, f"protocol {rule.protocol}")
    if rule.protocol in ("1", "58"):
        if rule.icmp is None:
            return f"{what} all types"
        code = "" if rule.icmp.code is None else f" code {rule.icmp.code}"
        return f"{what} type {rule.icmp.type}{code}"
    dport = "all ports" if rule.all_ports else ""
    if rule.ports is not None:
        dport = _span(rule.ports.min, rule.ports.max)
    if rule.source_ports is not None:
        sport = _span(rule.source_ports.min, rule.source_ports.max)
        return f"{what} sport {sport} -> dport {dport.replace('all ports', 'all')}"
    return f"{what} {dport}" if dport else what


def rule_label(rule: SecurityRule) -> str:
    """``ingress rule 0.0.0.0/0 TCP 22 (stateful)``; source ports and ICMP type/code are named
    (``TCP sport 443 -> dport all``, ``ICMP type 3 code 4``), so a label is never wider than its
    rule."""
    state = "stateless" if rule.stateless else "stateful"
    return f"{rule.direction} rule {rule.peer} {_what(rule)} ({state})"


def world_exposure(rule: SecurityRule) -> tuple[Severity, str] | None:
    """(severity, what it reaches) for an ingress rule from anywhere to a sensitive port, the
    NodePort range or all ports; None for any other rule."""
    if rule.direction != "ingress" or rule.peer.strip() not in WORLD:
        return None
    # A source-port range does not narrow what the rule reaches: a sender picks its port.
    if rule.all_ports:
        return Severity.CRITICAL, "all ports"
    if rule.ports is None:  # ICMP and other protocols without ports
        return None
    reached = [
        f"{name} {port}" for port, name in SENSITIVE_PORTS.items() if rule.ports.covers(port)
    ]
    if rule.ports.overlaps(*NODEPORT_RANGE):
        reached.append("the NodePort range")
    if not reached:
        return None
    critical = any(rule.ports.covers(port) for port in CRITICAL_PORTS)
    return (Severity.CRITICAL if critical else Severity.HIGH), ", ".join(reached)


def _world_open_hit(resource: ResourceRef, where: str, rules: Iterable[SecurityRule]) -> Hit | None:
    found = [(rule, exposure) for rule in rules if (exposure := world_exposure(rule))]
    if not found:
        return None
    severity = max((exposure[0] for _, exposure in found), key=lambda s: s.rank)
    listed = "; ".join(f"{rule_label(rule)} reaching {exposure[1]}" for rule, exposure in found)
    return Hit(resource, f"{where} allows ingress from anywhere: {listed}.", severity=severity)


@check(
    id="oke.world-open-ingress",
    title="Ingress open to the internet",
    practice=("P3", "P4"),
    severity=Severity.HIGH,
    remediation="move-rules-to-nsg",
    reads=("oci:cluster", "oci:node_pools", "oci:subnet", "oci:security_list", "oci:nsg"),
    oci=True,
    severity_note="critical for SSH 22, RDP 3389, kubelet 10250 or all ports",
)
def world_open_ingress(ctx: CheckContext) -> Iterator[Hit]:
    """A security list of a cluster subnet, or an NSG of the endpoint, a node pool or its pods,
    has an ingress rule (stateful or stateless) from `0.0.0.0/0` or `::/0` to SSH 22, RDP 3389,
    the API 6443, kubelet 10250, the NodePort range 30000-32767, or all ports. One finding per
    security list or NSG, naming every such rule."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the cluster's security rules")
        return
    yield from node_pools_unknown(state, "the security rules of the node pools' subnets and NSGs")
    list_subnets: dict[str, str] = {}
    for subnet_id in cluster_subnets(state, cluster):
        subnet = state.subnets.get(subnet_id)
        if subnet is None:
            ref = ResourceRef("Subnet", None, subnet_id, ocid=subnet_id)
            gaps = state.gaps_for("subnet", subnet_id)
            what = f"the security lists of subnet {subnet_id}"
            yield unknown_hit(ref, what, gaps, "the subnet was not read")
            continue
        for list_id in subnet.security_list_ids:
            list_subnets.setdefault(list_id, subnet.name)
    for list_id, subnet_name in list_subnets.items():
        security_list = state.security_lists.get(list_id)
        if security_list is None:
            ref = ResourceRef("SecurityList", None, list_id, ocid=list_id)
            gaps = state.gaps_for("security_list", list_id)
            what = f"the rules of security list {list_id} of subnet {subnet_name!r}"
            yield unknown_hit(ref, what, gaps, "the security list was not read")
            continue
        ref = ResourceRef("SecurityList", None, security_list.name, ocid=security_list.id)
        hit = _world_open_hit(ref, f"security list {security_list.name!r}", security_list.rules)
        if hit is not None:
            yield hit
    for nsg_id in cluster_nsg_ids(state, cluster):
        nsg = state.nsgs.get(nsg_id)
        if nsg is None:
            ref = ResourceRef("NetworkSecurityGroup", None, nsg_id, ocid=nsg_id)
            gaps = state.gaps_for("nsg", nsg_id)
            yield unknown_hit(ref, f"the rules of NSG {nsg_id}", gaps, "the NSG was not read")
            continue
        ref = ResourceRef("NetworkSecurityGroup", None, nsg.name, ocid=nsg.id)
        hit = _world_open_hit(ref, f"NSG {nsg.name!r}", nsg.rules)
        if hit is not None:
            yield hit


def _lists_with_rules(
    state: OciState, subnet_ids: Iterable[str]
) -> tuple[list[str], list[str], list[OciGap]]:
    """(security lists of these subnets that carry rules, what could not be read, its gaps)."""
    carrying: list[str] = []
    missing: list[str] = []
    gaps: list[OciGap] = []
    for subnet_id in dict.fromkeys(subnet_ids):
        subnet = state.subnets.get(subnet_id)
        if subnet is None:
            missing.append(f"subnet {subnet_id}")
            gaps += state.gaps_for("subnet", subnet_id)
            continue
        for list_id in subnet.security_list_ids:
            security_list = state.security_lists.get(list_id)
            if security_list is None:
                missing.append(f"security list {list_id}")
                gaps += state.gaps_for("security_list", list_id)
            elif security_list.rules:
                carrying.append(
                    f"security list {security_list.name!r} of subnet {subnet.name!r} carries {len(security_list.rules)} rules"
                )
    return carrying, missing, gaps


def _nsg_verdict(
    state: OciState, resource: ResourceRef, field: str, subnet_ids: Iterable[str]
) -> Iterator[Hit]:
    carrying, missing, gaps = _lists_with_rules(state, subnet_ids)
    if carrying:
        yield Hit(resource, f"{field} is empty while {', '.join(carrying)}.")
    elif missing:
        what = f"the security lists behind {field} ({', '.join(missing)})"
        yield unknown_hit(resource, what, gaps, "they were not read")


@check(
    id="oke.security-lists-instead-of-nsgs",
    title="Security lists instead of NSGs",
    practice="P4",
    severity=Severity.MEDIUM,
    remediation="move-rules-to-nsg",
    reads=("oci:cluster", "oci:node_pools", "oci:subnet", "oci:security_list"),
    oci=True,
)
def security_lists_instead_of_nsgs(ctx: CheckContext) -> Iterator[Hit]:
    """The cluster endpoint or a node pool has no NSGs while the security lists of its subnet(s)
    carry rules, so its traffic is governed by subnet-wide security lists instead of NSGs."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the endpoint's NSGs")
        return
    endpoint = cluster.endpoint
    if endpoint is not None and not endpoint.nsg_ids:
        field = "endpoint_config.nsg_ids"
        yield from _nsg_verdict(state, cluster_ref(cluster), field, [endpoint.subnet_id])
    yield from node_pools_unknown(state, "the node pools' NSGs")
    for pool in state.node_pools:
        if not pool.nsg_ids:
            field = f"node pool {pool.name!r} nsg_ids"
            yield from _nsg_verdict(state, node_pool_ref(pool), field, pool.subnet_ids)


@check(
    id="oke.workers-in-public-subnet",
    title="Worker nodes in a public subnet",
    practice="P3",
    severity=Severity.HIGH,
    reads=("oci:node_pools", "oci:subnet"),
    oci=True,
)
def workers_in_public_subnet(ctx: CheckContext) -> Iterator[Hit]:
    """A node pool places nodes in a subnet that allows public IPs
    (`prohibit_public_ip_on_vnic: false`), or some of its nodes have public IPs. One finding per
    node pool."""
    state = oci_state(ctx)
    yield from node_pools_unknown(state, "the node pools' placement")
    for pool in state.node_pools:
        problems: list[str] = []
        missing: list[str] = []
        gaps: list[OciGap] = []
        for subnet_id in pool.subnet_ids:
            subnet = state.subnets.get(subnet_id)
            if subnet is None:
                missing.append(subnet_id)
                gaps += state.gaps_for("subnet", subnet_id)
            elif not subnet.prohibit_public_ip_on_vnic:
                problems.append(
                    f"placement subnet {subnet.name!r} has prohibit_public_ip_on_vnic false"
                )
        public = [node for node in pool.nodes if node.public_ip]
        for node in public[:3]:
            problems.append(f"node {node.name!r} has public IP {node.public_ip}")
        if len(public) > 3:
            problems.append(f"{len(public) - 3} more nodes have public IPs")
        if problems:
            yield Hit(node_pool_ref(pool), f"node pool {pool.name!r}: {'; '.join(problems)}.")
        elif missing:
            what = f"the placement subnets {', '.join(missing)}"
            yield unknown_hit(node_pool_ref(pool), what, gaps, "they were not read")


@check(
    id="oke.flow-logs-disabled",
    title="VCN flow logs disabled",
    practice="P16",
    severity=Severity.MEDIUM,
    reads=("oci:cluster", "oci:node_pools", "oci:subnet", "oci:flow_logs"),
    oci=True,
)
def flow_logs_disabled(ctx: CheckContext) -> Iterator[Hit]:
    """A cluster subnet (endpoint, workers, pods, load balancers) has no enabled and active flow
    log, neither on the subnet nor on its VCN."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the cluster subnets' flow logs")
        return
    yield from node_pools_unknown(state, "the flow logs of the node pools' subnets")
    logged = {log.resource_id for log in state.flow_logs if log.enabled and log.active}
    log_gaps = state.gaps_for("flow_logs")
    for subnet_id, roles in cluster_subnets(state, cluster).items():
        subnet = state.subnets.get(subnet_id)
        # A cluster's subnets are in the cluster's VCN, even when the subnet was not read.
        vcn_id = subnet.vcn_id if subnet else cluster.vcn_id
        if subnet_id in logged or vcn_id in logged:
            continue
        name = subnet.name if subnet else subnet_id
        ref = ResourceRef("Subnet", None, name, ocid=subnet_id)
        if log_gaps:
            yield unknown_hit(ref, f"the flow logs of subnet {name!r}", log_gaps, "")
        else:
            yield Hit(
                ref,
                f"subnet {name!r} ({', '.join(roles)}) has no enabled, active flow log on the subnet or on its VCN {vcn_id}.",
            )
