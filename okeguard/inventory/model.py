"""The typed, in-memory model of one cluster's state that every check reads.

An :class:`Inventory` is built once from any source (manifests, a snapshot, a live cluster) by
:func:`build_inventory`. Derived views that many checks need (workloads with their effective
security contexts, objects by kind, RBAC bindings) are computed once, at build time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from okeguard.kube_shapes import (
    CLUSTER_SCOPED_KINDS,
    CONTAINER_FIELDS,
    SUPPORTED_KINDS,
    WORKLOAD_KINDS,
    ContainerKind,
    normalise_capabilities,
    pod_spec_dotted,
    template_keys,
)
from okeguard.timestamps import parse_timestamp

if TYPE_CHECKING:
    from okeguard.inventory.oci_model import OciState

Obj = Mapping[str, Any]

# Re-exported: the kinds, workload kinds and container fields live in okeguard.kube_shapes.
__all__ = [
    "CLUSTER_SCOPED_KINDS",
    "CONTAINER_FIELDS",
    "SUPPORTED_KINDS",
    "WORKLOAD_KINDS",
    "ContainerKind",
]


def _mapping(value: object) -> Obj:
    """``value`` when it is a mapping, else an empty one: what a reader of an object that was
    not validated (:mod:`okeguard.inventory.validate`) may safely call ``.get`` on."""
    if type(value) is dict:  # nearly always: a plain test, not the slower one of the ABC
        return value
    return value if isinstance(value, Mapping) else {}


def parse_time(value: object) -> datetime | None:
    """Parse a Kubernetes timestamp (``2024-05-01T10:00:00Z``, or the datetime YAML makes of an
    unquoted one) to an aware datetime: see :func:`okeguard.timestamps.parse_timestamp`."""
    return parse_timestamp(value)


@dataclass(frozen=True, slots=True)
class K8sObject:
    """One Kubernetes object as read, with secret values already redacted.

    ``origin`` is where it came from (``path:line`` for a manifest), used to point findings at
    files in SARIF and markdown output.
    """

    api_version: str
    kind: str
    namespace: str | None
    name: str
    raw: Obj
    origin: str | None = None

    @property
    def metadata(self) -> Obj:
        return _mapping(self.raw.get("metadata"))

    @property
    def labels(self) -> Mapping[str, str]:
        return _mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        metadata = self.raw.get("metadata")  # read for every finding: the common case inline
        if type(metadata) is dict:
            annotations = metadata.get("annotations")
            if type(annotations) is dict:
                return annotations
        return _mapping(self.metadata.get("annotations"))

    @property
    def spec(self) -> Obj:
        return _mapping(self.raw.get("spec"))

    @property
    def created_at(self) -> datetime | None:
        return parse_time(self.metadata.get("creationTimestamp"))

    def controller_owner(self) -> tuple[str, str] | None:
        """(kind, name) of the owner reference marked ``controller: true``, if any."""
        refs = self.metadata.get("ownerReferences")
        for ref in refs if isinstance(refs, list) else ():
            if isinstance(ref, Mapping) and ref.get("controller"):
                return str(ref.get("kind")), str(ref.get("name"))
        return None


@dataclass(frozen=True, slots=True)
class EffectiveSecurityContext:
    """A container's security settings after pod-to-container inheritance.

    ``run_as_user``, ``run_as_non_root``, ``run_as_group`` and ``seccomp_profile`` fall back to the
    pod's ``securityContext`` as Kubernetes defines; the rest exist only on the container.
    Capabilities are upper-case without the ``CAP_`` prefix.
    """

    run_as_user: int | None
    run_as_non_root: bool | None
    run_as_group: int | None
    seccomp_profile: str | None
    privileged: bool | None
    allow_privilege_escalation: bool | None
    read_only_root_filesystem: bool | None
    capabilities_add: tuple[str, ...]
    capabilities_drop: tuple[str, ...]

    @property
    def may_run_as_root(self) -> bool:
        """The `k8s.run-as-root` rule: the effective ``runAsUser`` is 0 (which beats
        ``runAsNonRoot: true``: the kubelet refuses to start it), or it is unset and the effective
        ``runAsNonRoot`` is not true. An explicit non-zero ``runAsUser`` passes."""
        if self.run_as_user is not None:
            return self.run_as_user == 0
        return self.run_as_non_root is not True


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool_or_none(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def effective_security_context(pod_spec: Obj, container: Obj) -> EffectiveSecurityContext:
    """Resolve one container's effective security context from its own and its pod's settings."""
    pod_sc: Obj = pod_spec.get("securityContext") or {}
    sc: Obj = container.get("securityContext") or {}
    user = sc.get("runAsUser")
    non_root = sc.get("runAsNonRoot")
    group = sc.get("runAsGroup")
    seccomp = sc.get("seccompProfile")
    caps: Obj = sc.get("capabilities") or {}
    add, drop = caps.get("add"), caps.get("drop")
    key = (
        _int_or_none(pod_sc.get("runAsUser") if user is None else user),
        _bool_or_none(pod_sc.get("runAsNonRoot") if non_root is None else non_root),
        _int_or_none(pod_sc.get("runAsGroup") if group is None else group),
        _seccomp_type(pod_sc.get("seccompProfile") if seccomp is None else seccomp),
        _bool_or_none(sc.get("privileged")),
        _bool_or_none(sc.get("allowPrivilegeEscalation")),
        _bool_or_none(sc.get("readOnlyRootFilesystem")),
        normalise_capabilities(add) if add else (),
        normalise_capabilities(drop) if drop else (),
    )
    # Most containers of a cluster share one of a few settings: one (immutable) object each.
    found = _CONTEXTS.get(key)
    if found is None:
        if len(_CONTEXTS) >= 4096:
            _CONTEXTS.clear()
        found = _CONTEXTS[key] = EffectiveSecurityContext(*key)
    return found


_CONTEXTS: dict[tuple[Any, ...], EffectiveSecurityContext] = {}


def _seccomp_type(value: object) -> str | None:
    return str(value.get("type")) if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Container:
    """One container of a workload, with where it sits and its effective security context."""

    name: str
    kind: ContainerKind
    spec: Obj
    security: EffectiveSecurityContext
    path: str = ""  # e.g. "spec.template.spec.containers[0]", for messages

    @property
    def image(self) -> str:
        image = self.spec.get("image")
        return image if type(image) is str else str(image or "")


@dataclass(frozen=True, slots=True)
class Workload:
    """Something that runs pods: a controller (with its pod template) or a bare Pod.

    Pods owned by a controller in the inventory are folded into it; the ephemeral containers of
    such pods (``kubectl debug``) are added to the controller's containers so they are still seen.
    """

    obj: K8sObject
    pod_metadata: Obj
    pod_spec: Obj
    containers: tuple[Container, ...]

    @property
    def kind(self) -> str:
        return self.obj.kind

    @property
    def namespace(self) -> str:
        return self.obj.namespace or "default"

    @property
    def name(self) -> str:
        return self.obj.name

    @property
    def pod_labels(self) -> Mapping[str, str]:
        return self.pod_metadata.get("labels") or {}

    @property
    def service_account(self) -> str:
        spec = self.pod_spec
        return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")


def is_windows(pod_spec: Obj) -> bool:
    """True for pods that declare ``os.name: windows``."""
    os_field = pod_spec.get("os")
    return isinstance(os_field, dict) and os_field.get("name") == "windows"


def pod_template(obj: K8sObject) -> tuple[Obj, Obj] | None:
    """(pod metadata, pod spec) of a workload object, or None for other kinds."""
    keys = template_keys(obj.kind)
    if keys is None:
        return None
    template: Obj = obj.raw
    for key in keys:
        template = _mapping(template.get(key))
    return _mapping(template.get("metadata")), _mapping(template.get("spec"))


def _containers(
    pod_spec: Obj, base: str, extra_ephemeral: Sequence[tuple[str, Obj]] = ()
) -> tuple[Container, ...]:
    """The containers of a pod spec at ``base``, plus ephemeral ones of folded pods (path, spec)."""
    out: list[Container] = []
    seen_ephemeral: set[str] = set()
    for field_name, kind in CONTAINER_FIELDS:
        items = [
            (f"{base}.{field_name}[{i}]", spec)
            for i, spec in enumerate(pod_spec.get(field_name) or ())
        ]
        if kind == "ephemeralContainer":
            items += list(extra_ephemeral)
        for path, spec in items:
            if not isinstance(spec, dict):
                continue
            name = str(spec.get("name") or "")
            if kind == "ephemeralContainer":
                if name in seen_ephemeral:
                    continue
                seen_ephemeral.add(name)
            security = effective_security_context(pod_spec, spec)
            out.append(Container(name, kind, spec, security, path))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class KubeconfigUser:
    """How one kubeconfig user authenticates; never the credential itself.

    ``auth`` lists the mechanisms present: ``exec``, ``token``, ``token-file``, ``password``,
    ``client-key``, ``auth-provider``.
    """

    name: str
    auth: tuple[str, ...]
    exec_command: str | None = None
    exec_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Gap:
    """Something that could not be read; checks that needed it report ``unknown``."""

    source: str
    kind: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Unevaluated:
    """An object left out of the checks because part of it could not be read: a field of the
    wrong type, or a YAML value that could not be built. ``obj`` holds only its identity and
    origin; ``reason`` names the field. Checks that read its kind report it ``unknown``."""

    obj: K8sObject
    reason: str


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where an inventory came from: ``type`` is manifests, snapshot, live or demo."""

    type: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    """Everything the checks may look at for one cluster. Build it with :func:`build_inventory`."""

    cluster: str
    source: SourceInfo
    objects: Mapping[str, tuple[K8sObject, ...]]
    whole_cluster: bool
    captured_at: datetime | None = None
    kubeconfig_users: tuple[KubeconfigUser, ...] | None = None
    gaps: tuple[Gap, ...] = ()
    skipped_kinds: Mapping[str, int] = field(default_factory=dict)
    workloads: tuple[Workload, ...] = ()
    oci: OciState | None = None  # the OCI side, when it was read
    unevaluated: tuple[Unevaluated, ...] = ()
    _index: Mapping[tuple[str, str | None, str], K8sObject] = field(
        default_factory=dict, repr=False
    )

    def of_kind(self, *kinds: str) -> Iterator[K8sObject]:
        """Objects of the given kinds, in load order per kind."""
        for kind in kinds:
            yield from self.objects.get(kind, ())

    def get(self, kind: str, namespace: str | None, name: str) -> K8sObject | None:
        """Look one object up by identity."""
        return self._index.get((kind, namespace, name))

    def has_kind_data(self, kind: str) -> bool:
        """False when listing ``kind`` failed, so checks over it must report ``unknown``."""
        return not any(gap.kind == kind for gap in self.gaps)

    @property
    def object_count(self) -> int:
        return sum(len(items) for items in self.objects.values())


def _fold_target(
    obj: K8sObject, index: Mapping[tuple[str, str | None, str], K8sObject]
) -> K8sObject | None:
    """The controller in the inventory that reports for ``obj``, following owner chains."""
    target: K8sObject | None = None
    current = obj
    for _ in range(4):  # Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob
        owner = current.controller_owner()
        if owner is None:
            break
        found = index.get((owner[0], current.namespace, owner[1]))
        if found is None or found.kind not in WORKLOAD_KINDS:
            break
        target = current = found
    return target


def build_inventory(
    objects: Iterable[K8sObject],
    *,
    cluster: str,
    source: SourceInfo,
    whole_cluster: bool,
    captured_at: datetime | None = None,
    kubeconfig_users: Sequence[KubeconfigUser] | None = None,
    gaps: Sequence[Gap] = (),
    skipped_kinds: Mapping[str, int] | None = None,
    oci: OciState | None = None,
    unevaluated: Sequence[Unevaluated] = (),
) -> Inventory:
    """Group objects by kind, index them, and derive the workloads (folding owned pods)."""
    by_kind: dict[str, list[K8sObject]] = {}
    index: dict[tuple[str, str | None, str], K8sObject] = {}
    for obj in objects:
        key = (obj.kind, obj.namespace, obj.name)
        if key in index:  # the same object twice (e.g. two manifests): the last one wins
            by_kind[obj.kind] = [o for o in by_kind[obj.kind] if o is not index[key]]
        index[key] = obj
        by_kind.setdefault(obj.kind, []).append(obj)

    extra_ephemeral: dict[int, list[tuple[str, Obj]]] = {}
    folded: set[int] = set()
    for kind in WORKLOAD_KINDS:
        for obj in by_kind.get(kind, ()):
            target = _fold_target(obj, index)
            if target is None:
                continue
            folded.add(id(obj))
            if obj.kind == "Pod":
                ephemeral = obj.spec.get("ephemeralContainers") or ()
                extra_ephemeral.setdefault(id(target), []).extend(
                    (f"Pod {obj.name} spec.ephemeralContainers[{i}]", spec)
                    for i, spec in enumerate(ephemeral)
                )

    workloads: list[Workload] = []
    for kind in WORKLOAD_KINDS:
        for obj in by_kind.get(kind, ()):
            if id(obj) in folded:
                continue
            template = pod_template(obj)
            if template is None:
                continue
            meta, spec = template
            base = pod_spec_dotted(obj.kind)
            containers = _containers(spec, base, extra_ephemeral.get(id(obj), ()))
            workloads.append(Workload(obj, meta, spec, containers))

    return Inventory(
        cluster=cluster,
        source=source,
        objects={kind: tuple(items) for kind, items in by_kind.items()},
        whole_cluster=whole_cluster,
        captured_at=captured_at,
        kubeconfig_users=tuple(kubeconfig_users) if kubeconfig_users is not None else None,
        gaps=tuple(gaps),
        skipped_kinds=dict(skipped_kinds or {}),
        workloads=tuple(workloads),
        oci=oci,
        unevaluated=tuple(unevaluated),
        _index=index,
    )
