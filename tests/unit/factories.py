"""Builders for the spec-driven check tests (tests/unit/test_check_*.py).

Everything here builds plain Kubernetes documents (dicts) or asserts on findings; the inventory
and the engine are driven through :mod:`tests.helpers` (``scan``, ``inventory``, ``config``).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from okeguard.checks.model import Finding
from tests.helpers import HARDENED_CONTAINER, NOW, scan

Doc = dict[str, Any]

# Kubernetes API group/versions of the kinds built here.
_API_VERSION = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
}

# A digest that is well-formed (64 hex digits) and easy to recognise in failures.
DIGEST = "sha256:" + "b" * 64

# Test-only key material. Both are public, well-known example values (AWS documents the key id;
# the PEM body is not a real key), so nothing sensitive lives in the repository.
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
PEM_PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)


def ts(when: datetime) -> str:
    """An RFC 3339 timestamp as the API server writes it."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def days_ago(days: float) -> str:
    return ts(NOW - timedelta(days=days))


# --------------------------------------------------------------------------------------------
# containers and workloads


def container(
    name: str = "app",
    *,
    image: str | None = None,
    drop_security: Iterable[str] = (),
    env: list[Doc] | None = None,
    **security: Any,
) -> Doc:
    """A copy of ``HARDENED_CONTAINER`` named ``name``.

    Keyword arguments override ``securityContext`` fields (``runAsUser=0``, ``privileged=True``,
    ``capabilities={...}``); ``drop_security`` removes fields so they are unset.
    """
    spec = copy.deepcopy(HARDENED_CONTAINER)
    spec["name"] = name
    if image is not None:
        spec["image"] = image
    sc = spec["securityContext"]
    for key in drop_security:
        sc.pop(key, None)
    sc.update(security)
    if env is not None:
        spec["env"] = env
    return spec


def bare_container(name: str = "app", image: str = "nginx:1.27", **fields: Any) -> Doc:
    """A container with no securityContext at all (every workload check's defaults apply)."""
    return {"name": name, "image": image, **fields}


def workload(
    kind: str = "Deployment",
    name: str = "web",
    namespace: str | None = "shop",
    *,
    containers: list[Doc] | None = None,
    init_containers: list[Doc] | None = None,
    ephemeral_containers: list[Doc] | None = None,
    pod_spec: Doc | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    owner: tuple[str, str] | None = None,
) -> Doc:
    """A workload of ``kind`` whose pod spec is ``pod_spec`` plus the given containers.

    Containers default to one hardened container, so a workload built with no arguments passes
    every workload check. ``owner`` is a (kind, name) controller owner reference.
    """
    spec: Doc = copy.deepcopy(pod_spec or {})
    spec.setdefault("containers", containers if containers is not None else [container()])
    if init_containers is not None:
        spec["initContainers"] = init_containers
    if ephemeral_containers is not None:
        spec["ephemeralContainers"] = ephemeral_containers
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": _API_VERSION.get(owner[0], "apps/v1"),
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    pod_labels = dict(labels or {"app": name})
    template = {"metadata": {"labels": pod_labels}, "spec": spec}
    doc: Doc = {"apiVersion": _API_VERSION[kind], "kind": kind, "metadata": meta}
    if kind == "Pod":
        meta["labels"] = pod_labels
        doc["spec"] = spec
    elif kind == "CronJob":
        doc["spec"] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Job":
        doc["spec"] = {"template": template}
    else:
        doc["spec"] = {"selector": {"matchLabels": pod_labels}, "template": template}
    return doc


def pod(name: str = "web-abc12", namespace: str | None = "shop", **kwargs: Any) -> Doc:
    return workload("Pod", name, namespace, **kwargs)


# --------------------------------------------------------------------------------------------
# cluster objects


def namespace(name: str, *, annotations: dict[str, str] | None = None) -> Doc:
    meta: Doc = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def node(name: str = "10.0.10.5", images: list[tuple[list[str], int]] | None = None) -> Doc:
    """A Node whose ``status.images`` lists (names, sizeBytes) pairs."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "images": [{"names": names, "sizeBytes": size} for names, size in (images or [])]
        },
    }


def service_account(
    name: str = "default", namespace: str = "shop", *, automount: bool | None = None
) -> Doc:
    doc: Doc = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }
    if automount is not None:
        doc["automountServiceAccountToken"] = automount
    return doc


def rule(verbs: list[str], resources: list[str], api_groups: list[str] | None = None) -> Doc:
    return {
        "apiGroups": api_groups if api_groups is not None else [""],
        "verbs": verbs,
        "resources": resources,
    }


def role(name: str, namespace: str = "shop", rules: list[Doc] | None = None) -> Doc:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules or [],
    }


def cluster_role(name: str, rules: list[Doc] | None = None) -> Doc:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules or [],
    }


CLUSTER_ADMIN = cluster_role(
    "cluster-admin", [rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]
)


def user(name: str) -> Doc:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> Doc:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa_subject(name: str, namespace: str) -> Doc:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def role_binding(
    name: str,
    namespace: str = "shop",
    *,
    role_kind: str = "Role",
    role_name: str,
    subjects: list[Doc],
    annotations: dict[str, str] | None = None,
) -> Doc:
    meta: Doc = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


def cluster_role_binding(name: str, *, role_name: str, subjects: list[Doc]) -> Doc:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": subjects,
    }


def secret(
    name: str = "db",
    namespace: str = "shop",
    *,
    type: str | None = "Opaque",
    data: dict[str, str] | None = None,
    created: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Doc:
    meta: Doc = {"name": name, "namespace": namespace}
    if created is not None:
        meta["creationTimestamp"] = created
    if annotations:
        meta["annotations"] = dict(annotations)
    doc: Doc = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
    if type is not None:
        doc["type"] = type
    doc["data"] = {k: b64(v) for k, v in (data or {"password": "hunter2-not-real"}).items()}
    return doc


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def config_map(
    name: str = "app-config", namespace: str = "shop", data: dict[str, str] | None = None
) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data or {"LOG_LEVEL": "info"},
    }


def network_policy(
    name: str,
    namespace: str = "shop",
    *,
    pod_selector: Doc | None = None,
    policy_types: list[str] | None = None,
    ingress: list[Doc] | None = None,
) -> Doc:
    spec: Doc = {"podSelector": pod_selector if pod_selector is not None else {}}
    if policy_types is not None:
        spec["policyTypes"] = policy_types
    if ingress is not None:
        spec["ingress"] = ingress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ingress(name: str = "shop", namespace: str = "shop", *, tls: bool, rules: bool = True) -> Doc:
    spec: Doc = {"ingressClassName": "nginx"}
    if rules:
        spec["rules"] = [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    else:
        spec["defaultBackend"] = {"service": {"name": "web", "port": {"number": 80}}}
    if tls:
        spec["tls"] = [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# --------------------------------------------------------------------------------------------
# certificates


def make_certificate_pem(not_after: datetime, *, common_name: str = "shop.example.com") -> str:
    """A real self-signed certificate (PEM) valid from a year before NOW until ``not_after``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before = min(NOW, not_after) - timedelta(days=365)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def tls_secret(
    name: str = "shop-tls",
    namespace: str = "shop",
    *,
    not_after: datetime | None = None,
    cert_pem: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Doc:
    pem = (
        cert_pem
        if cert_pem is not None
        else make_certificate_pem(not_after or NOW + timedelta(days=365))
    )
    doc = secret(
        name,
        namespace,
        type="kubernetes.io/tls",
        data={"tls.crt": pem, "tls.key": PEM_PRIVATE_KEY},
        created=days_ago(1),
        annotations=annotations,
    )
    return doc


# --------------------------------------------------------------------------------------------
# running and asserting


def run(check_id: str, docs: Iterable[Doc], **kwargs: Any) -> list[Finding]:
    """Findings of one check (the engine runs only that check)."""
    findings = scan(list(docs), checks=[check_id], **kwargs)
    assert all(f.check_id == check_id for f in findings), [f.check_id for f in findings]
    return findings


def one(findings: list[Finding]) -> Finding:
    """The only finding; fails with a readable list otherwise."""
    assert len(findings) == 1, [describe(f) for f in findings]
    return findings[0]


def describe(f: Finding) -> str:
    return f"{f.check_id} {f.severity.value} {f.status.value} {f.resource.display()}: {f.message}"


def assert_finding(
    f: Finding,
    *,
    check_id: str,
    severity: str,
    kind: str,
    namespace: str | None,
    name: str,
    container: str | None = None,
    status: str = "open",
    remediation: str | None = None,
    mentions: Iterable[str] = (),
) -> None:
    """Assert a finding's identity, grading and that its message names the given field/values.

    ``mentions`` are matched case-insensitively (``privileged: true`` and ``privileged=True`` both
    name the field and the value).
    """
    assert f.check_id == check_id, describe(f)
    assert f.severity.value == severity, describe(f)
    assert f.status.value == status, describe(f)
    assert (f.resource.kind, f.resource.namespace, f.resource.name) == (kind, namespace, name), (
        describe(f)
    )
    assert f.resource.container == container, describe(f)
    if remediation is not None:
        assert f.remediation == remediation, describe(f)
    lowered = f.message.lower()
    for needle in mentions:
        assert needle.lower() in lowered, f"message does not mention {needle!r}: {f.message!r}"
    assert f.fingerprint and f.cluster == "test"


def mentions_all(findings: Iterable[Finding], *needles: str) -> bool:
    text = " ".join(f.message for f in findings).lower()
    return all(n.lower() in text for n in needles)


def open_findings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.status.value == "open"]
