"""``rotate-secret`` for a legacy service-account token Secret, and finding a Secret's consumers.

The plan: ``k8s.create-token-secret`` (same ServiceAccount, name ``<old>-rotated-<suffix>``), a
``k8s.patch`` per consumer (and on the ServiceAccount's ``secrets`` list) guarded by ``test`` s of
its resourceVersion and of every name it replaces, ``k8s.await-consumers``, and last the old
Secret's ``k8s.delete`` with uid and resourceVersion preconditions (irreversible).
"""

from __future__ import annotations

import hashlib
from typing import Any

from okeguard.checks.model import Finding
from okeguard.inventory.model import Inventory, K8sObject, Workload
from okeguard.kube_shapes import ROLLOUT_KINDS as ROLLOUT_KINDS  # re-exported to secret_rotation
from okeguard.kube_shapes import TEMPLATE_CONTAINER_FIELDS, pod_spec_pointer
from okeguard.remediations.patches import (
    Ops,
    newest_first,
    replace_value,
    test_resource_version,
)
from okeguard.remediations.plan import Operation, Plan, PlanError

REMEDIATION = "rotate-secret"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"


def ref(obj: K8sObject | Workload) -> dict[str, Any]:
    return {"kind": obj.kind, "namespace": obj.namespace, "name": obj.name}


def secret_references(workload: Workload, secret: str) -> list[str]:
    """JSON Pointer paths (in the workload object) whose value is the Secret name ``secret``:
    env ``secretKeyRef``, ``envFrom.secretRef``, ``volumes[].secret``, projected sources."""
    base = pod_spec_pointer(workload.kind)
    spec = workload.pod_spec
    paths: list[str] = []
    for field in reversed(TEMPLATE_CONTAINER_FIELDS):  # init containers first: they start first
        for ci, container in enumerate(spec.get(field) or ()):
            here = f"{base}/{field}/{ci}"
            for ei, env in enumerate(container.get("env") or ()):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name") == secret:
                    paths.append(f"{here}/env/{ei}/valueFrom/secretKeyRef/name")
            for ei, source in enumerate(container.get("envFrom") or ()):
                if (source.get("secretRef") or {}).get("name") == secret:
                    paths.append(f"{here}/envFrom/{ei}/secretRef/name")
    for vi, volume in enumerate(spec.get("volumes") or ()):
        if (volume.get("secret") or {}).get("secretName") == secret:
            paths.append(f"{base}/volumes/{vi}/secret/secretName")
        for si, source in enumerate((volume.get("projected") or {}).get("sources") or ()):
            if (source.get("secret") or {}).get("name") == secret:
                paths.append(f"{base}/volumes/{vi}/projected/sources/{si}/secret/name")
    return paths


def consumers(inventory: Inventory, namespace: str | None, secret: str) -> list[Workload]:
    """The workloads of ``namespace`` that read the Secret ``secret``, in a stable order."""
    found = [
        w
        for w in inventory.workloads
        if w.namespace == (namespace or "default") and secret_references(w, secret)
    ]
    return sorted(found, key=lambda w: (w.kind, w.name))


def rotated_name(secret: K8sObject) -> str:
    """``<old>-rotated-<suffix>``: the suffix comes from the old Secret's identity, not the plan."""
    seed = str(secret.metadata.get("uid") or f"{secret.namespace}/{secret.name}")
    return f"{secret.name[:230]}-rotated-{hashlib.sha256(seed.encode()).hexdigest()[:6]}"


def _repoint_patch(workload: Workload, old: str, new: str) -> tuple[list[Any], list[Any]]:
    rv = workload.obj.metadata.get("resourceVersion")
    forward: Ops = test_resource_version(rv)
    undo_groups: list[Ops] = []
    for path in secret_references(workload, old):
        change, revert = replace_value(path, old, new)
        forward += change
        undo_groups.append(revert)
    undo = newest_first(undo_groups)
    return forward, undo


def plan_legacy_token(finding: Finding, inventory: Inventory, old: K8sObject) -> Plan:
    account = old.annotations.get(SA_NAME_ANNOTATION)
    if not account:
        raise PlanError(
            f"Secret {old.namespace}/{old.name} names no ServiceAccount ({SA_NAME_ANNOTATION})"
        )
    uid, rv = old.metadata.get("uid"), old.metadata.get("resourceVersion")
    if not uid or not rv:
        raise PlanError(
            f"Secret {old.namespace}/{old.name}: its uid and resourceVersion are unknown (read "
            "from manifests?); the old token can only be deleted with both as preconditions"
        )
    new = rotated_name(old)
    if inventory.get("Secret", old.namespace, new) is not None:
        raise PlanError(
            f"Secret {old.namespace}/{new} already exists: delete it or finish that rotation"
        )
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SA_TOKEN_TYPE,
        "metadata": {
            "name": new,
            "namespace": old.namespace,
            "annotations": {SA_NAME_ANNOTATION: account, "okeguard.io/replaces": old.name},
            "labels": {"app.kubernetes.io/managed-by": "okeguard"},
        },
    }
    new_ref = {"kind": "Secret", "namespace": old.namespace, "name": new}
    ops = [
        Operation(
            action="k8s.create-token-secret",
            target=new_ref,
            params={"body": body},
            undo={"delete": True},
            description=f"create token Secret {old.namespace}/{new} for ServiceAccount {account}",
        )
    ]
    risks = [
        "anything outside the cluster that uses the old token (CI, kubeconfigs) stops working "
        "when it is deleted; give it the new token, or better a short-lived projected token",
        f"the old Secret {old.name} is deleted last and cannot be restored by a rollback",
    ]
    users = []
    for w in consumers(inventory, old.namespace, old.name):
        if w.kind == "Pod":
            raise PlanError(
                f"Pod {w.namespace}/{w.name} mounts {old.name} and cannot be repointed in place: "
                "re-create it (or its controller) with the new Secret name first"
            )
        if w.kind == "Job":  # a Job's pod template is immutable
            risks.append(
                f"Job {w.namespace}/{w.name} names {old.name} and cannot be changed: its pods "
                "fail to start once the old Secret is gone; delete the Job if it is finished"
            )
            continue
        users.append(w)
        forward, undo = _repoint_patch(w, old.name, new)
        ops.append(
            Operation(
                action="k8s.patch",
                target=ref(w),
                params={"patch": forward, "rollout": w.kind in ROLLOUT_KINDS},
                undo={"patch": undo},
                description=f"point {w.kind} {w.namespace}/{w.name} at Secret {new}",
            )
        )
        if w.kind not in ROLLOUT_KINDS:
            risks.append(f"{w.kind} {w.namespace}/{w.name} uses the new token from its next run")
    sa = inventory.get("ServiceAccount", old.namespace, account)
    listed = [
        i
        for i, s in enumerate((sa.raw.get("secrets") or []) if sa else [])
        if s.get("name") == old.name
    ]
    if sa is not None and listed:
        path = f"/secrets/{listed[0]}/name"
        change, revert = replace_value(path, old.name, new)
        ops.append(
            Operation(
                action="k8s.patch",
                target=ref(sa),
                params={
                    "patch": test_resource_version(sa.metadata.get("resourceVersion")) + change,
                    "rollout": False,
                },
                undo={"patch": revert},
                description=f"list Secret {new} on ServiceAccount {account} instead of {old.name}",
            )
        )
    ops.append(
        Operation(
            action="k8s.await-consumers",
            target=new_ref,
            params={"old": old.name, "workloads": [ref(w) for w in users]},
            description="wait for the new token and the consumers' rollouts before deleting",
        )
    )
    ops.append(
        Operation(
            action="k8s.delete",
            target=ref(old),
            params={"uid": uid, "resourceVersion": rv},
            reversible=False,
            description=f"delete the legacy token Secret {old.namespace}/{old.name}",
        )
    )
    diff = "\n".join(
        [
            f"+ Secret {old.namespace}/{new} (type {SA_TOKEN_TYPE}, ServiceAccount {account})",
            *(f"~ {w.kind} {w.namespace}/{w.name}: {old.name} -> {new}" for w in users),
            f"- Secret {old.namespace}/{old.name}",
        ]
    )
    return Plan.of(
        finding,
        REMEDIATION,
        ops,
        diff,
        risks=risks,
        verify={"token": new, "rollouts": sum(w.kind in ROLLOUT_KINDS for w in users)},
    )
