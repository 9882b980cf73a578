"""RBAC checks (practices P19, P20): cluster-admin, wildcards and escalation verbs, anonymous
access, and workloads that carry the default ServiceAccount's permissions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from okeguard.checks._common import WORKLOAD_READS, object_hit, workload_hit
from okeguard.checks.model import ResourceRef, Severity, Status
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import Inventory, K8sObject

BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
ANONYMOUS = frozenset({"system:anonymous", "system:unauthenticated"})
# "system:" groups that stand for (almost) everyone: never treated as a system identity.
_BROAD_GROUPS = frozenset({"system:authenticated", "system:serviceaccounts", *ANONYMOUS})
ESCALATION_VERBS = ("escalate", "bind", "impersonate")

# Default ClusterRoles that manifests bind to without defining them (from Kubernetes' bootstrap
# policy): enough of their rules to judge wildcards and escalation verbs.
_BUILTIN_CLUSTER_ROLES: Mapping[str, Sequence[Mapping[str, Any]]] = {
    "cluster-admin": (
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ),
    "admin": ({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},),
    "edit": ({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},),
    "view": ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},),
    "system:public-info-viewer": (
        {
            "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
            "verbs": ["get"],
        },
    ),
}
# Non-resource URLs that Kubernetes itself opens to everyone (health and version probes).
PUBLIC_INFO_URLS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})


def grants_only_public_info(rules: Sequence[Mapping[str, Any]] | None) -> bool:
    """True for a role that only lets callers GET the health and version endpoints."""
    if not rules:
        return False
    for rule in rules:
        urls = set(rule.get("nonResourceURLs") or ())
        if rule.get("resources") or not urls or not urls <= PUBLIC_INFO_URLS:
            return False
        if set(rule.get("verbs") or ()) - {"get"}:
            return False
    return True


def subject_label(subject: Mapping[str, Any], binding: K8sObject) -> str:
    kind = subject.get("kind", "?")
    if kind == "ServiceAccount":
        return (
            f"ServiceAccount {subject.get('namespace') or binding.namespace}/{subject.get('name')}"
        )
    return f"{kind} {subject.get('name')}"


def is_system_subject(
    subject: Mapping[str, Any], binding: K8sObject, system_namespaces: Sequence[str]
) -> bool:
    """True for Kubernetes' own identities: ``system:`` users and groups (but not the groups that
    mean everyone) and the ServiceAccounts of system namespaces."""
    kind = subject.get("kind")
    name = str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return (subject.get("namespace") or binding.namespace) in system_namespaces
    if name in _BROAD_GROUPS:
        return False
    if name.startswith("system:serviceaccounts:"):
        return name.split(":", 2)[2] in system_namespaces
    return name.startswith("system:")


def _subjects(binding: K8sObject) -> list[Mapping[str, Any]]:
    return [s for s in binding.raw.get("subjects") or () if isinstance(s, dict)]


def _role_ref(binding: K8sObject) -> tuple[str, str]:
    ref = binding.raw.get("roleRef") or {}
    return str(ref.get("kind") or ""), str(ref.get("name") or "")


def role_rules(inventory: Inventory, binding: K8sObject) -> Sequence[Mapping[str, Any]] | None:
    """The rules of the role a binding refers to, or None when that role is not known."""
    kind, name = _role_ref(binding)
    if kind == "ClusterRole":
        role = inventory.get("ClusterRole", None, name)
        if role is None:
            return _BUILTIN_CLUSTER_ROLES.get(name)
    else:
        role = inventory.get("Role", binding.namespace, name)
        if role is None:
            return None
    return [r for r in role.raw.get("rules") or () if isinstance(r, dict)]


def _bindings(ctx: CheckContext) -> Iterator[K8sObject]:
    yield from ctx.inventory.of_kind(*BINDING_KINDS)


@check(
    id="k8s.cluster-admin-binding",
    title="cluster-admin bound to a non-system subject",
    practice="P20",
    severity=Severity.HIGH,
    reads=BINDING_KINDS,
)
def cluster_admin_binding(ctx: CheckContext) -> Iterator[Hit]:
    """A ClusterRoleBinding or RoleBinding grants the ClusterRole `cluster-admin` to a subject that
    is not a `system:` identity (system users and groups, or service accounts of system namespaces;
    the groups meaning everyone do not count as system identities)."""
    system_ns = ctx.config.checks.system_namespaces
    for binding in _bindings(ctx):
        if _role_ref(binding) != ("ClusterRole", "cluster-admin"):
            continue
        people = [
            subject_label(s, binding)
            for s in _subjects(binding)
            if not is_system_subject(s, binding, system_ns)
        ]
        if people:
            yield object_hit(
                binding, f"{binding.kind} grants cluster-admin (roleRef) to {', '.join(people)}."
            )


def _dangerous_grants(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for rule in rules:
        verbs = [str(v) for v in rule.get("verbs") or ()]
        resources = [str(r) for r in rule.get("resources") or ()] or [
            str(u) for u in rule.get("nonResourceURLs") or ()
        ]
        on = ", ".join(resources) or "?"
        if "*" in verbs:
            found.append(f"verbs '*' on {on}")
        elif "*" in resources:
            found.append(f"{', '.join(verbs)} on resources '*'")
        for verb in ESCALATION_VERBS:
            if verb in verbs:
                found.append(f"{verb} on {on}")
    return list(dict.fromkeys(found))


@check(
    id="k8s.wildcard-rbac",
    title="Wildcard or escalation permissions granted",
    practice="P20",
    severity=Severity.MEDIUM,
    reads=(*BINDING_KINDS, "Role", "ClusterRole"),
)
def wildcard_rbac(ctx: CheckContext) -> Iterator[Hit]:
    """A binding grants a non-system subject a Role or ClusterRole with `*` in verbs or resources,
    or the `escalate`, `bind` or `impersonate` verbs. Reported on the binding (an unbound role is
    not a finding); a binding to a role that is not in the inventory reports `unknown`."""
    system_ns = ctx.config.checks.system_namespaces
    for binding in _bindings(ctx):
        people = [
            subject_label(s, binding)
            for s in _subjects(binding)
            if not is_system_subject(s, binding, system_ns)
        ]
        if not people:
            continue
        kind, name = _role_ref(binding)
        rules = role_rules(ctx.inventory, binding)
        if rules is None:
            yield Hit(
                ResourceRef(binding.kind, binding.namespace, binding.name),
                f"{binding.kind} refers to {kind} {name!r}, which is not in the scanned resources; its permissions could not be checked.",
                subject=binding,
                status=Status.UNKNOWN,
            )
            continue
        grants = _dangerous_grants(rules)
        if grants:
            yield object_hit(
                binding,
                f"{binding.kind} grants {kind} {name!r} ({'; '.join(grants)}) to {', '.join(people)}.",
            )


@check(
    id="k8s.anonymous-access",
    title="Anonymous access granted",
    practice="P20",
    severity=Severity.CRITICAL,
    reads=BINDING_KINDS,
)
def anonymous_access(ctx: CheckContext) -> Iterator[Hit]:
    """A binding's subjects include `system:anonymous` or `system:unauthenticated`: anyone who can
    reach the API server gets the role. A role that only allows GET on the health and version
    endpoints (Kubernetes' own `system:public-info-viewer`) is not a finding."""
    for binding in _bindings(ctx):
        anonymous = sorted(
            {str(s.get("name")) for s in _subjects(binding) if s.get("name") in ANONYMOUS}
        )
        if anonymous and not grants_only_public_info(role_rules(ctx.inventory, binding)):
            kind, name = _role_ref(binding)
            yield object_hit(
                binding, f"{binding.kind} grants {kind} {name!r} to {', '.join(anonymous)}."
            )


def _default_sa_bound(inventory: Inventory) -> set[str]:
    """Namespaces whose ``default`` ServiceAccount is a subject of some binding."""
    bound: set[str] = set()
    everyone = False
    for binding in inventory.of_kind(*BINDING_KINDS):
        for s in _subjects(binding):
            name = str(s.get("name") or "")
            if s.get("kind") == "ServiceAccount" and name == "default":
                bound.add(str(s.get("namespace") or binding.namespace))
            elif s.get("kind") == "Group" and name.startswith("system:serviceaccounts:"):
                bound.add(name.split(":", 2)[2])
            elif s.get("kind") == "Group" and name == "system:serviceaccounts":
                everyone = True
    if everyone:
        bound.add("*")
    return bound


@check(
    id="k8s.default-service-account",
    title="Workload uses the default ServiceAccount with permissions",
    practice=("P19", "P20"),
    severity=Severity.LOW,
    reads=(*WORKLOAD_READS, "ServiceAccount", *BINDING_KINDS),
)
def default_service_account(ctx: CheckContext) -> Iterator[Hit]:
    """The workload runs as its namespace's `default` ServiceAccount with the token automounted
    (pod setting, else the ServiceAccount's, else true), and that account has bindings."""
    bound = _default_sa_bound(ctx.inventory)
    if not bound:
        return
    for w in ctx.workloads():
        if w.service_account != "default" or not ({w.namespace, "*"} & bound):
            continue
        automount = w.pod_spec.get("automountServiceAccountToken")
        if automount is None:
            account = ctx.inventory.get("ServiceAccount", w.namespace, "default")
            automount = account.raw.get("automountServiceAccountToken") if account else None
        if automount is False:
            continue
        yield workload_hit(
            w,
            f"The pod runs as ServiceAccount {w.namespace}/default, which has RBAC bindings, with its token automounted (automountServiceAccountToken is not false).",
        )
