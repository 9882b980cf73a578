"""OKE load-balancer checks (practices P1, P3, P7, P11): the load balancers that LoadBalancer
Services make the OCI cloud-controller-manager (CCM) create, judged from the Services' spec and
annotations.

They read only Services, so they run wherever Services are (a live cluster, a snapshot, a set of
manifests), with or without the OCI side.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping

from okeguard.checks._common import object_hit
from okeguard.checks.model import Severity
from okeguard.checks.oke_network import WORLD
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import K8sObject

# Service annotations read by the OCI CCM (oracle/oci-cloud-controller-manager,
# docs/load-balancer-annotations.md, and Oracle's "Summary of Annotations for Load Balancers
# and Network Load Balancers").
LB_TYPE = "oci.oraclecloud.com/load-balancer-type"  # "lb" (default) or "nlb"
RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"  # NSG, SL-All, SL-Frontend, None
LB_SL_MODE = "service.beta.kubernetes.io/oci-load-balancer-security-list-management-mode"
NLB_SL_MODE = "oci-network-load-balancer.oraclecloud.com/security-list-management-mode"
LB_INTERNAL = "service.beta.kubernetes.io/oci-load-balancer-internal"
NLB_INTERNAL = "oci-network-load-balancer.oraclecloud.com/internal"
SSL_PORTS = "service.beta.kubernetes.io/oci-load-balancer-ssl-ports"
# Kubernetes' own annotation (v1.AnnotationLoadBalancerSourceRangesKey), read by the CCM only
# when spec.loadBalancerSourceRanges is empty.
SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"
SPEC_RANGES = "spec.loadBalancerSourceRanges"
# Defaults of the legacy security-list annotations when neither annotation is set, from the
# CCM's annotation table: "All" for a load balancer (an invalid value also falls back to
# "All"), "None" for a network load balancer. The newer RULE_MODE annotation has no default
# ("N/A"): without it the legacy annotation's mode applies.
_LEGACY_MODES: Mapping[bool, tuple[str, str]] = {
    False: (LB_SL_MODE, "All"),
    True: (NLB_SL_MODE, "None"),
}
# Valid values by their lower-case spelling: the CCM lower-cases the newer annotation before
# comparing, and CHECKS.md asks the same of the legacy one.
_RULE_MODES = {"nsg": "NSG", "sl-all": "SL-All", "sl-frontend": "SL-Frontend", "none": "None"}
_LEGACY_VALUES = {"all": "All", "frontend": "Frontend", "none": "None"}
_SERVICE_READS = ("Service",)


def load_balancer_services(ctx: CheckContext) -> Iterator[K8sObject]:
    """Services of ``type: LoadBalancer`` (every namespace: the CCM serves them all)."""
    for service in ctx.inventory.of_kind("Service"):
        if service.spec.get("type") == "LoadBalancer":
            yield service


def is_network_load_balancer(service: K8sObject) -> bool:
    """True when the Service asks for an OCI Network Load Balancer instead of a load balancer."""
    return str(service.annotations.get(LB_TYPE) or "lb").strip().lower() == "nlb"


def rule_management_mode(service: K8sObject) -> tuple[str, str]:
    """(mode, where it comes from) of the CCM's security-rule management for a Service.

    The mode is spelt canonically (``NSG``, ``SL-All``, ``All``, ``None``…) whatever the case of
    the annotation's value; an unknown value of the newer annotation is returned as written.
    """
    annotations = service.annotations
    value = annotations.get(RULE_MODE)
    if value is not None:
        shown = str(value)
        mode = _RULE_MODES.get(shown.strip().lower())
        if mode is None:
            return shown.strip(), f"{RULE_MODE} is {shown!r}, not a valid mode"
        return mode, f"{RULE_MODE} is {shown!r}"
    key, default = _LEGACY_MODES[is_network_load_balancer(service)]
    legacy = annotations.get(key)
    if legacy is None:
        return (
            default,
            f"neither {RULE_MODE} nor {key} is set, so the CCM default {default!r} applies",
        )
    mode = _LEGACY_VALUES.get(str(legacy).strip().lower())
    if mode is None:
        return default, f"{key} is {str(legacy)!r}, not a valid mode, so the CCM uses {default!r}"
    return mode, f"{key} is {str(legacy)!r}"


def source_ranges(service: K8sObject) -> tuple[list[str], str | None]:
    """(CIDRs, where they come from) that the CCM admits to a Service's load balancer:
    ``spec.loadBalancerSourceRanges`` when it lists any, else the comma-separated
    ``service.beta.kubernetes.io/load-balancer-source-ranges`` annotation; ``([], None)`` when
    neither is set (the CCM then opens ``0.0.0.0/0``)."""
    listed = [str(r).strip() for r in service.spec.get("loadBalancerSourceRanges") or ()]
    listed = [r for r in listed if r]
    if listed:
        return listed, SPEC_RANGES
    annotation = str(service.annotations.get(SOURCE_RANGES) or "")
    parts = [part.strip() for part in annotation.split(",") if part.strip()]
    return (parts, f"the {SOURCE_RANGES} annotation") if parts else ([], None)


def is_world(cidr: str) -> bool:
    """True for a range holding every address (``0.0.0.0/0``, ``::/0``, or any ``/0``)."""
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return cidr in WORLD


@check(
    id="oke.lb-security-list-mode",
    title="Load balancer rules managed outside NSGs",
    practice="P7",
    severity=Severity.MEDIUM,
    remediation="move-rules-to-nsg",
    reads=_SERVICE_READS,
)
def lb_security_list_mode(ctx: CheckContext) -> Iterator[Hit]:
    """A LoadBalancer Service whose security-rule management mode is not `NSG`. The mode is
    `oci.oraclecloud.com/security-rule-management-mode` when set (load balancers and network load
    balancers alike); else the legacy security-list annotation, whose CCM default is `All` for a
    load balancer and `None` for a network load balancer. Security-list modes make the CCM edit
    subnet security lists, which Terraform reverts as drift; `None` leaves every rule to be kept
    by hand. Values compare case-insensitively (`nsg` is `NSG`), as the CCM does."""
    for service in load_balancer_services(ctx):
        mode, source = rule_management_mode(service)
        if mode == "NSG":
            continue
        effect = (
            "the CCM manages no rules for it"
            if mode == "None"
            else "the CCM writes its rules into the subnets' security lists"
        )
        yield object_hit(
            service,
            f"security-rule management mode is {mode!r} ({source}), so {effect} instead of NSGs.",
        )


@check(
    id="oke.public-load-balancer",
    title="Public load balancer open to everyone",
    practice=("P1", "P3"),
    severity=Severity.MEDIUM,
    reads=_SERVICE_READS,
    severity_note="info when the planned exposure is `public`",
)
def public_load_balancer(ctx: CheckContext) -> Iterator[Hit]:
    """A LoadBalancer Service without the internal annotation
    (`service.beta.kubernetes.io/oci-load-balancer-internal: "true"`, or
    `oci-network-load-balancer.oraclecloud.com/internal: "true"` for a network load balancer)
    and without source ranges (or with `0.0.0.0/0` among them): the CCM then opens the load
    balancer to the whole internet. Source ranges are `spec.loadBalancerSourceRanges`, or, when
    that is empty, the comma-separated `service.beta.kubernetes.io/load-balancer-source-ranges`
    annotation, as the CCM reads them."""
    severity = Severity.INFO if ctx.config.exposure == "public" else None
    for service in load_balancer_services(ctx):
        key = NLB_INTERNAL if is_network_load_balancer(service) else LB_INTERNAL
        internal = service.annotations.get(key)
        if str(internal or "").strip().lower() == "true":
            continue
        ranges, where = source_ranges(service)
        world = [r for r in ranges if is_world(r)]
        if ranges and not world:
            continue
        shown = "unset" if internal is None else repr(str(internal))
        if world:
            why = f"{where} includes {world[0]}"
        else:
            why = (
                f"{SPEC_RANGES} is empty and the {SOURCE_RANGES} annotation is unset, "
                "so the CCM opens 0.0.0.0/0"
            )
        message = f"{key} is {shown} and {why}: the load balancer is public."
        yield object_hit(service, message, severity)


def _service_ports(service: K8sObject) -> list[int]:
    ports = []
    for port in service.spec.get("ports") or ():
        if isinstance(port, dict):
            try:
                ports.append(int(port.get("port")))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
    return ports


@check(
    id="oke.lb-without-tls",
    title="Load balancer serving 443 without TLS termination",
    practice="P11",
    severity=Severity.INFO,
    reads=_SERVICE_READS,
)
def lb_without_tls(ctx: CheckContext) -> Iterator[Hit]:
    """A LoadBalancer Service (OCI load balancer) serves port 443 but
    `service.beta.kubernetes.io/oci-load-balancer-ssl-ports` does not list it, so the load
    balancer does not terminate TLS there. Network load balancers are not reported: they work at
    layer 4, cannot terminate TLS and pass it through to the pods (end-to-end TLS)."""
    for service in load_balancer_services(ctx):
        if is_network_load_balancer(service) or 443 not in _service_ports(service):
            continue
        ssl_ports = service.annotations.get(SSL_PORTS)
        if ssl_ports is None:
            yield object_hit(service, f"Service serves port 443 but {SSL_PORTS} is not set.")
        elif "443" not in {part.strip() for part in str(ssl_ports).split(",")}:
            yield object_hit(
                service, f"Service serves port 443 but {SSL_PORTS} is {str(ssl_ports)!r}."
            )
