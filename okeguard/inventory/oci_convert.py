"""From the ``oci`` SDK's model objects to okeguard's plain :mod:`oci_model` data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from okeguard.inventory.oci_model import (
    ClusterEndpoint,
    FlowLog,
    NodePool,
    Nsg,
    OkeCluster,
    PortRange,
    SecurityList,
    SecurityRule,
    Subnet,
    VaultSecret,
    WorkerNode,
)

FLOW_LOG_SERVICE = "flowlogs"
# The Logging service's name for OKE control-plane (API server, audit…) logs.
CONTROL_PLANE_LOG_SERVICE = "oke-k8s-cp-prod"


def _tuple(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(values or ())


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_cluster(data: Any, etag: str | None) -> OkeCluster:
    config = data.endpoint_config
    endpoint = (
        None
        if config is None or config.subnet_id is None
        else ClusterEndpoint(
            subnet_id=config.subnet_id,
            is_public_ip_enabled=bool(config.is_public_ip_enabled),
            nsg_ids=_tuple(config.nsg_ids),
        )
    )
    cni = next(
        (o.cni_type for o in data.cluster_pod_network_options or () if o.cni_type),
        "FLANNEL_OVERLAY",
    )
    options = data.options
    return OkeCluster(
        id=data.id,
        name=data.name or "",
        compartment_id=data.compartment_id,
        vcn_id=data.vcn_id or "",
        kubernetes_version=data.kubernetes_version or "",
        available_upgrades=_tuple(data.available_kubernetes_upgrades),
        endpoint=endpoint,
        cni_type=cni,
        lb_subnet_ids=_tuple(options.service_lb_subnet_ids if options else None),
        etag=etag,
    )


def to_node_pool(data: Any, etag: str | None) -> NodePool:
    details = data.node_config_details
    placement = [p.subnet_id for p in (details.placement_configs if details else None) or ()]
    subnets = tuple(dict.fromkeys([*placement, *(data.subnet_ids or ())]))
    pod = details.node_pool_pod_network_option_details if details else None
    source = data.node_source_details or data.node_source
    image_id = getattr(source, "image_id", None) or data.node_image_id
    nodes = tuple(
        WorkerNode(id=n.id, name=n.name or "", private_ip=n.private_ip, public_ip=n.public_ip)
        for n in data.nodes or ()
        if n.lifecycle_state not in ("DELETED", "DELETING")
    )
    return NodePool(
        id=data.id,
        name=data.name or "",
        kubernetes_version=data.kubernetes_version or "",
        subnet_ids=subnets,
        nsg_ids=_tuple(details.nsg_ids if details else None),
        image_id=image_id,
        image_name=data.node_image_name,
        image_created=None,
        nodes=nodes,
        pod_subnet_ids=_tuple(getattr(pod, "pod_subnet_ids", None)),
        pod_nsg_ids=_tuple(getattr(pod, "pod_nsg_ids", None)),
        etag=etag,
    )


def to_subnet(data: Any, etag: str | None) -> Subnet:
    return Subnet(
        id=data.id,
        name=data.display_name or "",
        vcn_id=data.vcn_id,
        cidr=data.cidr_block or "",
        prohibit_public_ip_on_vnic=bool(data.prohibit_public_ip_on_vnic),
        security_list_ids=_tuple(data.security_list_ids),
        etag=etag,
    )


def _ports(rule: Any) -> PortRange | None:
    for options in (rule.tcp_options, rule.udp_options):
        port_range = getattr(options, "destination_port_range", None)
        if port_range is not None:
            return PortRange(int(port_range.min), int(port_range.max))
    return None


def to_rule(rule: Any, direction: str) -> SecurityRule:
    """A security-list or NSG rule; ``direction`` is ``ingress`` or ``egress``."""
    ingress = direction == "ingress"
    peer = rule.source if ingress else rule.destination
    peer_type = rule.source_type if ingress else rule.destination_type
    return SecurityRule(
        direction="ingress" if ingress else "egress",
        protocol=str(rule.protocol),
        peer=peer or "",
        peer_type=peer_type or "CIDR_BLOCK",
        stateless=bool(rule.is_stateless),
        ports=_ports(rule),
        description=rule.description,
    )


def to_security_list(data: Any, etag: str | None) -> SecurityList:
    rules = [to_rule(r, "ingress") for r in data.ingress_security_rules or ()]
    rules += [to_rule(r, "egress") for r in data.egress_security_rules or ()]
    return SecurityList(
        id=data.id, name=data.display_name or "", vcn_id=data.vcn_id, etag=etag, rules=tuple(rules)
    )


def to_nsg(data: Any, etag: str | None, rules: Iterable[Any]) -> Nsg:
    return Nsg(
        id=data.id,
        name=data.display_name or "",
        vcn_id=data.vcn_id,
        etag=etag,
        rules=tuple(to_rule(r, str(r.direction).lower()) for r in rules),
    )


def to_flow_log(item: Any) -> FlowLog:
    return FlowLog(
        id=item.id,
        name=item.display_name or "",
        resource_id=item.configuration.source.resource,
        enabled=bool(item.is_enabled),
        active=item.lifecycle_state == "ACTIVE",
    )


def _interval_days(interval: str | None) -> int | None:
    """Days of an ISO 8601 duration such as ``P30D`` (the Vault's rotation interval)."""
    match = re.fullmatch(r"P(\d+)D", interval or "")
    return int(match.group(1)) if match else None


def to_vault_secret(
    summary: Any, current_version_created: datetime | None, current_version: int | None = None
) -> VaultSecret:
    rotation = summary.rotation_config
    target = getattr(rotation, "target_system_details", None)
    return VaultSecret(
        id=summary.id,
        name=summary.secret_name or "",
        compartment_id=summary.compartment_id,
        vault_id=summary.vault_id,
        current_version_created=_utc(current_version_created),
        rotation_enabled=bool(rotation is not None and rotation.is_scheduled_rotation_enabled),
        rotation_interval_days=_interval_days(getattr(rotation, "rotation_interval", None)),
        target_system=getattr(target, "target_system_type", None),
        current_version_number=current_version,
        freeform_tags=dict(getattr(summary, "freeform_tags", None) or {}),
    )


def image_created(value: datetime | None) -> datetime | None:
    return _utc(value)
