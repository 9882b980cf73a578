"""``add-default-deny-policy``: a NetworkPolicy that admits ingress only from the same namespace.

The policy selects every pod of the namespace and lists only ``Ingress`` in ``policyTypes``, so
egress (DNS included) is untouched. Undone by deleting the policy (guarded by its uid). The risk
notes name what it will cut off: LoadBalancer and NodePort Services, and Ingresses whose
controller runs in another namespace.
"""

from __future__ import annotations

import yaml

from okeguard.checks.cluster import runs_any
from okeguard.checks.model import Finding
from okeguard.checks.oke_cluster import policy_engine
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.remediations.plan import Operation, Plan, PlanError
from okeguard.remediations.planners import planner

REMEDIATION = "add-default-deny-policy"
POLICY_NAME = "okeguard-default-deny-ingress"
INGRESS_CONTROLLERS = ("ingress-nginx", "nginx-ingress", "traefik", "haproxy-ingress", "contour")


@planner("add-default-deny-policy")
def plan_add_default_deny_policy(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan creating the namespace's default-deny ingress policy."""
    if variant != "default":
        raise PlanError(f"{REMEDIATION} has one variant, 'default'")
    namespace = finding.resource.name
    known = any(o.name == namespace for o in inventory.objects.get("Namespace", ()))
    if not known and not any(w.namespace == namespace for w in inventory.workloads):
        raise PlanError(f"namespace {namespace} is not in the cluster's current state")
    for policy in inventory.objects.get("NetworkPolicy", ()):
        if policy.namespace == namespace and policy.name == POLICY_NAME:
            raise PlanError(f"NetworkPolicy {namespace}/{POLICY_NAME} already exists")
    body = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": POLICY_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "okeguard"},
            "annotations": {
                "okeguard.io/reason": "k8s.missing-network-policy: deny ingress from outside "
                "the namespace (OKE practice P6)"
            },
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }
    risks = []
    for svc in inventory.objects.get("Service", ()):
        kind = svc.spec.get("type") or "ClusterIP"
        if svc.namespace == namespace and kind in ("LoadBalancer", "NodePort"):
            risks.append(
                f"Service {svc.name} ({kind}) receives traffic from outside the namespace: "
                "add a NetworkPolicy allowing it before or right after this one"
            )
    local = [w for w in inventory.workloads if w.namespace == namespace]
    controller_here = runs_any(local, INGRESS_CONTROLLERS) is not None
    for ingress in inventory.objects.get("Ingress", ()):
        if ingress.namespace == namespace and not controller_here:
            risks.append(
                f"Ingress {ingress.name}: its controller runs in another namespace and will be "
                "blocked unless a policy admits it"
            )
    if policy_engine(inventory.workloads) is None:
        risks.append(
            "no NetworkPolicy engine (Calico, Cilium, Antrea, kube-router) runs in the cluster: "
            "the policy will be stored but not enforced (see oke.network-policy-not-enforced)"
        )
    diff = "\n".join(
        ["--- (nothing)", f"+++ NetworkPolicy {namespace}/{POLICY_NAME} (planned)"]
        + [f"+{line}" for line in yaml.safe_dump(body, sort_keys=False).splitlines()]
    )
    op = Operation(
        action="k8s.create",
        target={"kind": "NetworkPolicy", "namespace": namespace, "name": POLICY_NAME},
        params={"body": body},
        undo={"delete": True},
        description=f"create NetworkPolicy {namespace}/{POLICY_NAME}",
    )
    return Plan.of(
        finding,
        REMEDIATION,
        (op,),
        diff,
        risks=risks,
        verify={"exists": True},
    )
