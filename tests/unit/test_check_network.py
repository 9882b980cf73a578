"""Spec tests for k8s.missing-network-policy (CHECKS.md).

Written from the specification, not from okeguard/checks/network.py. Inventories are
whole-cluster, the view in which "no NetworkPolicy selects these pods" is meaningful.
"""

from __future__ import annotations

import pytest

from tests.helpers import config
from tests.unit.factories import (
    assert_finding,
    config_map,
    namespace,
    network_policy,
    one,
    pod,
    run,
    workload,
)

CHECK = "k8s.missing-network-policy"


def _run(docs: list[dict], **kwargs) -> list:
    return run(CHECK, docs, whole_cluster=True, **kwargs)


def test_namespace_with_workloads_and_no_policy() -> None:
    docs = [namespace("shop"), workload("Deployment", "web", "shop")]
    assert_finding(
        one(_run(docs)),
        check_id=CHECK,
        severity="medium",
        kind="Namespace",
        namespace=None,
        name="shop",
        remediation="add-default-deny-policy",
        mentions=("shop",),
    )


@pytest.mark.parametrize(
    ("exposure", "severity"), [("private", "medium"), ("internal", "medium"), ("public", "high")]
)
def test_severity_follows_exposure(exposure: str, severity: str) -> None:
    docs = [namespace("shop"), workload("Deployment", "web", "shop")]
    assert one(_run(docs, config=config(exposure=exposure))).severity.value == severity


def test_namespace_object_not_in_inventory_still_reported() -> None:
    # Left open by CHECKS.md: a namespace is known from its workloads even when the Namespace
    # object itself was not supplied (e.g. manifests); kubescape reports it all the same.
    f = one(_run([workload("Deployment", "web", "shop")]))
    assert (f.resource.kind, f.resource.namespace, f.resource.name) == ("Namespace", None, "shop")


@pytest.mark.parametrize(
    "policy_types",
    [
        ["Ingress"],
        ["Ingress", "Egress"],
        None,
    ],  # None: Kubernetes defaults policyTypes to include Ingress
    ids=["ingress", "ingress-egress", "unset"],
)
def test_default_deny_with_empty_pod_selector_covers_all(policy_types: list[str] | None) -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        workload("StatefulSet", "db", "shop"),
        network_policy("default-deny", "shop", policy_types=policy_types),
    ]
    assert _run(docs) == []


def test_egress_only_policy_does_not_cover_ingress() -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        network_policy("deny-egress", "shop", policy_types=["Egress"]),
    ]
    assert one(_run(docs)).resource.name == "shop"


def test_policy_in_another_namespace_does_not_cover() -> None:
    docs = [
        namespace("shop"),
        namespace("billing"),
        workload("Deployment", "web", "shop"),
        workload("Deployment", "api", "billing"),
        network_policy("default-deny", "billing", policy_types=["Ingress"]),
    ]
    assert [f.resource.name for f in _run(docs)] == ["shop"]


def test_match_labels_selecting_every_workload_covers() -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop", labels={"app": "web", "tier": "front"}),
        network_policy(
            "web", "shop", pod_selector={"matchLabels": {"app": "web"}}, policy_types=["Ingress"]
        ),
    ]
    assert _run(docs) == []


def test_match_labels_missing_a_workload_flags_the_namespace() -> None:
    # Left open: "no NetworkPolicy selects those pods" is read per workload; one unprotected
    # workload leaves the namespace open (kubescape flags each unselected workload).
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        workload("Deployment", "api", "shop"),
        network_policy(
            "web", "shop", pod_selector={"matchLabels": {"app": "web"}}, policy_types=["Ingress"]
        ),
    ]
    f = one(_run(docs))
    assert (f.resource.kind, f.resource.name) == ("Namespace", "shop")


def test_match_labels_selecting_nothing_does_not_cover() -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        network_policy(
            "other",
            "shop",
            pod_selector={"matchLabels": {"app": "other"}},
            policy_types=["Ingress"],
        ),
    ]
    assert len(_run(docs)) == 1


@pytest.mark.parametrize(
    ("expressions", "covered"),
    [
        ([{"key": "app", "operator": "In", "values": ["web", "api"]}], True),
        ([{"key": "app", "operator": "Exists"}], True),
        ([{"key": "app", "operator": "NotIn", "values": ["api"]}], False),  # api not selected
        ([{"key": "app", "operator": "In", "values": ["web"]}], False),
        ([{"key": "legacy", "operator": "DoesNotExist"}], True),
    ],
)
def test_match_expressions(expressions: list[dict], covered: bool) -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        workload("Deployment", "api", "shop"),
        network_policy(
            "sel", "shop", pod_selector={"matchExpressions": expressions}, policy_types=["Ingress"]
        ),
    ]
    assert (len(_run(docs)) == 0) is covered


def test_two_policies_together_cover_every_workload() -> None:
    docs = [
        namespace("shop"),
        workload("Deployment", "web", "shop"),
        workload("Deployment", "api", "shop"),
        network_policy(
            "web", "shop", pod_selector={"matchLabels": {"app": "web"}}, policy_types=["Ingress"]
        ),
        network_policy(
            "api", "shop", pod_selector={"matchLabels": {"app": "api"}}, policy_types=["Ingress"]
        ),
    ]
    assert _run(docs) == []


def test_bare_pod_labels_are_matched() -> None:
    docs = [
        namespace("jobs"),
        pod("runner", "jobs", labels={"role": "runner"}),
        network_policy(
            "runner",
            "jobs",
            pod_selector={"matchLabels": {"role": "runner"}},
            policy_types=["Ingress"],
        ),
    ]
    assert _run(docs) == []


def test_namespace_without_workloads_is_not_reported() -> None:
    docs = [namespace("empty"), namespace("config-only"), config_map("settings", "config-only")]
    assert _run(docs) == []


def test_one_finding_per_namespace_however_many_workloads() -> None:
    docs = [namespace("shop")] + [workload("Deployment", f"svc{i}", "shop") for i in range(3)]
    assert one(_run(docs)).resource.name == "shop"


def test_namespace_exemption_annotation() -> None:
    docs = [
        namespace(
            "sandbox",
            annotations={
                "okeguard.io/exempt": CHECK,
                "okeguard.io/exempt-reason": "throwaway experiments",
            },
        ),
        workload("Deployment", "toy", "sandbox"),
    ]
    f = one(_run(docs))
    assert (f.status.value, f.exempt_reason, f.resource.name) == (
        "exempt",
        "throwaway experiments",
        "sandbox",
    )
