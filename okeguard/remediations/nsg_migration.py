"""``move-rules-to-nsg``: one cluster-wide plan moving security-list rules into NSGs.

For each role of the cluster's subnets (the endpoint, the node pools' worker subnets, their pod
subnets, the load-balancer subnets), one NSG per distinct set of security lists mirrors their
rules. The plan runs, in this order, so that an interruption at any point never leaves a rule in
neither place (rules leave a security list only in the last steps, after a check that they are
in force through NSGs; a rollback re-adds them before it takes anything else away):

1. ``oci.create-nsg``          one per group (retry token; tagged ``okeguard-request``);
2. ``oci.add-nsg-rules``       the mirrored rules (split into calls of at most 25);
3. ``oci.attach-endpoint-nsgs`` the endpoint NSG (``if_match``, work request);
4. ``oci.attach-node-pool-nsgs`` worker (and pod) NSGs of each pool, with node cycling, so the
                               existing nodes are replaced by nodes carrying them;
5. ``k8s.attach-lb-nsg``       each LoadBalancer Service in the load-balancer subnets gets
                               ``oci.oraclecloud.com/security-rule-management-mode: NSG`` and
                               the load-balancer NSG in
                               ``oci.oraclecloud.com/oci-network-security-groups``
                               (:mod:`nsg_lb`); other LoadBalancer Services not in NSG mode get
                               the mode alone (``k8s.patch``);
6. ``oci.verify-nsg-migration`` the NSGs hold their rules and are attached, the Services carry
                               the load-balancer NSG;
7. ``oci.remove-security-list-rules`` one per security list, ``if_match`` its planned etag.

Rules move exactly (source ports, ICMP type and code, statelessness, descriptions): a rule the
model could not read exactly, or a list holding the same rule twice, is refused. When the
load-balancer NSG cannot be attached (no Service to carry it, or load-balancer subnets with
different security lists), no NSG is made for the load balancers and the security lists of their
subnets keep all their rules; the risks say so.

Variants: ``default`` drops world-open ingress rules to SSH 22, RDP 3389, kubelet 10250 or all
ports (they are removed from the security lists and not mirrored: that is the fix);
``conservative`` mirrors every rule unchanged. Pure and deterministic: everything is sorted.
"""

from __future__ import annotations

from typing import Any

from okeguard.checks.model import Finding
from okeguard.checks.oke_network import rule_label
from okeguard.checks.oke_services import rule_management_mode
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory, K8sObject
from okeguard.inventory.oci_model import OciState, OkeCluster, SecurityRule
from okeguard.remediations.nsg_lb import attach_lb_op, diff_line, in_lb_subnets
from okeguard.remediations.nsg_plan_parts import (
    Group,
    PlanBuilder,
    dropped_reason,
    lb_annotation_op,
    rule_key,
)
from okeguard.remediations.oci_writer import rule_to_dict
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import planner

REMEDIATION = "move-rules-to-nsg"
CHECKS = (
    "oke.security-lists-instead-of-nsgs",
    "oke.lb-security-list-mode",
    "oke.world-open-ingress",
)
VARIANTS = ("default", "conservative")
MAX_RULES_PER_NSG = 120


def _lists_of(state: OciState, subnet_ids: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    ids: set[str] = set()
    for subnet_id in subnet_ids:
        subnet = state.subnets.get(subnet_id)
        if subnet is None:
            raise PlanError(f"subnet {subnet_id} was not read: scan again with read access to it")
        ids.update(subnet.security_list_ids)
    for list_id in ids:
        if list_id not in state.security_lists:
            raise PlanError(f"security list {list_id} was not read: cannot mirror its rules")
    return tuple(sorted(ids))


def _groups(state: OciState, cluster: OkeCluster) -> list[Group]:
    found: dict[tuple[str, tuple[str, ...]], Group] = {}

    def add(role: str, subnet_ids: Any, pool: str | None = None) -> None:
        lists = _lists_of(state, list(subnet_ids))
        if not lists:
            return
        group = found.setdefault((role, lists), Group(role, lists))
        if pool is not None:
            group.pools.append(pool)

    if cluster.endpoint is not None:
        add("endpoint", [cluster.endpoint.subnet_id])
    for pool in sorted(state.node_pools, key=lambda p: p.id):
        add("workers", pool.subnet_ids, pool.id)
        if pool.pod_subnet_ids:
            add("pods", pool.pod_subnet_ids, pool.id)
    if cluster.lb_subnet_ids:
        add("load-balancers", cluster.lb_subnet_ids)
    order = ("endpoint", "workers", "pods", "load-balancers")
    groups = sorted(found.values(), key=lambda g: (order.index(g.role), g.list_ids))
    for role in order:
        same = [g for g in groups if g.role == role]
        for i, group in enumerate(same):
            suffix = f"-{i + 1}" if len(same) > 1 else ""
            group.name = f"okeguard-{cluster.name}-{role}{suffix}"
    return groups


def _check_target(finding: Finding, state: OciState) -> None:
    if finding.check_id not in CHECKS:
        raise PlanError(f"{REMEDIATION} does not fix {finding.check_id}")
    if finding.check_id == "oke.world-open-ingress" and finding.resource.kind != "SecurityList":
        raise PlanError(
            f"the world-open rule is in NSG {finding.resource.name}, not in a security list: "
            "edit or remove that NSG rule (move-rules-to-nsg only migrates security lists)"
        )
    if state.cluster is None:
        raise PlanError("the OKE cluster was not read: scan again with access to it")
    if state.gaps_for("node_pools"):
        raise PlanError("the node pools were not all read: scan again with access to them")


def _rules_for(
    state: OciState, group: Group, variant: str
) -> tuple[list[SecurityRule], list[SecurityRule]]:
    """(rules the group's NSG mirrors, world-open rules dropped), each sorted and unique."""
    rules = {r for i in group.list_ids for r in state.security_lists[i].rules}
    dropped = {r for r in rules if variant == "default" and dropped_reason(r)}
    return sorted(rules - dropped, key=rule_key), sorted(dropped, key=rule_key)


def _check_exact(state: OciState, groups: list[Group]) -> None:
    """Refuse what cannot be moved and restored exactly: a rule the collector could not read
    exactly, and a rule held twice by one list (a rollback would restore it once)."""
    for list_id in sorted({i for g in groups for i in g.list_ids}):
        sl = state.security_lists[list_id]
        seen: set[SecurityRule] = set()
        for rule in sl.rules:
            if rule.inexact:
                raise PlanError(
                    f"security list {sl.name!r}: {rule_label(rule)} has {rule.inexact}; "
                    "okeguard cannot mirror it exactly: fix or remove that rule first"
                )
            if rule in seen:
                raise PlanError(
                    f"security list {sl.name!r} holds {rule_label(rule)} twice: remove the "
                    "duplicate first (a rollback could restore it only once)"
                )
            seen.add(rule)


def load_balancer_services(inventory: Inventory) -> list[K8sObject]:
    """Every LoadBalancer Service, sorted."""
    found = [
        s for s in inventory.objects.get("Service", ()) if s.spec.get("type") == "LoadBalancer"
    ]
    return sorted(found, key=lambda s: (s.namespace or "", s.name))


def _lb_unattachable(state: OciState, cluster: OkeCluster, carriers: list[K8sObject]) -> str | None:
    """Why the load-balancer NSG cannot be attached, or None when it can."""
    if not carriers:
        return "no LoadBalancer Service in the load-balancer subnets can carry an NSG"
    lists = {frozenset(state.subnets[s].security_list_ids) for s in cluster.lb_subnet_ids}
    if len(lists) > 1:
        return "the load-balancer subnets use different security lists (one NSG would widen some)"
    return None


@planner("move-rules-to-nsg")
def plan_move_rules_to_nsg(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan moving the cluster's security-list rules into NSGs (see the module doc)."""
    if variant not in VARIANTS:
        raise PlanError(f"{REMEDIATION} has the variants {', '.join(VARIANTS)}, not {variant!r}")
    state = inventory.oci
    if state is None:
        raise PlanError("the inventory has no OCI state: scan with the cluster's OCID configured")
    _check_target(finding, state)
    cluster = state.cluster
    assert cluster is not None
    groups = _groups(state, cluster)
    _check_exact(state, groups)
    services = load_balancer_services(inventory)
    carriers = [s for s in services if in_lb_subnets(s, cluster)]
    lb_group = next((g for g in groups if g.role == "load-balancers"), None)
    kept: dict[str, str] = {}  # security list OCID -> why it keeps its rules
    if lb_group is not None and (reason := _lb_unattachable(state, cluster, carriers)):
        groups.remove(lb_group)
        kept = dict.fromkeys(lb_group.list_ids, reason)
        lb_group = None
    if not groups:
        raise PlanError("no security list of the cluster's subnets carries rules to move")
    builder = PlanBuilder(state, cluster, groups, variant, kept)
    for group in groups:
        mirrored, _ = _rules_for(state, group, variant)
        if len(mirrored) > MAX_RULES_PER_NSG:
            raise PlanError(f"{group.name} would hold {len(mirrored)} rules (an NSG holds 120)")
        group.rule_objects = mirrored
        builder.create(group, [rule_to_dict(r) for r in mirrored])
    for group in groups:
        builder.add_rules(group)
    builder.attach_endpoint()
    builder.attach_pools()
    for service in services:
        if lb_group is not None and service in carriers:
            builder.attach_service(attach_lb_op(service, lb_group.ref(cluster)), lb_group)
            builder.diff.append(diff_line(service, lb_group.name))
        elif rule_management_mode(service)[0].upper() != "NSG":
            builder.ops.append(lb_annotation_op(service))
            mode = rule_management_mode(service)[0]
            line = f"~ Service {service.namespace}/{service.name}: mode {mode!r} -> 'NSG'"
            builder.diff.append(line)
    builder.verify_step()
    builder.remove_from_lists(_rules_for)
    if not any(op.action == "oci.remove-security-list-rules" for op in builder.ops):
        raise PlanError("no security list of the cluster's subnets carries rules to move")
    return Plan.of(
        finding,
        REMEDIATION,
        builder.ops,
        "\n".join(builder.diff),
        risks=builder.risks(inventory),
        variant=variant,
        variants=VARIANTS,
        verify={"nsgs": len(groups)},
    )
