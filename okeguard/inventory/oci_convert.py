"""From the ``oci`` SDK's model objects to okeguard's plain :mod:`oci_model` data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from okeguard.inventory.oci_model import (
    ClusterEndpoint,
    FlowLog,
    IcmpMatch,
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


def _span(port_range: Any) -> PortRange | None:
    return None if port_range is None else PortRange(int(port_range.min), int(port_range.max))


# Which SDK option attribute belongs to which protocol ("1" ICMP, "58" ICMPv6).
_OPTIONS = {"tcp_options": ("6",), "udp_options": ("17",), "icmp_options": ("1", "58")}


def _inexact(rule: Any, protocol: str) -> str | None:
    """What of an SDK rule :class:`SecurityRule` cannot carry: options on a protocol they do
    not belong to, options objects that match nothing more, an ICMP code without a type."""
    problems = []
    for attribute, protocols in _OPTIONS.items():
        options = getattr(rule, attribute, None)
        if options is None:
            continue
        name = attribute.split("_")[0].upper()
        if protocol not in protocols:
            problems.append(f"{name} options on protocol {protocol}")
        elif attribute == "icmp_options":
            if options.type is None:
                problems.append("ICMP options without a type")
        elif options.source_port_range is None and options.destination_port_range is None:
            problems.append(f"empty {name} options")
    return "; ".join(problems) or None


def to_rule(rule: Any, direction: str) -> SecurityRule:
    """A security-list or NSG rule; ``direction`` is ``ingress`` or ``egress``. Destination and
    source port ranges and ICMP type/code are kept; anything else the SDK rule carries that
    :class:`SecurityRule` cannot hold is named in ``inexact``."""
    ingress = direction == "ingress"
    peer = rule.source if ingress else rule.destination
    peer_type = rule.source_type if ingress else rule.destination_type
    protocol = str(rule.protocol)
    ports = source_ports = icmp = None
    if protocol in ("6", "17"):
        options = rule.tcp_options if protocol == "6" else rule.udp_options
        if options is not None:
            ports = _span(options.destination_port_range)
            source_ports = _span(options.source_port_range)
    elif protocol in ("1", "58") and getattr(rule.icmp_options, "type", None) is not None:
        code = rule.icmp_options.code
        icmp = IcmpMatch(int(rule.icmp_options.type), None if code is None else int(code))
    return SecurityRule(
        direction="ingress" if ingress else "egress",
        protocol=protocol,
        peer=peer or "",
        peer_type=peer_type or "CIDR_BLOCK",
        stateless=bool(rule.is_stateless),
        ports=ports,
        description=rule.description,
        source_ports=source_ports,
        icmp=icmp,
        inexact=_inexact(rule, protocol),
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
