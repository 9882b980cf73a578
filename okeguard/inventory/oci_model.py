"""The OCI side of a cluster's state: what the ``oke.*`` checks read.

The OCI collector (``inventory/oci.py``) fills an :class:`OciState` through the ``oci`` SDK; a
snapshot stores it under the header key ``oci`` (:func:`oci_state_to_dict` /
:func:`oci_state_from_dict`). Everything here is plain, immutable data. What could not be read
is an :class:`OciGap`, so the checks that needed it report ``unknown`` instead of passing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from okeguard.inventory.model import parse_time

Direction = Literal["ingress", "egress"]

# Well-known protocol numbers as OCI writes them ("all" means every protocol).
PROTOCOL_NAMES = {"all": "all", "1": "ICMP", "6": "TCP", "17": "UDP", "58": "ICMPv6"}


@dataclass(frozen=True, slots=True)
class PortRange:
    """An inclusive port range (``min == max`` for one port)."""

    min: int
    max: int

    def covers(self, port: int) -> bool:
        return self.min <= port <= self.max

    def overlaps(self, low: int, high: int) -> bool:
        return self.min <= high and low <= self.max


@dataclass(frozen=True, slots=True)
class IcmpMatch:
    """The ICMP or ICMPv6 messages a rule matches: one ``type``, and one ``code`` of it or every
    code (``code`` None)."""

    type: int
    code: int | None = None


@dataclass(frozen=True, slots=True)
class SecurityRule:
    """One security-list or NSG rule. ``peer`` is the source (ingress) or destination (egress):
    a CIDR, an OCI service CIDR label or an NSG OCID (``peer_type`` says which).
    ``ports`` is None when the rule does not restrict destination ports (all ports);
    ``source_ports`` likewise for TCP/UDP source ports; ``icmp`` is None when an ICMP/ICMPv6
    rule matches every type. Two rules are the same rule only when every field is equal.
    ``inexact`` says what of the rule as OCI holds it this model could not carry (e.g. options
    that do not belong to its protocol); None for every rule the model represents exactly.
    A remediation refuses to move or rewrite an inexact rule."""

    direction: Direction
    protocol: str
    peer: str
    peer_type: str = "CIDR_BLOCK"
    stateless: bool = False
    ports: PortRange | None = None
    description: str | None = None
    source_ports: PortRange | None = None
    icmp: IcmpMatch | None = None
    inexact: str | None = None

    @property
    def all_ports(self) -> bool:
        """Whether the rule reaches every destination port (a source-port range does not
        narrow that: a sender chooses its source port)."""
        return self.protocol == "all" or (self.protocol in ("6", "17") and self.ports is None)


@dataclass(frozen=True, slots=True)
class SecurityList:
    id: str
    name: str
    vcn_id: str
    etag: str | None
    rules: tuple[SecurityRule, ...]


@dataclass(frozen=True, slots=True)
class Nsg:
    """A network security group and its rules."""

    id: str
    name: str
    vcn_id: str
    etag: str | None
    rules: tuple[SecurityRule, ...]


@dataclass(frozen=True, slots=True)
class Subnet:
    id: str
    name: str
    vcn_id: str
    cidr: str
    prohibit_public_ip_on_vnic: bool
    security_list_ids: tuple[str, ...]
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class FlowLog:
    """A Logging-service flow log on a subnet or a VCN (``resource_id``)."""

    id: str
    name: str
    resource_id: str
    enabled: bool
    active: bool


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    """A VCN-native cluster's Kubernetes API endpoint placement."""

    subnet_id: str
    is_public_ip_enabled: bool
    nsg_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OkeCluster:
    id: str
    name: str
    compartment_id: str
    vcn_id: str
    kubernetes_version: str
    available_upgrades: tuple[str, ...]
    endpoint: ClusterEndpoint | None  # None: a legacy (not VCN-native) cluster
    cni_type: str  # "OCI_VCN_IP_NATIVE" or "FLANNEL_OVERLAY"
    lb_subnet_ids: tuple[str, ...] = ()
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerNode:
    id: str
    name: str
    private_ip: str | None
    public_ip: str | None


@dataclass(frozen=True, slots=True)
class NodePool:
    id: str
    name: str
    kubernetes_version: str
    subnet_ids: tuple[str, ...]  # placement subnets
    nsg_ids: tuple[str, ...]
    image_id: str | None
    image_name: str | None
    image_created: datetime | None
    nodes: tuple[WorkerNode, ...] = ()
    pod_subnet_ids: tuple[str, ...] = ()
    pod_nsg_ids: tuple[str, ...] = ()
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class VaultSecret:
    """An OCI Vault secret's metadata (never its content)."""

    id: str
    name: str
    compartment_id: str
    vault_id: str
    current_version_created: datetime | None
    rotation_enabled: bool
    rotation_interval_days: int | None = None
    target_system: str | None = None  # e.g. "ADB", "FUNCTION": rotate_secret can rotate it
    etag: str | None = None
    current_version_number: int | None = None  # pinned by rotate-secret plans
    freeform_tags: Mapping[str, str] = field(default_factory=dict)  # okeguard-length, -alphabet


@dataclass(frozen=True, slots=True)
class OciGap:
    """Something the OCI collector could not read. ``area`` names what (``cluster``,
    ``node_pools``, ``subnet``, ``security_list``, ``nsg``, ``flow_logs``, ``audit``,
    ``control_plane_log``, ``vault_secrets``); ``ocid`` the resource when one is known;
    ``policy`` the IAM statement that would grant the missing permission."""

    area: str
    reason: str
    ocid: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class OciState:
    """Everything read from OCI about one cluster."""

    region: str
    cluster: OkeCluster | None
    node_pools: tuple[NodePool, ...] = ()
    subnets: Mapping[str, Subnet] = field(default_factory=dict)
    security_lists: Mapping[str, SecurityList] = field(default_factory=dict)
    nsgs: Mapping[str, Nsg] = field(default_factory=dict)
    flow_logs: tuple[FlowLog, ...] = ()
    audit_retention_days: int | None = None
    control_plane_log_enabled: bool | None = None
    vault_secrets: tuple[VaultSecret, ...] = ()
    gaps: tuple[OciGap, ...] = ()

    def gaps_for(self, area: str, ocid: str | None = None) -> list[OciGap]:
        """Gaps of an area (and, when given, of one resource or of the whole area)."""
        return [g for g in self.gaps if g.area == area and (ocid is None or g.ocid in (None, ocid))]


_TYPES: Mapping[str, type] = {
    cls.__name__: cls
    for cls in (
        PortRange,
        IcmpMatch,
        SecurityRule,
        SecurityList,
        Nsg,
        Subnet,
        FlowLog,
        ClusterEndpoint,
        OkeCluster,
        WorkerNode,
        NodePool,
        VaultSecret,
        OciGap,
    )
}


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def oci_state_to_dict(state: OciState) -> dict[str, Any]:
    """The JSON-ready form of ``state`` stored in snapshots (``docs/snapshot.md``)."""
    out = _encode(state)
    assert isinstance(out, dict)
    return out


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuild a dataclass from its dict, converting nested dataclasses, tuples and times."""
    hints = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, f in hints.items():
        if name not in data:
            continue
        value = data[name]
        annotation = str(f.type)
        kwargs[name] = _decode_value(annotation, value)
    return cls(**kwargs)


def _decode_value(annotation: str, value: Any) -> Any:
    if value is None:
        return None
    if "datetime" in annotation:
        return parse_time(value)
    for type_name, cls in _TYPES.items():
        if annotation.startswith(f"tuple[{type_name},"):
            return tuple(_build(cls, v) for v in value)
        if annotation.startswith(f"Mapping[str, {type_name}]"):
            return {k: _build(cls, v) for k, v in value.items()}
        if annotation.split(" |")[0] == type_name:
            return _build(cls, value)
    if annotation.startswith("tuple["):
        return tuple(value)
    return value


def oci_state_from_dict(data: Mapping[str, Any]) -> OciState:
    """Rebuild an :class:`OciState` from :func:`oci_state_to_dict`'s output."""
    state: OciState = _build(OciState, data)
    return state
