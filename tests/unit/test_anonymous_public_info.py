"""Kubernetes' own public-info binding is not anonymous access; the same subject on more is."""

from __future__ import annotations

from tests.helpers import scan

PUBLIC_INFO_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "system:public-info-viewer"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:public-info-viewer",
    },
    "subjects": [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"},
        {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": "system:unauthenticated",
        },
    ],
}


def role(name: str, rules: list[dict]) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def test_builtin_public_info_viewer_is_not_a_finding_with_or_without_its_role() -> None:
    health = role(
        "system:public-info-viewer",
        [
            {
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
    )
    assert scan([PUBLIC_INFO_BINDING], checks=["k8s.anonymous-access"]) == []
    assert scan([PUBLIC_INFO_BINDING, health], checks=["k8s.anonymous-access"]) == []


def test_the_same_binding_to_a_role_with_more_is_critical() -> None:
    widened = role(
        "system:public-info-viewer",
        [{"nonResourceURLs": ["/healthz", "/metrics"], "verbs": ["get"]}],
    )
    (finding,) = scan([PUBLIC_INFO_BINDING, widened], checks=["k8s.anonymous-access"])
    assert finding.severity.value == "critical"
    posting = role(
        "system:public-info-viewer", [{"nonResourceURLs": ["/healthz"], "verbs": ["get", "post"]}]
    )
    assert len(scan([PUBLIC_INFO_BINDING, posting], checks=["k8s.anonymous-access"])) == 1
    pods = role(
        "system:public-info-viewer", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    )
    assert len(scan([PUBLIC_INFO_BINDING, pods], checks=["k8s.anonymous-access"])) == 1
