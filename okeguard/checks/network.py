"""Network checks in the cluster (practices P6, P11): NetworkPolicy coverage and Ingress TLS."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from okeguard.checks._common import WORKLOAD_READS, object_hit
from okeguard.checks.model import ResourceRef, Severity
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import K8sObject, Workload


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: ``matchLabels`` and ``matchExpressions`` (In, NotIn,
    Exists, DoesNotExist) all must hold; an empty selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key = expression.get("key")
        operator = expression.get("operator")
        values = expression.get("values") or ()
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def governs_ingress(policy: K8sObject) -> bool:
    """A NetworkPolicy restricts ingress when ``policyTypes`` lists Ingress or is absent
    (then Ingress is always implied)."""
    types = policy.spec.get("policyTypes")
    return not types or "Ingress" in types


@check(
    id="k8s.missing-network-policy",
    title="Namespace without ingress NetworkPolicy",
    practice="P6",
    severity=Severity.MEDIUM,
    remediation="add-default-deny-policy",
    reads=(*WORKLOAD_READS, "NetworkPolicy"),
    severity_note="high when the planned exposure is `public`",
)
def missing_network_policy(ctx: CheckContext) -> Iterator[Hit]:
    """A namespace has workloads whose pods no NetworkPolicy selects for ingress, so any pod in
    the cluster can reach them. Reported on the Namespace."""
    policies: dict[str, list[K8sObject]] = defaultdict(list)
    for policy in ctx.inventory.of_kind("NetworkPolicy"):
        if governs_ingress(policy):
            policies[policy.namespace or "default"].append(policy)
    uncovered: dict[str, list[Workload]] = defaultdict(list)
    for w in ctx.workloads():
        selectors = [p.spec.get("podSelector") for p in policies.get(w.namespace, ())]
        if not any(selector_matches(s, w.pod_labels) for s in selectors):
            uncovered[w.namespace].append(w)
    severity = Severity.HIGH if ctx.config.exposure == "public" else None
    for namespace, workloads in sorted(uncovered.items()):
        names = [f"{w.kind} {w.name}" for w in workloads[:5]]
        more = f" and {len(workloads) - 5} more" if len(workloads) > 5 else ""
        if namespace in policies:
            message = f"No ingress NetworkPolicy in namespace {namespace!r} selects (spec.podSelector) the pods of {', '.join(names)}{more}."
        else:
            message = f"Namespace {namespace!r} has no ingress NetworkPolicy, so any pod can reach {', '.join(names)}{more}."
        subject = ctx.inventory.get("Namespace", None, namespace)
        yield Hit(
            ResourceRef("Namespace", None, namespace),
            message,
            subject=subject,
            severity=severity,
        )


@check(
    id="k8s.ingress-without-tls",
    title="Ingress without TLS",
    practice="P11",
    severity=Severity.MEDIUM,
    reads=("Ingress",),
)
def ingress_without_tls(ctx: CheckContext) -> Iterator[Hit]:
    """An Ingress has rules but no `tls` section, so it serves plain HTTP."""
    for ingress in ctx.inventory.of_kind("Ingress"):
        rules = ingress.spec.get("rules") or ()
        if rules and not ingress.spec.get("tls"):
            hosts = sorted(
                {str(r.get("host")) for r in rules if isinstance(r, dict) and r.get("host")}
            )
            shown = f" for {', '.join(hosts)}" if hosts else ""
            yield object_hit(
                ingress, f"Ingress has {len(rules)} rule(s){shown} but spec.tls is empty."
            )
