"""Workload checks (practices P9, P10, P18): security contexts, host access, credentials in env.

Each container is judged on its *effective* security context
(:func:`okeguard.inventory.model.effective_security_context`), for every container kind.
"""

from __future__ import annotations

from collections.abc import Iterator

from okeguard.checks._common import WORKLOAD_READS, container_label, workload_hit
from okeguard.checks.model import Severity
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.sensitive import KEY_FORMAT_LABELS, MARKER_PREFIX, marker_label
from okeguard.kube_shapes import denied_capabilities

# Paths that are critical when mounted themselves or anything below them (after /var/run -> /run).
_CRITICAL_HOST_PREFIXES = ("/run/docker.sock", "/run/containerd", "/proc")


def _shown(value: bool | None) -> str:
    return "unset" if value is None else str(value).lower()


@check(
    id="k8s.run-as-root",
    title="Container may run as root",
    practice="P9",
    severity=Severity.HIGH,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def run_as_root(ctx: CheckContext) -> Iterator[Hit]:
    """The container may run as UID 0: its effective `runAsUser` is `0` (this beats
    `runAsNonRoot: true`, as the kubelet then refuses to start it), or its effective `runAsUser` is
    unset and its effective `runAsNonRoot` is not `true`. An explicit non-zero `runAsUser` passes."""
    for w, c in ctx.containers(linux_only=True):
        sc = c.security
        if not sc.may_run_as_root:
            continue
        if sc.run_as_user == 0:
            why = "effective securityContext.runAsUser is 0"
        else:
            why = f"runAsUser is unset and runAsNonRoot is {_shown(sc.run_as_non_root)}, so the image's user (often root) applies"
        yield workload_hit(w, f"{container_label(c)} may run as root: {why}.", c)


@check(
    id="k8s.privileged",
    title="Privileged container",
    practice="P9",
    severity=Severity.CRITICAL,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def privileged(ctx: CheckContext) -> Iterator[Hit]:
    """`securityContext.privileged` is `true`: the container has every capability and the host's devices."""
    for w, c in ctx.containers():
        if c.security.privileged is True:
            msg = (
                f"{container_label(c)} is privileged: {c.path}.securityContext.privileged is true."
            )
            yield workload_hit(w, msg, c)


@check(
    id="k8s.privilege-escalation",
    title="Privilege escalation allowed",
    practice="P9",
    severity=Severity.MEDIUM,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def privilege_escalation(ctx: CheckContext) -> Iterator[Hit]:
    """`allowPrivilegeEscalation` is not `false` (unset counts as allowed: setuid binaries can gain privileges)."""
    for w, c in ctx.containers(linux_only=True):
        value = c.security.allow_privilege_escalation
        if value is not False:
            msg = f"{container_label(c)} allows privilege escalation: {c.path}.securityContext.allowPrivilegeEscalation is {_shown(value)}."
            yield workload_hit(w, msg, c)


@check(
    id="k8s.dangerous-capabilities",
    title="Dangerous capabilities added",
    practice="P9",
    severity=Severity.HIGH,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def dangerous_capabilities(ctx: CheckContext) -> Iterator[Hit]:
    """The container adds `SYS_ADMIN`, `NET_ADMIN`, `SYS_PTRACE`, `SYS_MODULE`, `NET_RAW`,
    `DAC_READ_SEARCH` or `ALL`, or a capability in the configured `denied_capabilities`."""
    denied = set(denied_capabilities(ctx.config.checks.denied_capabilities))
    for w, c in ctx.containers():
        bad = [cap for cap in c.security.capabilities_add if cap in denied]
        if bad:
            msg = f"{container_label(c)} adds dangerous capabilities: {c.path}.securityContext.capabilities.add includes {', '.join(bad)}."
            yield workload_hit(w, msg, c)


@check(
    id="k8s.capabilities-not-dropped",
    title="Capabilities not dropped",
    practice="P9",
    severity=Severity.LOW,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def capabilities_not_dropped(ctx: CheckContext) -> Iterator[Hit]:
    """`capabilities.drop` does not contain `ALL`, so the runtime's default capabilities remain."""
    for w, c in ctx.containers(linux_only=True):
        if "ALL" not in c.security.capabilities_drop:
            dropped = ", ".join(c.security.capabilities_drop) or "nothing"
            msg = f"{container_label(c)} keeps the default capabilities: {c.path}.securityContext.capabilities.drop is {dropped}, not ALL."
            yield workload_hit(w, msg, c)


@check(
    id="k8s.host-namespaces",
    title="Host namespaces shared",
    practice="P9",
    severity=Severity.HIGH,
    reads=WORKLOAD_READS,
)
def host_namespaces(ctx: CheckContext) -> Iterator[Hit]:
    """`hostNetwork`, `hostPID` or `hostIPC` is `true`: the pod shares the node's namespaces."""
    for w in ctx.workloads():
        shared = [
            key for key in ("hostNetwork", "hostPID", "hostIPC") if w.pod_spec.get(key) is True
        ]
        if shared:
            fields = ", ".join(f"{key}: true" for key in shared)
            yield workload_hit(w, f"The pod shares the node's namespaces: {fields}.")


def _node_path(path: str) -> str:
    """Normalise a host path: no trailing slash, and ``/var/run`` as its target ``/run``."""
    normalised = "/" + path.strip().strip("/")
    if normalised == "/var/run" or normalised.startswith("/var/run/"):
        normalised = normalised[len("/var") :]
    return normalised


def host_path_severity(path: str) -> Severity:
    """Critical for the node's root, container-runtime sockets and /proc (or below them)."""
    node_path = _node_path(path)
    if node_path == "/" or any(
        node_path == prefix or node_path.startswith(prefix + "/")
        for prefix in _CRITICAL_HOST_PREFIXES
    ):
        return Severity.CRITICAL
    return Severity.HIGH


@check(
    id="k8s.host-path",
    title="hostPath volume",
    practice=("P9", "P10"),
    severity=Severity.HIGH,
    reads=WORKLOAD_READS,
    severity_note="critical when the path is `/`, `/var/run/docker.sock`, `/run/containerd` or `/proc` (or below them; `/var/run` is `/run`)",
)
def host_path(ctx: CheckContext) -> Iterator[Hit]:
    """A `hostPath` volume exposes the node's filesystem to the pod. One finding per workload
    names every such volume, at the severity of the worst path."""
    for w in ctx.workloads():
        mounts = []
        for volume in w.pod_spec.get("volumes") or ():
            host = volume.get("hostPath") if isinstance(volume, dict) else None
            if isinstance(host, dict):
                mounts.append((str(volume.get("name")), str(host.get("path") or "")))
        if mounts:
            severity = max((host_path_severity(path) for _, path in mounts), key=lambda s: s.rank)
            listed = ", ".join(f"'{name}' mounts {path!r}" for name, path in mounts)
            msg = f"The pod mounts the node's filesystem (volumes[].hostPath.path): {listed}."
            yield workload_hit(w, msg, severity=severity)


@check(
    id="k8s.writable-root-fs",
    title="Writable root filesystem",
    practice="P10",
    severity=Severity.MEDIUM,
    remediation="add-security-context",
    reads=WORKLOAD_READS,
)
def writable_root_fs(ctx: CheckContext) -> Iterator[Hit]:
    """`readOnlyRootFilesystem` is not `true`, so the container's filesystem can be changed at run time."""
    for w, c in ctx.containers():
        value = c.security.read_only_root_filesystem
        if value is not True:
            msg = f"{container_label(c)} has a writable root filesystem: {c.path}.securityContext.readOnlyRootFilesystem is {_shown(value)}."
            yield workload_hit(w, msg, c)


@check(
    id="k8s.credentials-in-env",
    title="Credentials in environment variables",
    practice="P18",
    severity=Severity.HIGH,
    reads=WORKLOAD_READS,
)
def credentials_in_env(ctx: CheckContext) -> Iterator[Hit]:
    """An env var whose name looks like a credential (`PASSWORD`, `SECRET`, `TOKEN`, `API_KEY`,
    `PRIVATE_KEY`, `ACCESS_KEY`, …) has a literal `value` instead of `valueFrom`; or a literal
    value matches a known key format (PEM private key, OCI/AWS key ids). The value is never shown.

    Loading already judged every literal value (:mod:`okeguard.inventory.normalize`) and replaced
    the suspicious ones by markers, so the check reads the markers' labels."""
    for w, c in ctx.containers():
        problems = []
        for var in c.spec.get("env") or ():
            value = var.get("value") if isinstance(var, dict) else None
            if type(value) is not str or not value.startswith(MARKER_PREFIX):
                continue  # most values: not a marker, so no label (and no call to find none)
            label = marker_label(value)
            if label in KEY_FORMAT_LABELS:
                problems.append(f"{var.get('name')} holds a literal {label}")
            elif label == "credential":
                problems.append(f"{var.get('name')} is set with a literal value")
        if problems:
            msg = f"{container_label(c)} has credentials in {c.path}.env: {'; '.join(problems)} (use valueFrom.secretKeyRef)."
            yield workload_hit(w, msg, c)
