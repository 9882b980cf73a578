"""Spec tests for the RBAC checks of CHECKS.md: k8s.cluster-admin-binding, k8s.wildcard-rbac,
k8s.anonymous-access and k8s.default-service-account.

Written from the specification (CHECKS.md), not from okeguard/checks/rbac.py. Inventories are
whole-cluster (live/snapshot-like) since RBAC reasoning needs the roles and bindings together.
"""

from __future__ import annotations

import pytest

from tests.unit.factories import (
    CLUSTER_ADMIN,
    assert_finding,
    cluster_role,
    cluster_role_binding,
    describe,
    group,
    one,
    role,
    role_binding,
    rule,
    run,
    sa_subject,
    service_account,
    user,
    workload,
)


def _run(check_id: str, docs: list[dict], **kwargs) -> list:
    return run(check_id, docs, whole_cluster=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# k8s.cluster-admin-binding


def test_cluster_admin_cluster_role_binding_to_a_user() -> None:
    docs = [
        CLUSTER_ADMIN,
        cluster_role_binding(
            "alice-admin", role_name="cluster-admin", subjects=[user("alice@example.com")]
        ),
    ]
    assert_finding(
        one(_run("k8s.cluster-admin-binding", docs)),
        check_id="k8s.cluster-admin-binding",
        severity="high",
        kind="ClusterRoleBinding",
        namespace=None,
        name="alice-admin",
        remediation="guidance",
        mentions=("cluster-admin", "alice@example.com"),
    )


def test_cluster_admin_role_binding_to_a_user() -> None:
    docs = [
        CLUSTER_ADMIN,
        role_binding(
            "bob-admin",
            "shop",
            role_kind="ClusterRole",
            role_name="cluster-admin",
            subjects=[user("bob")],
        ),
    ]
    assert_finding(
        one(_run("k8s.cluster-admin-binding", docs)),
        check_id="k8s.cluster-admin-binding",
        severity="high",
        kind="RoleBinding",
        namespace="shop",
        name="bob-admin",
        mentions=("cluster-admin", "bob"),
    )


def test_cluster_admin_binding_to_a_group_and_an_app_service_account() -> None:
    # The built-in ClusterRole itself need not be in the inventory (manifests): the roleRef name
    # `cluster-admin` is what matters.
    docs = [
        cluster_role_binding("ops", role_name="cluster-admin", subjects=[group("ops-team")]),
        cluster_role_binding(
            "ci", role_name="cluster-admin", subjects=[sa_subject("deployer", "ci")]
        ),
    ]
    found = _run("k8s.cluster-admin-binding", docs)
    assert sorted(f.resource.name for f in found) == ["ci", "ops"], [describe(f) for f in found]


@pytest.mark.parametrize(
    "subject",
    [
        group("system:masters"),  # the default cluster-admin binding of every cluster
        user("system:kube-controller-manager"),
        sa_subject("cluster-autoscaler", "kube-system"),
        sa_subject("node-problem-detector", "kube-public"),
    ],
)
def test_cluster_admin_binding_to_system_identities_passes(subject: dict) -> None:
    docs = [
        CLUSTER_ADMIN,
        cluster_role_binding("cluster-admin", role_name="cluster-admin", subjects=[subject]),
    ]
    assert _run("k8s.cluster-admin-binding", docs) == []


@pytest.mark.parametrize(
    "subject",
    [
        group("system:authenticated"),
        group("system:serviceaccounts"),
        group("system:serviceaccounts:shop"),
    ],
)
def test_cluster_admin_binding_to_catch_all_system_groups_is_flagged(subject: dict) -> None:
    # Left open by CHECKS.md: a "system: identity" is a Kubernetes component (system:masters,
    # system:kube-controller-manager, kube-system service accounts). The catch-all groups
    # system:authenticated / system:serviceaccounts[:ns] stand for every user or every workload,
    # and a kubescape user expects cluster-admin granted to them to be flagged.
    docs = [cluster_role_binding("everyone-admin", role_name="cluster-admin", subjects=[subject])]
    f = one(_run("k8s.cluster-admin-binding", docs))
    assert f.severity.value == "high" and subject["name"] in f.message


def test_binding_to_another_cluster_role_is_not_cluster_admin() -> None:
    docs = [cluster_role_binding("viewers", role_name="view", subjects=[group("everyone")])]
    assert _run("k8s.cluster-admin-binding", docs) == []


def test_cluster_admin_binding_exemption() -> None:
    doc = role_binding(
        "break-glass",
        "shop",
        role_kind="ClusterRole",
        role_name="cluster-admin",
        subjects=[user("oncall")],
        annotations={
            "okeguard.io/exempt": "k8s.cluster-admin-binding",
            "okeguard.io/exempt-reason": "break-glass",
        },
    )
    f = one(_run("k8s.cluster-admin-binding", [doc]))
    assert f.status.value == "exempt" and f.exempt_reason == "break-glass"


# ---------------------------------------------------------------------------------------------
# k8s.wildcard-rbac


@pytest.mark.parametrize(
    "rules",
    [
        [rule(["*"], ["pods"])],
        [rule(["get", "list"], ["*"])],
        [rule(["escalate"], ["roles"], ["rbac.authorization.k8s.io"])],
        [rule(["bind"], ["clusterroles"], ["rbac.authorization.k8s.io"])],
        [rule(["impersonate"], ["users", "groups"])],
    ],
    ids=["verbs-star", "resources-star", "escalate", "bind", "impersonate"],
)
def test_wildcard_role_bound_to_a_user(rules: list[dict]) -> None:
    docs = [
        role("power", "shop", rules),
        role_binding("power-alice", "shop", role_name="power", subjects=[user("alice")]),
    ]
    assert_finding(
        one(_run("k8s.wildcard-rbac", docs)),
        check_id="k8s.wildcard-rbac",
        severity="medium",
        kind="RoleBinding",
        namespace="shop",
        name="power-alice",
        remediation="guidance",
        mentions=("power",),
    )


def test_wildcard_cluster_role_via_cluster_role_binding() -> None:
    docs = [
        cluster_role("everything-reader", [rule(["get", "list", "watch"], ["*"], ["*"])]),
        cluster_role_binding(
            "devs-read", role_name="everything-reader", subjects=[group("developers")]
        ),
    ]
    f = one(_run("k8s.wildcard-rbac", docs))
    assert (f.resource.kind, f.resource.namespace, f.resource.name) == (
        "ClusterRoleBinding",
        None,
        "devs-read",
    )
    assert "*" in f.message, f.message


def test_wildcard_cluster_role_via_role_binding() -> None:
    docs = [
        cluster_role("ns-admin", [rule(["*"], ["*"])]),
        role_binding(
            "ci-admin",
            "shop",
            role_kind="ClusterRole",
            role_name="ns-admin",
            subjects=[sa_subject("ci", "shop")],
        ),
    ]
    f = one(_run("k8s.wildcard-rbac", docs))
    assert (f.resource.kind, f.resource.namespace, f.resource.name) == (
        "RoleBinding",
        "shop",
        "ci-admin",
    )


def test_unbound_wildcard_role_is_not_a_finding() -> None:
    docs = [
        role("power", "shop", [rule(["*"], ["*"])]),
        cluster_role("god", [rule(["*"], ["*"], ["*"])]),
    ]
    assert _run("k8s.wildcard-rbac", docs) == []


def test_wildcard_role_bound_only_to_system_subjects_passes() -> None:
    docs = [
        cluster_role("system:controller:generic", [rule(["*"], ["*"], ["*"])]),
        cluster_role_binding(
            "system:controller:generic",
            role_name="system:controller:generic",
            subjects=[user("system:kube-controller-manager"), sa_subject("generic", "kube-system")],
        ),
    ]
    assert _run("k8s.wildcard-rbac", docs) == []


def test_binding_to_a_role_missing_from_the_cluster_is_not_an_open_finding() -> None:
    # Fail closed (DESIGN.md): what the role grants is unknown, so either `unknown` or nothing
    # (a dangling roleRef grants nothing), never an open wildcard finding.
    docs = [role_binding("ghost", "shop", role_name="no-such-role", subjects=[user("alice")])]
    assert [
        f.status.value for f in _run("k8s.wildcard-rbac", docs) if f.status.value == "open"
    ] == []


def test_narrow_role_bound_to_a_user_passes() -> None:
    docs = [
        role("reader", "shop", [rule(["get", "list", "watch"], ["pods", "services"])]),
        role_binding("reader-alice", "shop", role_name="reader", subjects=[user("alice")]),
    ]
    assert _run("k8s.wildcard-rbac", docs) == []


def test_role_ref_resolves_in_the_binding_namespace() -> None:
    # A RoleBinding's Role is looked up in the binding's own namespace; a same-named wildcard
    # Role elsewhere is not what it grants.
    docs = [
        role("power", "other", [rule(["*"], ["*"])]),
        role("power", "shop", [rule(["get"], ["pods"])]),
        role_binding("power-alice", "shop", role_name="power", subjects=[user("alice")]),
    ]
    assert _run("k8s.wildcard-rbac", docs) == []


# ---------------------------------------------------------------------------------------------
# k8s.anonymous-access


@pytest.mark.parametrize(
    "subject",
    [user("system:anonymous"), group("system:unauthenticated")],
    ids=["anonymous", "unauthenticated"],
)
def test_anonymous_cluster_role_binding_is_critical(subject: dict) -> None:
    docs = [cluster_role_binding("open-door", role_name="view", subjects=[user("alice"), subject])]
    assert_finding(
        one(_run("k8s.anonymous-access", docs)),
        check_id="k8s.anonymous-access",
        severity="critical",
        kind="ClusterRoleBinding",
        namespace=None,
        name="open-door",
        remediation="guidance",
        mentions=(subject["name"],),
    )


def test_anonymous_role_binding_is_critical() -> None:
    docs = [
        role_binding(
            "public-read",
            "shop",
            role_kind="ClusterRole",
            role_name="view",
            subjects=[user("system:anonymous")],
        )
    ]
    f = one(_run("k8s.anonymous-access", docs))
    assert (f.severity.value, f.resource.kind, f.resource.namespace, f.resource.name) == (
        "critical",
        "RoleBinding",
        "shop",
        "public-read",
    )


def test_bindings_without_anonymous_subjects_pass() -> None:
    docs = [
        cluster_role_binding(
            "system:basic-user",
            role_name="system:basic-user",
            subjects=[group("system:authenticated")],
        ),
        role_binding(
            "reader", "shop", role_kind="ClusterRole", role_name="view", subjects=[user("alice")]
        ),
    ]
    assert _run("k8s.anonymous-access", docs) == []


# ---------------------------------------------------------------------------------------------
# k8s.default-service-account


def _default_sa_bound(namespace: str = "shop") -> dict:
    return role_binding(
        "default-edit",
        namespace,
        role_kind="ClusterRole",
        role_name="edit",
        subjects=[sa_subject("default", namespace)],
    )


def test_default_service_account_with_bindings_and_automounted_token() -> None:
    docs = [workload(), service_account("default", "shop"), _default_sa_bound()]
    assert_finding(
        one(_run("k8s.default-service-account", docs)),
        check_id="k8s.default-service-account",
        severity="low",
        kind="Deployment",
        namespace="shop",
        name="web",
        container=None,
        remediation="guidance",
        mentions=("default",),
    )


def test_default_service_account_bound_by_cluster_role_binding() -> None:
    docs = [
        workload("StatefulSet", "db"),
        cluster_role_binding(
            "default-view", role_name="view", subjects=[sa_subject("default", "shop")]
        ),
    ]
    f = one(_run("k8s.default-service-account", docs))
    assert (f.resource.kind, f.resource.name) == ("StatefulSet", "db")


def test_explicit_service_account_name_default_is_the_default_account() -> None:
    docs = [workload(pod_spec={"serviceAccountName": "default"}), _default_sa_bound()]
    assert len(_run("k8s.default-service-account", docs)) == 1


def test_default_service_account_without_bindings_passes() -> None:
    docs = [workload(), service_account("default", "shop")]
    assert _run("k8s.default-service-account", docs) == []


def test_binding_of_another_namespace_default_account_does_not_count() -> None:
    docs = [workload(), _default_sa_bound("billing")]
    assert _run("k8s.default-service-account", docs) == []


def test_automount_disabled_on_the_pod_passes() -> None:
    docs = [workload(pod_spec={"automountServiceAccountToken": False}), _default_sa_bound()]
    assert _run("k8s.default-service-account", docs) == []


def test_automount_disabled_on_the_service_account_passes() -> None:
    docs = [workload(), service_account("default", "shop", automount=False), _default_sa_bound()]
    assert _run("k8s.default-service-account", docs) == []


def test_pod_automount_true_overrides_service_account_false() -> None:
    # Kubernetes: the pod's automountServiceAccountToken takes precedence over the account's.
    docs = [
        workload(pod_spec={"automountServiceAccountToken": True}),
        service_account("default", "shop", automount=False),
        _default_sa_bound(),
    ]
    assert len(_run("k8s.default-service-account", docs)) == 1


def test_dedicated_service_account_passes() -> None:
    docs = [
        workload(pod_spec={"serviceAccountName": "web"}),
        service_account("web", "shop"),
        _default_sa_bound(),
        role_binding(
            "web-read",
            "shop",
            role_kind="ClusterRole",
            role_name="view",
            subjects=[sa_subject("web", "shop")],
        ),
    ]
    assert _run("k8s.default-service-account", docs) == []
