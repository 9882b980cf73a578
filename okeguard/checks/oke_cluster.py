"""OKE cluster checks (practices P2, P5, P6, P8, P12, P13, P18): the API endpoint, Kubernetes
versions and node images, policy enforcement, audit and control-plane logs, Vault secrets.

They read ``inventory.oci`` (an :class:`~okeguard.inventory.oci_model.OciState`) and only run
when the OCI side was read. They fail closed: where the collector recorded an
:class:`~okeguard.inventory.oci_model.OciGap` for what a check needs, the check reports
``unknown`` with the gap's reason and IAM policy instead of passing. The helpers for that live
here and :mod:`okeguard.checks.oke_network` uses them too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from okeguard.checks._common import WORKLOAD_READS
from okeguard.checks.cluster import runs_any
from okeguard.checks.images import parse_image
from okeguard.checks.model import ResourceRef, Severity, Status
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import Workload
from okeguard.inventory.oci_model import NodePool, OciGap, OciState, OkeCluster

AUDIT_RETENTION_MIN_DAYS = 365
# Products that enforce NetworkPolicies. Neither OKE CNI does so alone: Oracle's "Pod
# Networking" page says both the VCN-native and the flannel CNI plugin let you implement
# NetworkPolicy "by allowing you to use Calico".
POLICY_ENGINES = ("calico", "cilium", "antrea", "kube-router")
# The agents' images, as (organisation, repository name or its prefix before a "-"), matched on
# the last two path segments whatever the registry or mirror path in front: Calico's node agent
# (which the `canal` DaemonSet runs too), Cilium's agent, Antrea's agent (antrea-agent-ubuntu…)
# and kube-router.
POLICY_ENGINE_IMAGES = (
    ("calico", "node"),
    ("cilium", "cilium"),
    ("antrea", "antrea-agent"),
    ("cloudnativelabs", "kube-router"),
)


# --- helpers shared with oke_network ---------------------------------------------------------


def oci_state(ctx: CheckContext) -> OciState:
    """The OCI state of the inventory (``oci=True`` checks only run when it is present)."""
    state = ctx.inventory.oci
    assert state is not None, "oke.* checks are registered with oci=True"
    return state


def gap_text(gaps: Sequence[OciGap], fallback: str) -> str:
    """``reason; grant it with: policy`` for each gap, or ``fallback`` when there is none."""
    parts = []
    for gap in gaps:
        text = gap.reason
        if gap.policy:
            text += f" (grant it with: {gap.policy})"
        parts.append(text)
    return "; ".join(dict.fromkeys(parts)) or fallback


def unknown_hit(resource: ResourceRef, what: str, gaps: Sequence[OciGap], fallback: str) -> Hit:
    """An ``unknown`` hit: ``could not evaluate <what>: <gap reasons>.``"""
    return Hit(
        resource,
        f"could not evaluate {what}: {gap_text(gaps, fallback)}.",
        status=Status.UNKNOWN,
    )


def cluster_ref(cluster: OkeCluster) -> ResourceRef:
    return ResourceRef("Cluster", None, cluster.name, ocid=cluster.id)


def node_pool_ref(pool: NodePool) -> ResourceRef:
    return ResourceRef("NodePool", None, pool.name, ocid=pool.id)


def cluster_unknown(ctx: CheckContext, what: str) -> Hit:
    """``unknown`` on the cluster when the OKE cluster itself was not read."""
    state = oci_state(ctx)
    return unknown_hit(
        ResourceRef("Cluster", None, ctx.inventory.cluster),
        what,
        state.gaps_for("cluster"),
        "the OKE cluster was not read",
    )


def node_pools_unknown(state: OciState, what: str) -> Iterator[Hit]:
    """One ``unknown`` hit when node pools could not (all) be read."""
    gaps = state.gaps_for("node_pools")
    if gaps:
        yield unknown_hit(ResourceRef("NodePool", None, "*"), what, gaps, "")


# --- checks ------------------------------------------------------------------------------------


@check(
    id="oke.public-api-endpoint",
    title="Public Kubernetes API endpoint",
    practice="P2",
    severity=Severity.HIGH,
    remediation="make-endpoint-private",
    reads=("oci:cluster", "oci:subnet"),
    oci=True,
    severity_note="info when the planned exposure is `public`",
)
def public_api_endpoint(ctx: CheckContext) -> Iterator[Hit]:
    """The cluster's Kubernetes API endpoint has a public IP (`is_public_ip_enabled: true`), or
    sits in a subnet that allows public IPs (`prohibit_public_ip_on_vnic: false`). A legacy
    cluster (no `endpoint_config`) always has a public endpoint and is reported too."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the API endpoint")
        return
    severity = Severity.INFO if ctx.config.exposure == "public" else None
    endpoint = cluster.endpoint
    if endpoint is None:
        message = "cluster has no endpoint_config (legacy, not VCN-native), so its Kubernetes API endpoint is public."
        yield Hit(cluster_ref(cluster), message, severity=severity)
        return
    if endpoint.is_public_ip_enabled:
        message = "endpoint_config.is_public_ip_enabled is true, so the Kubernetes API endpoint has a public IP address."
        yield Hit(cluster_ref(cluster), message, severity=severity)
        return
    subnet = state.subnets.get(endpoint.subnet_id)
    if subnet is None:
        gaps = state.gaps_for("subnet", endpoint.subnet_id)
        what = f"the endpoint subnet {endpoint.subnet_id}"
        yield unknown_hit(cluster_ref(cluster), what, gaps, "the subnet was not read")
    elif not subnet.prohibit_public_ip_on_vnic:
        message = f"endpoint subnet {subnet.name!r} has prohibit_public_ip_on_vnic false, so the API endpoint may get a public IP address."
        yield Hit(cluster_ref(cluster), message, severity=severity)


@check(
    id="oke.legacy-endpoint",
    title="Cluster not VCN-native",
    practice="P2",
    severity=Severity.HIGH,
    reads=("oci:cluster",),
    oci=True,
)
def legacy_endpoint(ctx: CheckContext) -> Iterator[Hit]:
    """The cluster is not VCN-native (it has no `endpoint_config`), so its API endpoint cannot be
    placed in a private subnet or guarded by NSGs."""
    cluster = oci_state(ctx).cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the endpoint configuration")
    elif cluster.endpoint is None:
        yield Hit(
            cluster_ref(cluster),
            "cluster endpoint_config is null: the cluster is not VCN-native and its API endpoint cannot be made private.",
        )


@check(
    id="oke.outdated-kubernetes",
    title="Kubernetes upgrade available",
    practice="P5",
    severity=Severity.MEDIUM,
    reads=("oci:cluster",),
    oci=True,
)
def outdated_kubernetes(ctx: CheckContext) -> Iterator[Hit]:
    """OKE offers newer Kubernetes versions for the cluster (`available_kubernetes_upgrades` is
    not empty)."""
    cluster = oci_state(ctx).cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the Kubernetes version")
    elif cluster.available_upgrades:
        upgrades = ", ".join(cluster.available_upgrades)
        yield Hit(
            cluster_ref(cluster),
            f"kubernetes_version is {cluster.kubernetes_version} while available_kubernetes_upgrades is [{upgrades}].",
        )


def parse_version(text: str) -> tuple[int, ...] | None:
    """``v1.30.1`` -> ``(1, 30, 1)``; None when the text is no dotted version."""
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:[-+].*)?", text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


@check(
    id="oke.node-pool-version-skew",
    title="Node pool behind the control plane",
    practice="P5",
    severity=Severity.MEDIUM,
    reads=("oci:cluster", "oci:node_pools"),
    oci=True,
)
def node_pool_version_skew(ctx: CheckContext) -> Iterator[Hit]:
    """A node pool runs an older Kubernetes version than the control plane (versions compared
    numerically, so v1.9 is older than v1.10)."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the control plane version")
        return
    yield from node_pools_unknown(state, "the node pools' Kubernetes versions")
    control = parse_version(cluster.kubernetes_version)
    for pool in state.node_pools:
        version = parse_version(pool.kubernetes_version)
        if control is None or version is None:
            versions = f"{pool.kubernetes_version!r} and {cluster.kubernetes_version!r}"
            yield Hit(
                node_pool_ref(pool),
                f"could not compare the Kubernetes versions {versions}.",
                status=Status.UNKNOWN,
            )
        elif version < control:
            yield Hit(
                node_pool_ref(pool),
                f"node pool kubernetes_version is {pool.kubernetes_version}, behind the control plane's {cluster.kubernetes_version}.",
            )


@check(
    id="oke.stale-node-image",
    title="Stale node image",
    practice="P5",
    severity=Severity.MEDIUM,
    reads=("oci:node_pools",),
    oci=True,
)
def stale_node_image(ctx: CheckContext) -> Iterator[Hit]:
    """A node pool's image was created longer ago than `checks.node_image_max_age_days` (default
    60), so its nodes miss recent OS security patches."""
    state = oci_state(ctx)
    limit = ctx.config.checks.node_image_max_age_days
    yield from node_pools_unknown(state, "the node pools' images")
    for pool in state.node_pools:
        image = pool.image_name or pool.image_id or "?"
        if pool.image_created is None:
            yield Hit(
                node_pool_ref(pool),
                f"could not evaluate the age of image {image!r}: its creation time is unknown.",
                status=Status.UNKNOWN,
            )
            continue
        age = (ctx.now - pool.image_created).days
        if age > limit:
            yield Hit(
                node_pool_ref(pool),
                f"node image {image!r} was created {age} days ago (image_created {pool.image_created.date()}), more than the {limit}-day maximum.",
            )


def is_policy_engine_image(image: str) -> bool:
    """True when ``image`` is a NetworkPolicy engine's agent (``quay.io/calico/node:v3.26``,
    ``docker.io/cilium/cilium``, ``antrea/antrea-agent-ubuntu``…), from any registry."""
    segments = parse_image(image).repository.lower().split("/")
    if len(segments) < 2:
        return False
    organisation, name = segments[-2], segments[-1]
    return any(
        organisation == org and (name == repo or name.startswith(f"{repo}-"))
        for org, repo in POLICY_ENGINE_IMAGES
    )


def policy_engine(workloads: Iterable[Workload]) -> Workload | None:
    """The first workload that runs a NetworkPolicy engine, recognised by its name (or its image's
    name: ``calico-node``, ``cilium``…) or by an engine agent's image, or None."""
    candidates = list(workloads)
    by_image = next(
        (
            w
            for w in candidates
            if any(c.image and is_policy_engine_image(c.image) for c in w.containers)
        ),
        None,
    )
    return by_image or runs_any(candidates, POLICY_ENGINES)


@check(
    id="oke.network-policy-not-enforced",
    title="NetworkPolicies not enforced",
    practice="P6",
    severity=Severity.HIGH,
    reads=(*WORKLOAD_READS, "NetworkPolicy", "oci:cluster"),
    whole_cluster=True,
    oci=True,
)
def network_policy_not_enforced(ctx: CheckContext) -> Iterator[Hit]:
    """NetworkPolicies exist (or are recommended: there are workloads outside the system
    namespaces) but nothing enforces them: no Calico, Cilium, Antrea or kube-router runs (in any
    namespace, recognised by workload name or by the agent's image, such as `calico/node` from any
    registry, which the `canal` DaemonSet runs too). Neither
    OKE CNI enforces policies alone; the flannel overlay and the VCN-native plugin both need
    Calico (or another engine) installed, as Oracle's "Pod Networking" page says."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the CNI type")
        return
    policies = sum(1 for _ in ctx.inventory.of_kind("NetworkPolicy"))
    if policies:
        why = f"the cluster's {policies} NetworkPolicies are not enforced"
    elif any(True for _ in ctx.workloads()):
        why = "NetworkPolicies (recommended for its workloads) could not be enforced"
    else:
        return
    if policy_engine(ctx.inventory.workloads) is None:
        yield Hit(
            cluster_ref(cluster),
            f"cni_type is {cluster.cni_type} and no Calico, Cilium, Antrea or kube-router pods run, so {why}.",
        )


@check(
    id="oke.audit-retention-short",
    title="Short audit log retention",
    practice="P13",
    severity=Severity.LOW,
    reads=("oci:audit",),
    oci=True,
)
def audit_retention_short(ctx: CheckContext) -> Iterator[Hit]:
    """The tenancy keeps audit logs for fewer than 365 days (the OCI Audit retention period)."""
    state = oci_state(ctx)
    days = state.audit_retention_days
    ref = ResourceRef("Tenancy", None, "tenancy")
    if days is None:
        fallback = "the audit configuration was not read"
        yield unknown_hit(ref, "the audit retention", state.gaps_for("audit"), fallback)
    elif days < AUDIT_RETENTION_MIN_DAYS:
        yield Hit(
            ref,
            f"audit retention_period_days is {days}, below {AUDIT_RETENTION_MIN_DAYS} days.",
        )


@check(
    id="oke.control-plane-logs-disabled",
    title="Control-plane logs disabled",
    practice=("P12", "P13"),
    severity=Severity.LOW,
    reads=("oci:cluster", "oci:control_plane_log"),
    oci=True,
)
def control_plane_logs_disabled(ctx: CheckContext) -> Iterator[Hit]:
    """No enabled OCI Logging service log collects the cluster's control-plane logs (the
    `oke-k8s-cp-prod` category), so API-server audit events cannot be reviewed."""
    state = oci_state(ctx)
    cluster = state.cluster
    if cluster is None:
        yield cluster_unknown(ctx, "the control-plane logs")
        return
    if state.control_plane_log_enabled is None:
        gaps = state.gaps_for("control_plane_log")
        fallback = "the Logging service was not read"
        yield unknown_hit(cluster_ref(cluster), "the control-plane logs", gaps, fallback)
    elif not state.control_plane_log_enabled:
        yield Hit(
            cluster_ref(cluster),
            "no enabled Logging service log (oke-k8s-cp-prod) collects the cluster's control-plane logs.",
        )


@check(
    id="oke.vault-secret-not-rotated",
    title="Vault secret not rotated",
    practice=("P8", "P18"),
    severity=Severity.MEDIUM,
    remediation="rotate-secret",
    reads=("oci:vault_secrets",),
    oci=True,
)
def vault_secret_not_rotated(ctx: CheckContext) -> Iterator[Hit]:
    """An OCI Vault secret's current version is older than `checks.vault_secret_max_age_days`
    (default 90), or the secret has no rotation configured. One finding per secret."""
    state = oci_state(ctx)
    limit = ctx.config.checks.vault_secret_max_age_days
    gaps = state.gaps_for("vault_secrets")
    if gaps:
        ref = ResourceRef("VaultSecret", None, "*")
        yield unknown_hit(ref, "the Vault secrets", gaps, "")
    for secret in state.vault_secrets:
        ref = ResourceRef("VaultSecret", None, secret.name, ocid=secret.id)
        problems = []
        created = secret.current_version_created
        if created is not None and (ctx.now - created).days > limit:
            age = (ctx.now - created).days
            problems.append(f"its current version is {age} days old (maximum {limit})")
        if not secret.rotation_enabled:
            problems.append("rotation_enabled is false (no rotation configured)")
        if problems:
            yield Hit(ref, f"Vault secret {secret.name!r}: {' and '.join(problems)}.")
        elif created is None:
            yield Hit(
                ref,
                f"could not evaluate Vault secret {secret.name!r}: the creation time of its current version is unknown.",
                status=Status.UNKNOWN,
            )
