"""Facts about Kubernetes objects that the checks, the inventory and the planners all rely on.

One place for: which kinds run pods and where their pod template sits, which fields of a pod
spec hold containers, which kinds a rollout follows, and which Linux capabilities are dangerous
(with ``CAP_`` prefixes and case normalised the way the kubelet accepts them). Pure data and
functions, importing nothing of okeguard, so every layer can import it without cycles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

# Kinds okeguard reads, with the apiVersion the live collector lists them at.
SUPPORTED_KINDS: Mapping[str, str] = {
    "Namespace": "v1",
    "Node": "v1",
    "Pod": "v1",
    "ServiceAccount": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Ingress": "networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolume",
        "StorageClass",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "CSIDriver",
        "PodSecurityPolicy",
    }
)
# Kinds whose objects run pods, in the order workloads are derived and reported.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
# Controllers that roll their pods over when the template changes (watched after a patch).
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

# Where the pod template sits in each workload kind (keys from the object's root). A Pod is its
# own template: its metadata and spec are the pod's.
_TEMPLATE_KEYS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "Pod": (),
}

ContainerKind = Literal["container", "initContainer", "ephemeralContainer"]
# Pod spec fields holding containers, with the kind of container each holds.
CONTAINER_FIELDS: tuple[tuple[str, ContainerKind], ...] = (
    ("containers", "container"),
    ("initContainers", "initContainer"),
    ("ephemeralContainers", "ephemeralContainer"),
)
# A pod template may not carry ephemeral containers: they are added to running Pods only
# (``kubectl debug``), so patches of a template touch these fields alone.
TEMPLATE_CONTAINER_FIELDS = tuple(f for f, kind in CONTAINER_FIELDS if kind != "ephemeralContainer")

# Added capabilities that `k8s.dangerous-capabilities` flags and `add-security-context` removes
# (`checks.denied_capabilities` extends the list).
DANGEROUS_CAPABILITIES = (
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "NET_RAW",
    "DAC_READ_SEARCH",
    "ALL",
)


def template_keys(kind: str) -> tuple[str, ...] | None:
    """The keys from the object's root to its pod template (``()`` for a Pod); None if ``kind``
    runs no pods."""
    return _TEMPLATE_KEYS.get(kind)


def pod_spec_pointer(kind: str) -> str:
    """JSON Pointer of the pod spec in an object of ``kind`` (``/spec/template/spec``,
    ``/spec/jobTemplate/spec/template/spec``, ``/spec`` for a Pod)."""
    keys = _keys(kind)
    return "/" + "/".join((*keys, "spec"))


def pod_spec_dotted(kind: str) -> str:
    """The pod spec's path for messages (``spec.template.spec``; ``spec`` for a Pod)."""
    return ".".join((*_keys(kind), "spec"))


def _keys(kind: str) -> tuple[str, ...]:
    keys = template_keys(kind)
    if keys is None:
        raise ValueError(f"{kind} is not a workload kind")
    return keys


def normalise_capability(value: object) -> str:
    """``cap_sys_admin`` / `` CAP_SYS_ADMIN`` -> ``SYS_ADMIN``: the kubelet accepts either case
    and an optional ``CAP_`` prefix, so compare capabilities in this form only."""
    cap = str(value).strip().upper()
    return cap.removeprefix("CAP_")


def normalise_capabilities(values: object) -> tuple[str, ...]:
    """Every entry of a ``capabilities.add``/``drop`` list, normalised (not a list: none)."""
    if not isinstance(values, list | tuple):
        return ()
    return tuple(normalise_capability(v) for v in values)


def denied_capabilities(configured: Iterable[str] = ()) -> tuple[str, ...]:
    """The built-in dangerous capabilities followed by the configured ones
    (``checks.denied_capabilities``, added to the defaults, never replacing them), normalised and
    without repeats, in a stable order."""
    return tuple(
        dict.fromkeys((*DANGEROUS_CAPABILITIES, *(normalise_capability(c) for c in configured)))
    )
