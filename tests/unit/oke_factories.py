"""Builders for the ``oke.*`` check tests: a clean OCI state (every check passes) and small
factories to break it one field at a time, plus :func:`scan_oci` to run checks over it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from okeguard.checks.engine import run_checks
from okeguard.checks.model import Finding, Status
from okeguard.config import Config
from okeguard.inventory.oci_model import (
    ClusterEndpoint,
    FlowLog,
    NodePool,
    Nsg,
    OciGap,
    OciState,
    OkeCluster,
    PortRange,
    SecurityList,
    SecurityRule,
    Subnet,
    VaultSecret,
    WorkerNode,
)
from tests.helpers import NOW, inventory

VCN_ID = "ocid1.vcn.oc1..vcn"
CLUSTER_ID = "ocid1.cluster.oc1..prod"


def ocid(kind: str, name: str) -> str:
    return f"ocid1.{kind}.oc1..{name}"


def rule(
    ports: tuple[int, int] | int | None = 22,
    *,
    peer: str = "10.0.0.0/16",
    protocol: str = "6",
    stateless: bool = False,
    direction: str = "ingress",
) -> SecurityRule:
    """A security rule; ``ports`` is one port, an inclusive range, or None (all ports)."""
    if isinstance(ports, int):
        ports = (ports, ports)
    return SecurityRule(
        direction=direction,  # type: ignore[arg-type]
        protocol=protocol,
        peer=peer,
        stateless=stateless,
        ports=PortRange(*ports) if ports is not None else None,
    )


def world(ports: tuple[int, int] | int | None = 22, **kwargs: Any) -> SecurityRule:
    """An ingress rule from 0.0.0.0/0."""
    return rule(ports, peer="0.0.0.0/0", **kwargs)


EGRESS_ALL = rule(None, peer="0.0.0.0/0", protocol="all", direction="egress")


def security_list(name: str, *rules: SecurityRule) -> SecurityList:
    return SecurityList(ocid("securitylist", name), name, VCN_ID, None, tuple(rules))


def nsg(name: str, *rules: SecurityRule) -> Nsg:
    return Nsg(ocid("networksecuritygroup", name), name, VCN_ID, None, tuple(rules))


def subnet(name: str, *lists: SecurityList | str, public: bool = False) -> Subnet:
    ids = tuple(item if isinstance(item, str) else item.id for item in lists)
    return Subnet(ocid("subnet", name), name, VCN_ID, "10.0.0.0/24", not public, ids)


def node_pool(name: str = "pool1", **changes: Any) -> NodePool:
    pool = NodePool(
        id=ocid("nodepool", name),
        name=name,
        kubernetes_version="v1.31.1",
        subnet_ids=(ocid("subnet", "workers"),),
        nsg_ids=(ocid("networksecuritygroup", "workers-nsg"),),
        image_id=ocid("image", "ol8"),
        image_name="Oracle-Linux-8.10-2026.10.01-0",
        image_created=NOW - timedelta(days=20),
        nodes=(WorkerNode(ocid("instance", "n1"), "10.0.1.5", "10.0.1.5", None),),
    )
    return dataclasses.replace(pool, **changes)


def clean_state(**changes: Any) -> OciState:
    """An OCI state where every oke.* check passes: private VCN-native endpoint with an NSG, a
    node pool with an NSG in a private subnet, flow logs on the VCN, logs and audit in order."""
    api_sl = security_list("api-sl", EGRESS_ALL)
    workers_sl = security_list("workers-sl", EGRESS_ALL, rule(22))
    lb_sl = security_list("lb-sl")
    subnets = [
        subnet("api", api_sl),
        subnet("workers", workers_sl),
        subnet("lb", lb_sl, public=True),
    ]
    cluster = OkeCluster(
        id=CLUSTER_ID,
        name="prod",
        compartment_id=ocid("compartment", "apps"),
        vcn_id=VCN_ID,
        kubernetes_version="v1.31.1",
        available_upgrades=(),
        endpoint=ClusterEndpoint(
            ocid("subnet", "api"), False, (ocid("networksecuritygroup", "api-nsg"),)
        ),
        cni_type="OCI_VCN_IP_NATIVE",
        lb_subnet_ids=(ocid("subnet", "lb"),),
    )
    state = OciState(
        region="eu-frankfurt-1",
        cluster=cluster,
        node_pools=(node_pool(),),
        subnets={s.id: s for s in subnets},
        security_lists={sl.id: sl for sl in (api_sl, workers_sl, lb_sl)},
        nsgs={
            n.id: n
            for n in (nsg("api-nsg", rule(6443)), nsg("workers-nsg", rule(10250), EGRESS_ALL))
        },
        flow_logs=(FlowLog(ocid("log", "vcn"), "vcn-flows", VCN_ID, True, True),),
        audit_retention_days=365,
        control_plane_log_enabled=True,
        vault_secrets=(
            VaultSecret(
                id=ocid("vaultsecret", "db"),
                name="db-password",
                compartment_id=ocid("compartment", "apps"),
                vault_id=ocid("vault", "v"),
                current_version_created=NOW - timedelta(days=10),
                rotation_enabled=True,
                rotation_interval_days=30,
            ),
        ),
    )
    return dataclasses.replace(state, **changes)


def with_cluster(state: OciState, **changes: Any) -> OciState:
    assert state.cluster is not None
    return dataclasses.replace(state, cluster=dataclasses.replace(state.cluster, **changes))


def with_lists(state: OciState, *lists: SecurityList) -> OciState:
    return dataclasses.replace(
        state, security_lists={**state.security_lists, **{sl.id: sl for sl in lists}}
    )


def with_nsgs(state: OciState, *groups: Nsg) -> OciState:
    return dataclasses.replace(state, nsgs={**state.nsgs, **{n.id: n for n in groups}})


def with_subnets(state: OciState, *subnets: Subnet) -> OciState:
    return dataclasses.replace(state, subnets={**state.subnets, **{s.id: s for s in subnets}})


def without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def gap(area: str, ocid_: str | None = None, policy: str | None = None) -> OciGap:
    return OciGap(area, f"403 NotAuthorizedOrNotFound reading {area}", ocid_, policy)


def scan_oci(
    state: OciState | None,
    check: str | Iterable[str] | None = None,
    *,
    docs: Iterable[Mapping[str, Any]] = (),
    config: Config | None = None,
    whole_cluster: bool = True,
) -> list[Finding]:
    """Run the given check(s) (all when None) over ``docs`` plus the OCI ``state``."""
    inv = dataclasses.replace(inventory(docs, whole_cluster=whole_cluster), oci=state)
    only = {check} if isinstance(check, str) else set(check) if check is not None else None
    return run_checks(inv, config or Config(), now=NOW, only=only).findings


def open_findings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.status is Status.OPEN]


def service(
    name: str = "web",
    namespace: str = "shop",
    *,
    annotations: Mapping[str, str] | None = None,
    ports: Iterable[int] = (443,),
    source_ranges: Iterable[str] | None = None,
    type_: str = "LoadBalancer",
) -> dict[str, Any]:
    """A Service document."""
    spec: dict[str, Any] = {
        "type": type_,
        "selector": {"app": name},
        "ports": [{"name": f"p{p}", "port": p, "targetPort": 8080} for p in ports],
    }
    if source_ranges is not None:
        spec["loadBalancerSourceRanges"] = list(source_ranges)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
