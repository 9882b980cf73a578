"""Admitting documents into an inventory: the types of the fields okeguard reads, checked once.

Checks and the inventory read fields such as ``spec.template.spec.containers`` or a binding's
``subjects`` and trust their Kubernetes types. A manifest can say anything (``spec: "x"``, a
``securityContext`` that is a list, ``runAsUser: "0"``), and the API server would refuse it; so
does :func:`admit`, before the object reaches a check. An object with a field of the wrong type
is kept out and returned as :class:`~okeguard.inventory.model.Unevaluated` with the field named,
so the scan reports it as not evaluated and goes on with the rest.

Only fields that okeguard reads are listed in :data:`FIELD_TYPES` (in the language of
:mod:`okeguard.inventory.shapes`); null is always allowed (the API server reads it as absent),
and fields not listed may hold anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from okeguard.inventory.model import SUPPORTED_KINDS, K8sObject, Unevaluated
from okeguard.inventory.normalize import to_object
from okeguard.inventory.shapes import TEXT, TIMESTAMP, Shape, compile_shape, field_problem
from okeguard.kube_shapes import CONTAINER_FIELDS, WORKLOAD_KINDS, template_keys

STRINGS = {"*": TEXT}  # map[string]string, as labels, annotations and ConfigMap data are
LABEL_SELECTOR = {
    "matchLabels": STRINGS,
    "matchExpressions": [{"key": str, "operator": str, "values": [str]}],
}
METADATA = {
    "name": str,
    "namespace": str,
    "labels": STRINGS,
    "annotations": STRINGS,
    "ownerReferences": [{"kind": str, "name": str}],
    "creationTimestamp": TIMESTAMP,
}
_SECCOMP = {"type": str}
CONTAINER = {
    "name": str,
    "image": str,
    "env": [{"name": str, "value": str}],
    "securityContext": {
        "runAsUser": int,
        "runAsGroup": int,
        "runAsNonRoot": bool,
        "privileged": bool,
        "allowPrivilegeEscalation": bool,
        "readOnlyRootFilesystem": bool,
        "capabilities": {"add": [str], "drop": [str]},
        "seccompProfile": _SECCOMP,
    },
}
POD_SPEC = {
    **{field: [CONTAINER] for field, _ in CONTAINER_FIELDS},
    "securityContext": {
        "runAsUser": int,
        "runAsGroup": int,
        "runAsNonRoot": bool,
        "seccompProfile": _SECCOMP,
    },
    "volumes": [{"name": str, "hostPath": {"path": str}}],
    "os": {"name": str},
    "serviceAccountName": str,
    "serviceAccount": str,
    "automountServiceAccountToken": bool,
    "hostNetwork": bool,
    "hostPID": bool,
    "hostIPC": bool,
}
POD_TEMPLATE = {"metadata": {"labels": STRINGS, "annotations": STRINGS}, "spec": POD_SPEC}
_PEER = {
    "podSelector": LABEL_SELECTOR,
    "namespaceSelector": LABEL_SELECTOR,
    "ipBlock": {"cidr": str, "except": [str]},
}
_POLICY_RULE = {"from": [_PEER], "to": [_PEER], "ports": [{"protocol": str}]}
_RULES = {
    "rules": [{"verbs": [str], "resources": [str], "apiGroups": [str], "nonResourceURLs": [str]}]
}
_BINDING = {
    "subjects": [{"kind": str, "name": str, "namespace": str}],
    "roleRef": {"kind": str, "name": str},
}


def _at(keys: Sequence[str], shape: Mapping[str, Shape]) -> Mapping[str, Shape]:
    """``shape`` nested under ``keys`` (``("spec", "template")`` -> ``{"spec": {"template": …}}``)."""
    for key in reversed(keys):
        shape = {key: shape}
    return shape


# Where each workload kind holds its pod template (a Pod is its own, metadata included).
_WORKLOADS = {
    kind: _at(
        template_keys(kind) or (), POD_TEMPLATE if template_keys(kind) else {"spec": POD_SPEC}
    )
    for kind in WORKLOAD_KINDS
}
_BY_KIND: Mapping[str, Mapping[str, Shape]] = {
    **_WORKLOADS,
    "Role": _RULES,
    "ClusterRole": _RULES,
    "RoleBinding": _BINDING,
    "ClusterRoleBinding": _BINDING,
    "NetworkPolicy": {
        "spec": {
            "podSelector": LABEL_SELECTOR,
            "policyTypes": [str],
            "ingress": [_POLICY_RULE],
            "egress": [_POLICY_RULE],
        }
    },
    "Ingress": {"spec": {"rules": [{"host": str}], "tls": [{"hosts": [str], "secretName": str}]}},
    "Secret": {"type": str, "data": STRINGS, "stringData": STRINGS},
    "ConfigMap": {"data": STRINGS, "binaryData": STRINGS},
    "Service": {"spec": {"type": str, "ports": [{}], "loadBalancerSourceRanges": [str]}},
    "ServiceAccount": {"automountServiceAccountToken": bool},
    "Node": {"status": {"images": [{"names": [str], "sizeBytes": int}]}},
}

# The shape of each supported kind: metadata, spec and status are mappings in every kind.
FIELD_TYPES: Mapping[str, Mapping[str, Shape]] = {
    kind: {"metadata": METADATA, "spec": {}, "status": {}, **_BY_KIND.get(kind, {})}
    for kind in SUPPORTED_KINDS
}


def admit(
    doc: object, origin: str | None, problems: Sequence[str] = ()
) -> K8sObject | Unevaluated | None:
    """``doc`` as an object of the inventory; as :class:`Unevaluated` when one of its fields has
    the wrong type or ``problems`` (what could not be read of it) is not empty; None for a kind
    okeguard does not read. Raises :class:`~okeguard.inventory.normalize.NotAnObject` for a
    document that is not a Kubernetes object (no kind, apiVersion or metadata.name)."""
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and isinstance(kind, str) and kind in FIELD_TYPES:
        problem = problems[0] if problems else None
        if problem is None and not _FIELD_CHECKS[kind](doc):
            problem = field_problem(doc, FIELD_TYPES[kind])
        if problem is not None:
            stub = _identity(doc, origin)
            return None if stub is None else Unevaluated(stub, problem)
    return to_object(doc, origin=origin)


class _Checks(dict[str, Callable[[object], bool]]):
    """The compiled test of each kind's shape, compiled when a kind is first met (a scan meets a
    few of the kinds, and compiling one takes about a millisecond)."""

    def __missing__(self, kind: str) -> Callable[[object], bool]:
        check = self[kind] = compile_shape(FIELD_TYPES[kind])
        return check


_FIELD_CHECKS = _Checks()


def _identity(doc: dict[str, Any], origin: str | None) -> K8sObject | None:
    """An object with only the kind, namespace and name of ``doc`` (the rules of
    :func:`to_object`), to name what was not evaluated."""
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = metadata.get("namespace")
    stub = {
        "apiVersion": doc.get("apiVersion"),
        "kind": doc.get("kind"),
        "metadata": {
            "name": metadata.get("name"),
            "namespace": namespace if isinstance(namespace, str) else None,
        },
    }
    return to_object(stub, origin=origin)
