"""``add-security-context``: harden every container of a workload's pod template in one patch.

Per container: ``runAsNonRoot: true`` (with ``runAsUser`` set when the effective one is unset or
0), ``allowPrivilegeEscalation: false``, ``privileged: false``, ``capabilities.drop: [ALL]``
(the dangerous added capabilities removed, others kept), ``readOnlyRootFilesystem: true`` with an
``emptyDir`` at ``/tmp`` when nothing is mounted there, and ``seccompProfile: RuntimeDefault``
(on the pod, unless a container sets its own).

Two variants: ``default`` (all of the above) and ``conservative`` (leaves the root filesystem
writable, and leaves the user alone for containers that probably need root). The plan's risk
notes say which containers look like they need root or a writable filesystem, and why.
"""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any

import yaml

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import CONTAINER_FIELDS, Inventory, Workload
from okeguard.remediations.patches import (
    Ops,
    append_item,
    newest_first,
    set_value,
    test_resource_version,
)
from okeguard.remediations.plan import Operation, Plan, PlanError

REMEDIATION = "add-security-context"
VARIANTS = ("default", "conservative")
DANGEROUS = frozenset(
    {"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "SYS_MODULE", "NET_RAW", "DAC_READ_SEARCH", "ALL"}
)
TMP_VOLUME = "okeguard-tmp"
TEMPLATE_PATHS = {"CronJob": "/spec/jobTemplate/spec/template", "Pod": None, "Job": None}
# Images that start as root or write to their filesystem unless configured otherwise.
_ROOT_IMAGES = re.compile(
    r"(^|/)(nginx|httpd|apache2?|haproxy|postgres|mysql|mariadb|mongo|redis|rabbitmq|"
    r"elasticsearch|jenkins|gitlab[-\w]*|docker|dind|busybox|alpine|ubuntu|debian|centos)(:|@|$)"
)
_WRITER_IMAGES = re.compile(
    r"(^|/)(nginx|httpd|postgres|mysql|mariadb|mongo|redis|rabbitmq|elasticsearch|jenkins|"
    r"wordpress|php[-\w]*|tomcat|grafana|prometheus)(:|@|$)"
)


def find_workload(inventory: Inventory, finding: Finding) -> Workload:
    r = finding.resource
    for workload in inventory.workloads:
        if (workload.kind, workload.namespace, workload.name) == (r.kind, r.namespace, r.name):
            return workload
    raise PlanError(f"{r.display()} is not in the cluster's current state")


def _needs_root(spec: dict[str, Any]) -> str | None:
    image = str(spec.get("image") or "")
    if "unprivileged" not in image and _ROOT_IMAGES.search(image.split("@")[0]):
        return f"its image {image} usually starts as root"
    for port in spec.get("ports") or ():
        number = port.get("containerPort")
        if isinstance(number, int) and number < 1024:
            return f"it listens on port {number}, which needs root or NET_BIND_SERVICE"
    command = " ".join(str(x) for x in (spec.get("command") or []) + (spec.get("args") or []))
    if re.search(r"\b(chown|chmod|apt-get|apk add|yum|dnf|su|sudo|useradd)\b", command):
        return "its command changes ownership or installs packages"
    return None


def _needs_writable_fs(spec: dict[str, Any]) -> str | None:
    image = str(spec.get("image") or "")
    if _WRITER_IMAGES.search(image.split("@")[0]):
        mounted = {m.get("mountPath") for m in spec.get("volumeMounts") or ()}
        return f"its image {image} writes outside /tmp (mounted: {', '.join(sorted(p for p in mounted if p)) or 'nothing'})"
    return None


def _hardened(
    sc: dict[str, Any], effective_user: int | None, keep_user: bool, read_only: bool, uid: int
) -> dict[str, Any]:
    new = copy.deepcopy(sc)
    if not keep_user:
        new["runAsNonRoot"] = True
        if effective_user is None or effective_user == 0:
            new["runAsUser"] = uid
    new["allowPrivilegeEscalation"] = False
    new["privileged"] = False
    caps = dict(new.get("capabilities") or {})
    added = [
        c for c in caps.get("add") or () if str(c).upper().removeprefix("CAP_") not in DANGEROUS
    ]
    if added:
        caps["add"] = added
    else:
        caps.pop("add", None)
    caps["drop"] = ["ALL"]
    new["capabilities"] = caps
    if read_only:
        new["readOnlyRootFilesystem"] = True
    return new


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def plan_add_security_context(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan hardening the finding's workload (every container of its pod template)."""
    if variant not in VARIANTS:
        raise PlanError(
            f"unknown variant {variant!r} for {REMEDIATION}: use {' or '.join(VARIANTS)}"
        )
    workload = find_workload(inventory, finding)
    kind = workload.kind
    if kind in ("Pod", "Job"):
        raise PlanError(
            f"{kind} {workload.namespace}/{workload.name}: a {kind}'s pod template cannot be "
            "changed in place; fix its manifest (or its controller) and re-create it"
        )
    base = TEMPLATE_PATHS.get(kind, "/spec/template")
    meta = workload.obj.metadata
    rv = meta.get("resourceVersion")
    spec = copy.deepcopy(dict(workload.pod_spec))
    forward: Ops = test_resource_version(rv)
    undo_groups: list[Ops] = []

    def change(ops: tuple[Ops, Ops]) -> None:
        forward.extend(ops[0])
        undo_groups.append(ops[1])

    risks: list[str] = []
    pod_sc = dict(spec.get("securityContext") or {})
    read_only = variant == "default"
    tmp_mount_needed: list[tuple[str, int, dict[str, Any]]] = []
    new_spec = copy.deepcopy(spec)
    for field, _ in CONTAINER_FIELDS:
        if field == "ephemeralContainers":
            continue  # not part of a template
        for index, container in enumerate(spec.get(field) or ()):
            match = next(
                (
                    c
                    for c in workload.containers
                    if c.name == container.get("name") and c.path.endswith(f"{field}[{index}]")
                ),
                None,
            )
            effective_user = match.security.run_as_user if match else None
            name = container.get("name")
            root_reason = _needs_root(container)
            keep_user = variant == "conservative" and root_reason is not None
            if root_reason:
                risks.append(
                    f"container {name} may need root ({root_reason}): check that its image runs as "
                    f"UID {settings.run_as_user}"
                    + ("" if keep_user else ", or use --variant conservative")
                )
            if effective_user == 0 and not keep_user:
                risks.append(
                    f"container {name} runs as UID 0 today; it will run as UID {settings.run_as_user}"
                )
            writer_reason = _needs_writable_fs(container) if read_only else None
            if writer_reason:
                risks.append(
                    f"container {name} may need a writable filesystem ({writer_reason}): mount "
                    "emptyDir volumes where it writes, or use --variant conservative"
                )
            old_sc = dict(container.get("securityContext") or {})
            new_sc = _hardened(old_sc, effective_user, keep_user, read_only, settings.run_as_user)
            new_spec[field][index]["securityContext"] = new_sc
            if new_sc != old_sc:
                path = f"{base}/spec/{field}/{index}/securityContext"
                change(set_value(path, "securityContext" in container, old_sc, new_sc))
            mounts = {m.get("mountPath") for m in container.get("volumeMounts") or ()}
            if read_only and "/tmp" not in mounts:
                tmp_mount_needed.append((field, index, container))
    if tmp_mount_needed:
        volumes = list(spec.get("volumes") or [])
        if any(v.get("name") == TMP_VOLUME for v in volumes):
            raise PlanError(f"a volume named {TMP_VOLUME} already exists in {workload.name}")
        vol = {"name": TMP_VOLUME, "emptyDir": {}}
        change(append_item(f"{base}/spec/volumes", spec.get("volumes"), vol))
        new_spec.setdefault("volumes", []).append(vol)
        for field, index, container in tmp_mount_needed:
            mount = {"name": TMP_VOLUME, "mountPath": "/tmp"}
            mpath = f"{base}/spec/{field}/{index}/volumeMounts"
            change(append_item(mpath, container.get("volumeMounts"), mount))
            new_spec[field][index].setdefault("volumeMounts", []).append(mount)
    if not pod_sc.get("seccompProfile") and not all(
        (c.get("securityContext") or {}).get("seccompProfile")
        for f, _ in CONTAINER_FIELDS
        if f != "ephemeralContainers"
        for c in spec.get(f) or ()
    ):
        new_pod_sc = {**pod_sc, "seccompProfile": {"type": "RuntimeDefault"}}
        path = f"{base}/spec/securityContext"
        change(set_value(path, "securityContext" in spec, pod_sc, new_pod_sc))
        new_spec["securityContext"] = new_pod_sc
    if not undo_groups:
        raise PlanError(f"{kind} {workload.namespace}/{workload.name} is already hardened")
    undo = newest_first(undo_groups)
    diff = _diff(kind, workload, spec, new_spec)
    target = {"kind": kind, "namespace": workload.namespace, "name": workload.name}
    rollout = kind in ("Deployment", "StatefulSet", "DaemonSet")
    if not rollout:
        risks.append(f"a {kind} is not rolled out: the change applies to the pods it creates next")
    op = Operation(
        action="k8s.patch",
        target=target,
        params={"patch": forward, "rollout": rollout},
        undo={"patch": undo},
        description=f"harden the pod template of {kind} {workload.namespace}/{workload.name}",
    )
    return Plan.of(
        finding,
        REMEDIATION,
        (op,),
        diff,
        risks=risks,
        variant=variant,
        variants=VARIANTS,
        verify={"rollout": rollout},
    )


def _diff(kind: str, workload: Workload, before: dict[str, Any], after: dict[str, Any]) -> str:
    label = f"{kind} {workload.namespace}/{workload.name} pod template spec"
    a = yaml.safe_dump(before, sort_keys=True).splitlines()
    b = yaml.safe_dump(after, sort_keys=True).splitlines()
    return "\n".join(
        difflib.unified_diff(a, b, f"{label} (live)", f"{label} (planned)", lineterm="", n=2)
    )
