"""``add-security-context``: harden every container of a workload's pod template in one patch.

Each container (``containers`` and ``initContainers``) is judged on the same effective security
context the checks use (:func:`okeguard.inventory.model.effective_security_context`) and changed
only where a check fails:

* ``k8s.run-as-root``: ``runAsNonRoot: true``, and ``runAsUser`` (``remediation.run_as_user``)
  when the effective one is unset or 0. A container that passes keeps its user settings.
* ``k8s.privileged``: ``privileged: true`` becomes ``false``.
* ``k8s.privilege-escalation``: ``allowPrivilegeEscalation: false``.
* ``k8s.dangerous-capabilities``: the denied capabilities (the built-in list plus
  ``checks.denied_capabilities``) leave ``capabilities.add``; other added ones stay.
* ``k8s.capabilities-not-dropped``: ``ALL`` joins ``capabilities.drop``.
* ``k8s.writable-root-fs``: ``readOnlyRootFilesystem: true`` with an ``emptyDir`` at ``/tmp``
  where nothing is mounted there.
* the pod gets ``seccompProfile: RuntimeDefault`` unless it or every container sets one.

Variants: ``default`` (all of the above) and ``conservative``: the root filesystem stays
writable, and a container that probably needs root (:func:`image_traits.root_reason`) keeps its
user *and* the runtime's default capabilities (CHOWN, SETUID, NET_BIND_SERVICE…): only the
denied ones are dropped, since dropping ALL from a root process breaks exactly what it is root
for. The risk notes name every privilege removed, every finding that stays open
(``<check id> stays open for <container>``), and what okeguard leaves alone.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from okeguard.checks._common import container_label
from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Container, Inventory, Workload, is_windows
from okeguard.kube_shapes import (
    ROLLOUT_KINDS,
    TEMPLATE_CONTAINER_FIELDS,
    denied_capabilities,
    normalise_capability,
    pod_spec_dotted,
    pod_spec_pointer,
    template_keys,
)
from okeguard.remediations.image_traits import covered, root_reason, writable_paths
from okeguard.remediations.patches import (
    Ops,
    append_item,
    newest_first,
    set_value,
    test_resource_version,
)
from okeguard.remediations.plan import Operation, Plan, PlanError
from okeguard.remediations.planners import planner

REMEDIATION = "add-security-context"
VARIANTS = ("default", "conservative")
TMP_VOLUME = "okeguard-tmp"


def find_workload(inventory: Inventory, finding: Finding) -> Workload:
    r = finding.resource
    for workload in inventory.workloads:
        if (workload.kind, workload.namespace, workload.name) == (r.kind, r.namespace, r.name):
            return workload
    raise PlanError(f"{r.display()} is not in the cluster's current state")


def stays_open(check_id: str, label: str) -> str:
    """The phrase every risk note uses for a finding the plan leaves open."""
    return f"{check_id} stays open for {label}"


@dataclass
class _Hardened:
    """One container's new securityContext and what the plan must say about it."""

    sc: dict[str, Any]
    risks: list[str] = field(default_factory=list)
    needs_tmp: bool = False


def _harden(container: Container, variant: str, denied: tuple[str, ...], uid: int) -> _Hardened:
    spec, eff, label = container.spec, container.security, container_label(container)
    out = _Hardened(copy.deepcopy(dict(spec.get("securityContext") or {})))
    sc, risks = out.sc, out.risks
    why_root = root_reason(spec)
    keep_root = eff.may_run_as_root and variant == "conservative" and why_root is not None
    if keep_root:
        risks.append(f"{label} stays root ({why_root}): {stays_open('k8s.run-as-root', label)}")
    elif eff.may_run_as_root:
        # may_run_as_root: the effective runAsUser is unset or 0, so a UID is always needed
        sc["runAsNonRoot"] = True
        sc["runAsUser"] = uid
        today = "runs as UID 0" if eff.run_as_user == 0 else "runs as its image's user"
        note = f"{label} {today} today; it will run as UID {uid}"
        if why_root:
            note += f", though it may need root ({why_root}): check its image, or use --variant conservative"
        risks.append(note)
    if eff.privileged is True:
        sc["privileged"] = False
        risks.append(
            f"{label}: privileged: true removed (it loses the node's devices and every capability "
            "it does not add itself)"
        )
    if eff.allow_privilege_escalation is not False:
        sc["allowPrivilegeEscalation"] = False
    _capabilities(sc, label, denied, keep_root, risks)
    if eff.read_only_root_filesystem is not True:
        if variant == "conservative":
            risks.append(stays_open("k8s.writable-root-fs", label) + " (conservative variant)")
        else:
            sc["readOnlyRootFilesystem"] = True
            mounts = {str(m.get("mountPath")) for m in spec.get("volumeMounts") or ()}
            out.needs_tmp = not covered("/tmp", mounts)
            unmounted = [p for p in writable_paths(spec) if not covered(p, mounts | {"/tmp"})]
            if unmounted:
                risks.append(
                    f"{label} may need a writable filesystem: its image {spec.get('image')} writes "
                    f"to {', '.join(unmounted)}, which become read-only; mount emptyDir volumes "
                    "there (an emptyDir hides what the image ships at that path), or use "
                    "--variant conservative"
                )
    return out


def _capabilities(
    sc: dict[str, Any], label: str, denied: tuple[str, ...], keep_root: bool, risks: list[str]
) -> None:
    caps = dict(sc.get("capabilities") or {})
    added = list(caps.get("add") or [])
    kept = [c for c in added if normalise_capability(c) not in denied]
    for cap in added:
        if normalise_capability(cap) in denied:
            risks.append(
                f"{label}: capability {normalise_capability(cap)} removed from capabilities.add "
                "(whatever in it needs that capability will fail)"
            )
    if kept != added:
        if kept:
            caps["add"] = kept
        else:
            caps.pop("add", None)
    drop = list(caps.get("drop") or [])
    dropped = {normalise_capability(c) for c in drop}
    if "ALL" not in dropped:
        if keep_root:
            more = [c for c in denied if c != "ALL" and c not in dropped]
            caps["drop"] = drop + more
            risks.append(
                f"{label} keeps the runtime's default capabilities (CHOWN, DAC_OVERRIDE, FOWNER, "
                "SETUID, SETGID, NET_BIND_SERVICE…) because it stays root; only the denied ones "
                f"are dropped: {stays_open('k8s.capabilities-not-dropped', label)}"
            )
        else:
            caps["drop"] = [*drop, "ALL"]
            if kept:
                shown = ", ".join(normalise_capability(c) for c in kept)
                risks.append(
                    f"{label} keeps {shown} in capabilities.add; a non-root user gets added "
                    "capabilities only through file capabilities on its binary"
                )
    if caps != (sc.get("capabilities") or {}):
        sc["capabilities"] = caps


def _refuse_unpatchable(workload: Workload) -> None:
    kind, where = workload.kind, f"{workload.kind} {workload.namespace}/{workload.name}"
    if kind in ("Pod", "Job") or template_keys(kind) is None:
        raise PlanError(
            f"{where}: a {kind}'s pod template cannot be changed in place; fix its manifest (or "
            "its controller) and re-create it"
        )
    if is_windows(workload.pod_spec):
        raise PlanError(
            f"{where} runs Windows pods (os.name: windows), where Kubernetes refuses these Linux "
            "security settings"
        )


@planner("add-security-context")
def plan_add_security_context(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan hardening the finding's workload (every container of its pod template)."""
    if variant not in VARIANTS:
        raise PlanError(
            f"unknown variant {variant!r} for {REMEDIATION}: use {' or '.join(VARIANTS)}"
        )
    workload = find_workload(inventory, finding)
    _refuse_unpatchable(workload)
    kind, base = workload.kind, pod_spec_pointer(workload.kind)
    denied = denied_capabilities(settings.denied_capabilities)
    spec = copy.deepcopy(dict(workload.pod_spec))
    new_spec = copy.deepcopy(spec)
    forward: Ops = test_resource_version(workload.obj.metadata.get("resourceVersion"))
    undo_groups: list[Ops] = []

    def change(ops: tuple[Ops, Ops]) -> None:
        forward.extend(ops[0])
        undo_groups.append(ops[1])

    risks: list[str] = []
    needs_tmp: list[tuple[str, int]] = []
    by_path = {c.path: c for c in workload.containers}
    for field_name in TEMPLATE_CONTAINER_FIELDS:
        for index, raw in enumerate(spec.get(field_name) or ()):
            container = by_path.get(f"{pod_spec_dotted(kind)}.{field_name}[{index}]")
            if container is None:
                continue  # not a container object: the API server would not have stored it
            hardened = _harden(container, variant, denied, settings.run_as_user)
            risks.extend(hardened.risks)
            old_sc = raw.get("securityContext") or {}
            if hardened.sc != old_sc:
                path = f"{base}/{field_name}/{index}/securityContext"
                change(set_value(path, "securityContext" in raw, old_sc, hardened.sc))
                new_spec[field_name][index]["securityContext"] = hardened.sc
            if hardened.needs_tmp:
                needs_tmp.append((field_name, index))
    _mount_tmp(workload, spec, new_spec, base, needs_tmp, change)
    _seccomp(spec, new_spec, base, change, risks)
    risks.extend(_left_alone(workload))
    if not undo_groups:
        left = "; ".join(r for r in risks if "stays open" in r)
        raise PlanError(
            f"{kind} {workload.namespace}/{workload.name}: nothing to change with the "
            f"{variant} variant" + (f" ({left})" if left else "")
        )
    rollout = kind in ROLLOUT_KINDS
    if not rollout:
        risks.append(f"a {kind} is not rolled out: the change applies to the pods it creates next")
    op = Operation(
        action="k8s.patch",
        target={"kind": kind, "namespace": workload.namespace, "name": workload.name},
        params={"patch": forward, "rollout": rollout},
        undo={"patch": newest_first(undo_groups)},
        description=f"harden the pod template of {kind} {workload.namespace}/{workload.name}",
    )
    return Plan.of(
        finding,
        REMEDIATION,
        (op,),
        _diff(kind, workload, spec, new_spec),
        risks=risks,
        variant=variant,
        variants=VARIANTS,
        verify={"rollout": rollout},
    )


def _mount_tmp(
    workload: Workload,
    spec: dict[str, Any],
    new_spec: dict[str, Any],
    base: str,
    needs_tmp: list[tuple[str, int]],
    change: Any,
) -> None:
    """One ``emptyDir`` volume, mounted at ``/tmp`` in each container that needs it."""
    if not needs_tmp:
        return
    if any(v.get("name") == TMP_VOLUME for v in spec.get("volumes") or ()):
        raise PlanError(f"a volume named {TMP_VOLUME} already exists in {workload.name}")
    volume = {"name": TMP_VOLUME, "emptyDir": {}}
    change(append_item(f"{base}/volumes", spec.get("volumes"), volume))
    new_spec.setdefault("volumes", []).append(volume)
    for field_name, index in needs_tmp:
        container = spec[field_name][index]
        mount = {"name": TMP_VOLUME, "mountPath": "/tmp"}
        path = f"{base}/{field_name}/{index}/volumeMounts"
        change(append_item(path, container.get("volumeMounts"), mount))
        new_spec[field_name][index].setdefault("volumeMounts", []).append(mount)


def _seccomp(
    spec: dict[str, Any], new_spec: dict[str, Any], base: str, change: Any, risks: list[str]
) -> None:
    """``RuntimeDefault`` on the pod unless it or every container has a profile; an explicit
    ``Unconfined`` is someone's decision, named in the risks and left alone."""
    pod_sc = dict(spec.get("securityContext") or {})
    containers = [c for f in TEMPLATE_CONTAINER_FIELDS for c in spec.get(f) or ()]
    own = [(c.get("securityContext") or {}).get("seccompProfile") for c in containers]
    for where, profile in [("the pod", pod_sc.get("seccompProfile"))] + [
        (f"container '{c.get('name')}'", p) for c, p in zip(containers, own, strict=True)
    ]:
        if isinstance(profile, Mapping) and profile.get("type") == "Unconfined":
            risks.append(f"seccompProfile Unconfined on {where} stays (set by someone on purpose)")
    if pod_sc.get("seccompProfile") or all(own):
        return
    new_pod_sc = {**pod_sc, "seccompProfile": {"type": "RuntimeDefault"}}
    change(set_value(f"{base}/securityContext", "securityContext" in spec, pod_sc, new_pod_sc))
    new_spec["securityContext"] = new_pod_sc


def _left_alone(workload: Workload) -> list[str]:
    """What this remediation does not touch, said so nobody expects it fixed."""
    notes = []
    for c in workload.containers:
        if c.kind == "ephemeralContainer":
            notes.append(
                f"{container_label(c)} ({c.path}) cannot be changed through the pod template: "
                "its findings stay open until that pod is gone"
            )
    for volume in workload.pod_spec.get("volumes") or ():
        host = volume.get("hostPath") if isinstance(volume, dict) else None
        if isinstance(host, dict):
            notes.append(
                f"hostPath volume '{volume.get('name')}' ({host.get('path')}) stays: "
                + stays_open("k8s.host-path", "the workload")
            )
    shared = [k for k in ("hostNetwork", "hostPID", "hostIPC") if workload.pod_spec.get(k) is True]
    if shared:
        notes.append(
            f"{', '.join(f'{k}: true' for k in shared)} stays: "
            + stays_open("k8s.host-namespaces", "the workload")
        )
    return notes


def _diff(kind: str, workload: Workload, before: dict[str, Any], after: dict[str, Any]) -> str:
    label = f"{kind} {workload.namespace}/{workload.name} pod template spec"
    a = yaml.safe_dump(before, sort_keys=True).splitlines()
    b = yaml.safe_dump(after, sort_keys=True).splitlines()
    return "\n".join(
        difflib.unified_diff(a, b, f"{label} (live)", f"{label} (planned)", lineterm="", n=2)
    )
