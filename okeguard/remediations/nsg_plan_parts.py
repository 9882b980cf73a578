"""The building blocks of the ``move-rules-to-nsg`` plan (see :mod:`nsg_migration`).

:class:`PlanBuilder` appends the operations in their safe order and writes the diff and the
risk notes alongside; every list it emits is sorted, so the plan (and its hash) depends only on
the inventory. NSGs created by the plan are named in later operations by their creating step
(``{"step": i, "compartment_id", "vcn_id", "display_name"}``), their OCID being unknown until
then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from okeguard.checks.oke_network import CRITICAL_PORTS, rule_label, world_exposure
from okeguard.checks.oke_services import RULE_MODE
from okeguard.inventory.model import Inventory, K8sObject
from okeguard.inventory.oci_model import NodePool, OciState, OkeCluster, PortRange, SecurityRule
from okeguard.remediations.oci_writer import rule_to_dict
from okeguard.remediations.plan import Operation, PlanError

MAX_NSGS_PER_VNIC = 5
CYCLING = {"maximum_surge": "1", "maximum_unavailable": "0"}


def rule_key(rule: SecurityRule) -> tuple[Any, ...]:
    """A total order on rules, so plans list them identically every time. Every field of the
    rule is in it: two rules differing only in source ports or ICMP code sort apart."""

    def span(value: PortRange | None) -> tuple[int, int]:
        return (value.min, value.max) if value else (-1, -1)

    icmp = (rule.icmp.type, -1 if rule.icmp.code is None else rule.icmp.code) if rule.icmp else ()
    return (
        rule.direction,
        rule.protocol,
        rule.peer,
        rule.peer_type,
        rule.stateless,
        span(rule.ports),
        span(rule.source_ports),
        (rule.icmp is not None, icmp),
        rule.description or "",
        rule.inexact or "",
    )


def rule_text(rule: SecurityRule) -> str:
    """A rule as the diff shows it: its label and, when it has one, its description."""
    described = f" {rule.description!r}" if rule.description else ""
    return f"{rule_label(rule)}{described}"


def dropped_reason(rule: SecurityRule) -> str | None:
    """Why the default variant drops a rule: world-open ingress to SSH 22, RDP 3389, kubelet
    10250 or all ports. None for any other rule (API 6443 or NodePorts open to the world move)."""
    exposure = world_exposure(rule)
    if exposure is None:
        return None
    if rule.all_ports or (rule.ports and any(rule.ports.covers(p) for p in CRITICAL_PORTS)):
        return f"world-open ingress reaching {exposure[1]}"
    return None


@dataclass
class Group:
    """One NSG to create: the security lists it mirrors and the node pools attaching it."""

    role: str  # endpoint | workers | pods | load-balancers
    list_ids: tuple[str, ...]
    pools: list[str] = field(default_factory=list)
    name: str = ""
    step: int = -1
    rules: list[dict[str, Any]] = field(default_factory=list)
    rule_objects: list[SecurityRule] = field(default_factory=list)

    def ref(self, cluster: OkeCluster) -> dict[str, Any]:
        return {
            "step": self.step,
            "compartment_id": cluster.compartment_id,
            "vcn_id": cluster.vcn_id,
            "display_name": self.name,
        }


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def lb_annotation_op(service: K8sObject) -> Operation:
    """``k8s.patch`` setting the Service's rule-management mode to ``NSG``, guarded by its
    resourceVersion (and the old value); the undo restores the old value or removes the key."""
    meta = service.metadata
    annotations = meta.get("annotations")
    path = f"/metadata/annotations/{_escape(RULE_MODE)}"
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
    ]
    undo: list[dict[str, Any]] = [{"op": "test", "path": path, "value": "NSG"}]
    if annotations is None:
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    old = (annotations or {}).get(RULE_MODE)
    if old is None:
        patch.append({"op": "add", "path": path, "value": "NSG"})
        undo.append({"op": "remove", "path": path})
    else:
        patch += [
            {"op": "test", "path": path, "value": old},
            {"op": "replace", "path": path, "value": "NSG"},
        ]
        undo.append({"op": "replace", "path": path, "value": old})
    return Operation(
        action="k8s.patch",
        target={"kind": "Service", "namespace": service.namespace, "name": service.name},
        params={"patch": patch},
        undo={"patch": undo},
        description=f"set {RULE_MODE}: NSG on Service {service.namespace}/{service.name}",
    )


RulesFor = Callable[[OciState, Group, str], tuple[list[SecurityRule], list[SecurityRule]]]


class PlanBuilder:
    """Accumulates the operations, diff lines and risks of one ``move-rules-to-nsg`` plan."""

    def __init__(
        self,
        state: OciState,
        cluster: OkeCluster,
        groups: list[Group],
        variant: str,
        kept: dict[str, str] | None = None,
    ):
        self.state, self.cluster, self.groups, self.variant = state, cluster, groups, variant
        self.kept = kept or {}  # security list OCID -> why its rules stay
        self.services: list[dict[str, Any]] = []  # Services carrying the load-balancer NSG
        self.ops: list[Operation] = []
        self.diff: list[str] = [f"cluster {cluster.name} ({cluster.id}), variant {variant}"]
        self.cycled: list[NodePool] = []
        self.dropped: list[tuple[str, SecurityRule, str]] = []

    def _lists(self, group: Group) -> str:
        return ", ".join(repr(self.state.security_lists[i].name) for i in group.list_ids)

    def create(self, group: Group, rules: list[dict[str, Any]]) -> None:
        group.step, group.rules = len(self.ops), rules
        sources = [
            {
                "id": i,
                "name": self.state.security_lists[i].name,
                "etag": self.state.security_lists[i].etag,
            }
            for i in group.list_ids
        ]
        self.ops.append(
            Operation(
                action="oci.create-nsg",
                target={"kind": "NetworkSecurityGroup", "name": group.name},
                params={"nsg": group.ref(self.cluster), "rules": rules, "sources": sources},
                undo={"delete": True},
                description=f"create NSG {group.name} ({group.role}) in VCN {self.cluster.vcn_id}",
            )
        )
        self.diff.append(
            f"+ NSG {group.name} ({group.role}): {len(rules)} rules mirrored from "
            f"security lists {self._lists(group)}"
        )

    def add_rules(self, group: Group) -> None:
        if not group.rules:
            return
        self.ops.append(
            Operation(
                action="oci.add-nsg-rules",
                target={"kind": "NetworkSecurityGroup", "name": group.name},
                params={"nsg": group.ref(self.cluster), "rules": group.rules},
                undo={"remove_added_rules": True},
                description=f"add {len(group.rules)} rules to NSG {group.name}",
            )
        )

    def attach_endpoint(self) -> None:
        endpoint = self.cluster.endpoint
        refs = [g.ref(self.cluster) for g in self.groups if g.role == "endpoint"]
        if endpoint is None or not refs:
            return
        if len(endpoint.nsg_ids) + len(refs) > MAX_NSGS_PER_VNIC:
            raise PlanError(f"the endpoint already has {len(endpoint.nsg_ids)} NSGs (at most 5)")
        self.ops.append(
            Operation(
                action="oci.attach-endpoint-nsgs",
                target={"kind": "Cluster", "ocid": self.cluster.id, "name": self.cluster.name},
                params={
                    "etag": self.cluster.etag,
                    "keep_nsg_ids": list(endpoint.nsg_ids),
                    "add": refs,
                },
                undo={"nsg_ids": list(endpoint.nsg_ids)},
                description=f"attach {refs[0]['display_name']} to the cluster endpoint",
            )
        )
        self.diff.append(
            f"~ endpoint nsg_ids: {list(endpoint.nsg_ids)} + [{refs[0]['display_name']}]"
        )

    def attach_pools(self) -> None:
        for pool in sorted(self.state.node_pools, key=lambda p: p.id):
            nodes = [
                g.ref(self.cluster)
                for g in self.groups
                if g.role == "workers" and pool.id in g.pools
            ]
            pods = [
                g.ref(self.cluster) for g in self.groups if g.role == "pods" and pool.id in g.pools
            ]
            if not nodes and not pods:
                continue
            if len(pool.nsg_ids) + len(nodes) > MAX_NSGS_PER_VNIC or (
                len(pool.pod_nsg_ids) + len(pods) > MAX_NSGS_PER_VNIC
            ):
                raise PlanError(f"node pool {pool.name!r} already has 5 NSGs: no room for more")
            self.cycled.append(pool)
            self.ops.append(
                Operation(
                    action="oci.attach-node-pool-nsgs",
                    target={"kind": "NodePool", "ocid": pool.id, "name": pool.name},
                    params={
                        "etag": pool.etag,
                        "keep_nsg_ids": list(pool.nsg_ids),
                        "add": nodes,
                        "keep_pod_nsg_ids": list(pool.pod_nsg_ids),
                        "add_pod": pods,
                        "cycling": dict(CYCLING),
                    },
                    undo={"nsg_ids": list(pool.nsg_ids), "pod_nsg_ids": list(pool.pod_nsg_ids)},
                    description=f"attach NSGs to node pool {pool.name} and cycle its "
                    f"{len(pool.nodes)} nodes",
                )
            )
            names = [r["display_name"] for r in nodes + pods]
            self.diff.append(
                f"~ node pool {pool.name!r} nsg_ids + {names}; {len(pool.nodes)} nodes replaced"
            )

    def attach_service(self, op: Operation, group: Group) -> None:
        """A ``k8s.attach-lb-nsg`` step; the verify step checks its Service too."""
        self.ops.append(op)
        target = op.target
        entry = {"namespace": target["namespace"], "name": target["name"]}
        self.services.append({**entry, "nsg": group.ref(self.cluster)})

    def verify_step(self) -> None:
        endpoint = [g.ref(self.cluster) for g in self.groups if g.role == "endpoint"]
        pools = []
        for pool in self.cycled:
            pools.append(
                {
                    "id": pool.id,
                    "name": pool.name,
                    "nsgs": [
                        g.ref(self.cluster)
                        for g in self.groups
                        if g.role == "workers" and pool.id in g.pools
                    ],
                    "pod_nsgs": [
                        g.ref(self.cluster)
                        for g in self.groups
                        if g.role == "pods" and pool.id in g.pools
                    ],
                }
            )
        params = {
            "nsgs": [{"nsg": g.ref(self.cluster), "rules": g.rules} for g in self.groups],
            "endpoint": {"cluster_id": self.cluster.id, "nsgs": endpoint}
            if endpoint and self.cluster.endpoint
            else None,
            "node_pools": pools,
            "services": self.services,
        }
        self.ops.append(
            Operation(
                action="oci.verify-nsg-migration",
                target={"kind": "Cluster", "ocid": self.cluster.id, "name": self.cluster.name},
                params=params,
                description="check that the NSGs hold the rules and are attached (endpoint, node "
                "pools, LoadBalancer Services)",
            )
        )

    def remove_from_lists(self, rules_for: RulesFor) -> None:
        list_ids = sorted({i for g in self.groups for i in g.list_ids})
        for list_id in list_ids:
            if list_id in self.kept:
                continue
            sl = self.state.security_lists[list_id]
            rules = sorted(set(sl.rules), key=rule_key)
            if not rules:
                continue
            homes: dict[SecurityRule, list[str]] = {}
            for group in self.groups:
                if list_id in group.list_ids:
                    mirrored, _ = rules_for(self.state, group, self.variant)
                    for rule in mirrored:
                        homes.setdefault(rule, []).append(group.name)
            self.diff.append(f"security list {sl.name!r} ({sl.id}):")
            for rule in rules:
                if rule in homes:
                    self.diff.append(f"- {rule_text(rule)} -> {', '.join(homes[rule])}")
                else:
                    reason = dropped_reason(rule) or "not mirrored"
                    self.dropped.append((sl.name, rule, reason))
                    self.diff.append(f"- {rule_text(rule)} [dropped: {reason}]")
            dicts = [rule_to_dict(r) for r in rules]
            self.ops.append(
                Operation(
                    action="oci.remove-security-list-rules",
                    target={"kind": "SecurityList", "ocid": sl.id, "name": sl.name},
                    params={"etag": sl.etag, "rules": dicts},
                    undo={"rules": dicts},
                    description=f"remove {len(rules)} migrated rules from security list {sl.name}",
                )
            )

    def risks(self, inventory: Inventory) -> list[str]:
        out = []
        for pool in self.cycled:
            out.append(
                f"node pool {pool.name!r}: its {len(pool.nodes)} nodes are replaced one at a time "
                "(surge 1, none unavailable); each old node is cordoned and drained, its pods "
                "evicted under their PodDisruptionBudgets (a PDB allowing no disruption stalls "
                "the cycle until the work-request timeout, and the plan is rolled back)"
            )
        if self.cycled:
            out.append(
                "existing nodes get the NSGs only by being replaced; until then their traffic "
                "is still allowed by the security lists, which lose the rules only after every "
                "pool is cycled; a rollback cycles the nodes again"
            )
        names = sorted(
            {
                self.state.security_lists[i].name
                for g in self.groups
                for i in g.list_ids
                if i not in self.kept
            }
        )
        out.append(
            f"security lists {', '.join(repr(n) for n in names)} lose the migrated rules for "
            "every subnet using them: okeguard sees only this cluster's subnets, so check that "
            "no subnet outside the cluster relies on them"
        )
        for list_name, rule, reason in self.dropped:
            out.append(
                f"dropped from {list_name!r}: {rule_label(rule)} ({reason}); whatever relied on "
                "it stops working (the 'conservative' variant keeps it)"
            )
        if self.variant == "conservative" and any(
            dropped_reason(r)
            for g in self.groups
            for i in g.list_ids
            for r in self.state.security_lists[i].rules
        ):
            out.append(
                "the conservative variant keeps world-open rules: oke.world-open-ingress stays "
                "open, now on the NSGs"
            )
        still_open = sorted(
            {rule_label(r) for g in self.groups for r in g.rule_objects if world_exposure(r)}
        )
        if self.variant == "default" and still_open:
            out.append(
                f"moved unchanged although open to the world: {'; '.join(still_open)} "
                "(only SSH, RDP, kubelet and all-ports rules are dropped): "
                "oke.world-open-ingress will report them on the NSGs"
            )
        lbs = [g.name for g in self.groups if g.role == "load-balancers"]
        if lbs and self.services:
            carriers = ", ".join(f"{e['namespace']}/{e['name']}" for e in self.services)
            out.append(
                f"NSG {lbs[0]} keeps the load-balancer subnet's rules: it is attached to the load "
                f"balancers of Services {carriers} (mode NSG, oci.oraclecloud.com/oci-network-"
                "security-groups) before those rules leave the security lists; the cloud "
                "controller manager attaches it when it reconciles each Service, and from then "
                "on manages the Services' own rules in NSGs, no longer in the security lists "
                "(the rules it wrote there before are copied as they are); okeguard verifies "
                "that each Service names the NSG, not that the load balancer already has it: if "
                "the controller has not reconciled a Service when the lists are emptied, that "
                "load balancer's rules are in force nowhere until it does"
            )
        if self.kept:
            kept = sorted(self.state.security_lists[i].name for i in self.kept)
            why = sorted(set(self.kept.values()))
            out.append(
                f"the load-balancer NSG cannot be attached ({'; '.join(why)}): security lists "
                f"{', '.join(repr(n) for n in kept)} of the load-balancer subnets keep all their "
                "rules, and no NSG is made for the load balancers"
            )
        return out
