"""``move-rules-to-nsg`` for load balancers: the NSG mirroring the load-balancer subnet's
security lists is attached to every LoadBalancer Service there, by annotation, before any rule
leaves those lists.

``k8s.attach-lb-nsg`` sets ``oci.oraclecloud.com/security-rule-management-mode: NSG`` and adds
the plan's load-balancer NSG to ``oci.oraclecloud.com/oci-network-security-groups`` (the cloud
controller manager then attaches it to the load balancer). The NSG's OCID is known only once
the plan has created it, so the JSON Patch is built when the step runs, guarded by the
Service's ``resourceVersion`` read when planning and by ``test`` s of the values it replaces;
its undo restores both annotations only while they still hold what the step set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okeguard.checks.oke_services import RULE_MODE, rule_management_mode
from okeguard.inventory.model import K8sObject
from okeguard.inventory.oci_model import OkeCluster
from okeguard.remediations.engine import Backends, StepFailed, VerifyFailed, action
from okeguard.remediations.kube_actions import patch_applies
from okeguard.remediations.oci_actions import find_nsg
from okeguard.remediations.plan import Operation, PlanError

LB_NSGS = "oci.oraclecloud.com/oci-network-security-groups"
# Where a Service puts its load balancer when not in the cluster's load-balancer subnets.
SUBNET_ANNOTATIONS = (
    "service.beta.kubernetes.io/oci-load-balancer-subnet1",
    "service.beta.kubernetes.io/oci-load-balancer-subnet2",
    "oci-network-load-balancer.oraclecloud.com/subnet",
)
MAX_NSGS_PER_LB = 5


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _nsg_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def in_lb_subnets(service: K8sObject, cluster: OkeCluster) -> bool:
    """Whether the Service's load balancer sits in the cluster's load-balancer subnets: no
    subnet annotation (the CCM then uses them), or every annotated subnet is one of them."""
    named = [str(service.annotations[k]) for k in SUBNET_ANNOTATIONS if service.annotations.get(k)]
    return all(subnet in cluster.lb_subnet_ids for subnet in named)


def attach_lb_op(service: K8sObject, nsg_ref: Mapping[str, Any]) -> Operation:
    """``k8s.attach-lb-nsg`` for one Service (see the module doc)."""
    annotations = service.annotations
    existing = _nsg_list(annotations.get(LB_NSGS))
    if len(existing) >= MAX_NSGS_PER_LB:
        raise PlanError(
            f"Service {service.namespace}/{service.name} already names 5 NSGs in {LB_NSGS}: "
            "no room for the load-balancer NSG"
        )
    old = {"mode": annotations.get(RULE_MODE), "nsgs": annotations.get(LB_NSGS)}
    return Operation(
        action="k8s.attach-lb-nsg",
        target={"kind": "Service", "namespace": service.namespace, "name": service.name},
        params={
            "nsg": dict(nsg_ref),
            "resourceVersion": service.metadata.get("resourceVersion"),
            "has_annotations": service.metadata.get("annotations") is not None,
            **old,
        },
        undo=dict(old),
        description=f"attach NSG {nsg_ref['display_name']} to the load balancer of Service "
        f"{service.namespace}/{service.name} ({RULE_MODE}: NSG)",
    )


def diff_line(service: K8sObject, nsg_name: str) -> str:
    mode = rule_management_mode(service)[0]
    nsgs = _nsg_list(service.annotations.get(LB_NSGS))
    return (
        f"~ Service {service.namespace}/{service.name}: mode {mode!r} -> 'NSG'; "
        f"{LB_NSGS}: {nsgs} + [{nsg_name}]"
    )


# -- the action ---------------------------------------------------------------------------------


def _kube(backends: Backends) -> Any:
    if backends.kube is None:
        raise StepFailed("this plan writes to Kubernetes, but no cluster connection was given")
    return backends.kube


def _nsg_id(backends: Backends, op: Operation) -> str:
    ref = op.params["nsg"]
    nsg_id = find_nsg(backends, ref)
    if nsg_id is None:
        raise StepFailed(f"NSG {ref['display_name']} (step {int(ref['step']) + 1}) is gone")
    return nsg_id


def _service(backends: Backends, op: Operation) -> dict[str, Any] | None:
    t = op.target
    doc: dict[str, Any] | None = _kube(backends).get("Service", t["namespace"], t["name"])
    return doc


def _set(path: str, old: str | None, new: str) -> list[dict[str, Any]]:
    if old is None:
        return [{"op": "add", "path": path, "value": new}]
    return [
        {"op": "test", "path": path, "value": old},
        {"op": "replace", "path": path, "value": new},
    ]


def forward_patch(op: Operation, nsg_id: str) -> list[dict[str, Any]]:
    """The JSON Patch attaching ``nsg_id``: guarded by the planned resourceVersion and values."""
    p = op.params
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": p["resourceVersion"]}
    ]
    if not p["has_annotations"]:
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    nsgs = ",".join([*_nsg_list(p["nsgs"]), nsg_id])
    patch += _set(f"/metadata/annotations/{_escape(RULE_MODE)}", p["mode"], "NSG")
    patch += _set(f"/metadata/annotations/{_escape(LB_NSGS)}", p["nsgs"], nsgs)
    return patch


def undo_patch(op: Operation, nsg_id: str) -> list[dict[str, Any]]:
    """The inverse of :func:`forward_patch`, guarded by ``test`` s of what it set."""
    out: list[dict[str, Any]] = []
    nsgs = ",".join([*_nsg_list(op.undo["nsgs"]), nsg_id])
    for key, set_to, old in ((RULE_MODE, "NSG", op.undo["mode"]), (LB_NSGS, nsgs, op.undo["nsgs"])):
        path = f"/metadata/annotations/{_escape(key)}"
        out.append({"op": "test", "path": path, "value": set_to})
        if old is None:
            out.append({"op": "remove", "path": path})
        else:
            out.append({"op": "replace", "path": path, "value": old})
    return out


def attached(doc: Mapping[str, Any] | None, nsg_id: str) -> bool:
    """Whether the Service is in NSG mode with ``nsg_id`` among its load balancer's NSGs."""
    annotations = ((doc or {}).get("metadata") or {}).get("annotations") or {}
    mode = str(annotations.get(RULE_MODE) or "").strip().upper()
    return mode == "NSG" and nsg_id in _nsg_list(annotations.get(LB_NSGS))


def service_problems(backends: Backends, services: list[Mapping[str, Any]]) -> list[str]:
    """The planned Services that do not carry their load-balancer NSG (verify step)."""
    problems = []
    for entry in services:
        nsg_id = find_nsg(backends, entry["nsg"])
        doc = _kube(backends).get("Service", entry["namespace"], entry["name"])
        if nsg_id is None or not attached(doc, nsg_id):
            problems.append(
                f"Service {entry['namespace']}/{entry['name']} does not carry NSG "
                f"{entry['nsg']['display_name']} in NSG mode"
            )
    return problems


@action("k8s.attach-lb-nsg")
class AttachLbNsgAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        t = op.target
        patch = forward_patch(op, _nsg_id(backends, op))
        _kube(backends).patch("Service", t["namespace"], t["name"], patch, dry_run=True)

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        t = op.target
        nsg_id = _nsg_id(backends, op)
        doc = _kube(backends).patch("Service", t["namespace"], t["name"], forward_patch(op, nsg_id))
        return {"nsg_id": nsg_id, "resourceVersion": doc["metadata"].get("resourceVersion")}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        nsg_id = record.get("nsg_id") or _nsg_id(backends, op)
        if not attached(_service(backends, op), nsg_id):
            raise VerifyFailed(
                f"Service {op.target['namespace']}/{op.target['name']} does not carry NSG "
                f"{nsg_id} in NSG mode"
            )

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        nsg_id = (record or {}).get("nsg_id") or find_nsg(backends, op.params["nsg"])
        doc = _service(backends, op)
        return nsg_id is not None and doc is not None and patch_applies(doc, undo_patch(op, nsg_id))

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        t = op.target
        nsg_id = (record or {}).get("nsg_id") or _nsg_id(backends, op)
        undo = undo_patch(op, nsg_id)
        _kube(backends).patch("Service", t["namespace"], t["name"], undo, dry_run=True)
        doc = _kube(backends).patch("Service", t["namespace"], t["name"], undo)
        return {"resourceVersion": (doc.get("metadata") or {}).get("resourceVersion")}
