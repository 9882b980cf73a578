"""``add-default-deny-policy`` end to end: the real ``kubernetes`` client against the fake API
server, a real database (SQLite and PostgreSQL).

Preview -> request -> approval by someone else naming the full plan hash -> re-plan -> dry run ->
create -> verified; crashes settled by ``reconcile``; rollbacks that delete only what the request
created; a target changed since approval writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from okeguard.config import RemediationConfig
from okeguard.remediations import workflow
from okeguard.remediations.engine import SimulatedCrash
from okeguard.remediations.kube_writer import open_kube_writer
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.network_policy import POLICY_NAME
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_audit_ok,
    live_cluster,
    reconcile_after_lease,
    request_actions,
    request_row,
    someone_patches,
)
from tests.unit.factories import bare_container, namespace, network_policy, workload
from tests.unit.oke_factories import service

CHECK = "k8s.missing-network-policy"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
FAST = RemediationConfig(poll_interval_seconds=0.01, rollout_timeout_seconds=5)
# Someone else's policy in the namespace: it covers only the metrics pods, so the finding stays.
METRICS = network_policy(
    "allow-metrics", "shop", pod_selector={"matchLabels": {"app": "metrics"}}, ingress=[{}]
)
DEFAULT_DENY_SPEC = {
    "podSelector": {},
    "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"podSelector": {}}]}],
}


@pytest.fixture
def live(kube_api: FakeKubeApi) -> LiveCluster:
    """shop (web, plus someone's allow-metrics policy) and billing, both without default deny."""
    kube_api.add(
        namespace("shop"),
        workload(containers=[bare_container("web")], labels={"app": "web"}),
        METRICS,
        namespace("billing"),
        workload(name="ledger", namespace="billing", labels={"app": "ledger"}),
    )
    return live_cluster(kube_api, FAST)


# -- helpers -----------------------------------------------------------------------------------
def _open(live: LiveCluster) -> set[str]:
    """The namespaces the check reports open on the live cluster now."""
    return {
        f.resource.name for f in live.findings(live.read(), (CHECK,)) if f.status.value == "open"
    }


def _plan(live: LiveCluster) -> Plan:
    inventory = live.read()
    [finding] = [f for f in live.findings(inventory, (CHECK,)) if f.resource.name == "shop"]
    return plan_finding(finding, inventory, FAST)


def _policy(kube_api: FakeKubeApi, name: str = POLICY_NAME) -> dict[str, Any] | None:
    try:
        return kube_api.get_object("NetworkPolicy", name, "shop")
    except KeyError:
        return None


def _writes(kube_api: FakeKubeApi) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in kube_api.requests if r.method != "GET"]


class _Writer:
    """The real writer, with ``before_create(dry_run)`` called before each create."""

    def __init__(self, inner: Any, before_create: Callable[[bool], None]) -> None:
        self.inner, self.before_create = inner, before_create

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, kind: str, ns: str | None, body: Any, *, dry_run: bool = False) -> Any:
        self.before_create(dry_run)
        return self.inner.create(kind, ns, body, dry_run=dry_run)


# == preview -> request -> approve -> apply ===================================================
def test_the_policy_created_is_exactly_the_planned_one_and_the_finding_goes(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    assert _open(live) == {"shop", "billing"}
    plan = _plan(live)
    [op] = plan.operations
    body = op.params["body"]
    assert (op.action, dict(op.target)) == (
        "k8s.create",
        {"kind": "NetworkPolicy", "namespace": "shop", "name": POLICY_NAME},
    )
    assert body["spec"] == DEFAULT_DENY_SPEC  # every pod, ingress only, egress untouched
    assert f"+++ NetworkPolicy shop/{POLICY_NAME} (planned)" in plan.diff
    request = workflow.request_fix(database.sessions, plan, "alice", FAST)
    for who, named, why in [
        ("alice", plan.hash, "cannot approve their own"),
        ("bob", plan.hash[:12], "not a full plan hash"),
    ]:
        with pytest.raises(workflow.Refused, match=why):
            workflow.decide(database.sessions, request.id, who, FAST, approve=True, plan_hash=named)
    assert len(plan.hash) == 64
    workflow.decide(database.sessions, request.id, "bob", FAST, approve=True, plan_hash=plan.hash)
    metrics = _policy(kube_api, "allow-metrics")
    kube_api.reset_requests()
    result = workflow.apply_request(database.sessions, request.id, "bob", live)
    assert (result.state, result.reason, result.plan_hash) == ("applied", None, plan.hash)
    # one dry run, one create, nothing else written
    assert _writes(kube_api) == [("POST", POLICIES), ("POST", POLICIES)]
    posts = kube_api.requests_to(POLICIES, "POST")
    assert [p.query.get("dryRun") for p in posts] == [["All"], None]
    labelled = {**body["metadata"]["labels"], "okeguard.io/request": str(request.id)}
    for post in posts:
        assert post.body["spec"] == body["spec"]
        assert post.body["metadata"]["labels"] == labelled
    stored = _policy(kube_api)
    assert stored is not None
    assert stored["spec"] == DEFAULT_DENY_SPEC and "egress" not in stored["spec"]
    assert stored["metadata"]["labels"] == labelled
    assert stored["metadata"]["annotations"] == body["metadata"]["annotations"]
    assert _policy(kube_api, "allow-metrics") == metrics
    assert _open(live) == {"billing"}  # shop fixed, and only shop
    assert request_actions(database, request.id)[-7:] == [
        "remediation.replanned",
        "remediation.applying",
        "remediation.step.started",
        "remediation.step.dry-run",
        "remediation.step.applied",
        "remediation.verified",
        "remediation.applied",
    ]
    stored_request = request_row(database, request.id)
    assert (stored_request.requester, stored_request.approver) == ("alice", "bob")
    assert_audit_ok(database)


# == crashes, settled by reconcile ============================================================
@pytest.mark.parametrize(
    "meanwhile", ["nothing", "someone deletes the policy", "someone edits the policy"]
)
def test_a_crash_after_the_create_is_settled_applied_only_if_the_policy_is_there(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster, meanwhile: str
) -> None:
    request_id = approved(database, _plan(live), settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    assert request_row(database, request_id).state == "applying"
    assert "remediation.step.applied" not in request_actions(database, request_id)
    theirs = [{"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}]}]
    if meanwhile == "someone deletes the policy":
        created = _policy(kube_api)
        assert created is not None
        writer = open_kube_writer("fake", kubeconfig=live.cluster.kubeconfig)
        writer.delete("NetworkPolicy", "shop", POLICY_NAME, uid=created["metadata"]["uid"])
        writer.close()
    elif meanwhile == "someone edits the policy":
        someone_patches(live, "NetworkPolicy", POLICY_NAME, {"spec": {"ingress": theirs}})
    [result] = reconcile_after_lease(database, live)
    expected = {"nothing": "applied", "someone edits the policy": "failed"}.get(
        meanwhile, "rolled-back"
    )
    assert (result.request_id, result.state) == (request_id, expected)
    assert request_row(database, request_id).state == expected
    actions = request_actions(database, request_id)
    if expected == "failed":  # their edit is kept, never deleted or settled as ours
        assert "remediation.rollback-incomplete" in actions
        kept = _policy(kube_api)
        assert kept is not None and kept["spec"]["ingress"] == theirs
    elif expected == "applied":
        assert actions[-2:] == ["remediation.verified", "remediation.applied"]
        assert _open(live) == {"billing"}
    else:
        assert "remediation.step.not-in-effect" in actions
        assert _policy(kube_api) is None and _open(live) == {"shop", "billing"}
    # Settled for good (failed waits for a person).
    assert reconcile_after_lease(database, live) == []
    assert_audit_ok(database)


def test_a_crash_before_the_create_landed_is_reconciled_as_nothing_done(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    """The run died between its dry run and its POST: only ``step.started`` is on record."""

    def die(dry_run: bool) -> None:
        if not dry_run:
            raise SimulatedCrash("died before the POST")

    request_id = approved(database, _plan(live), settings=FAST)
    backends = live.backends()
    backends.kube = _Writer(backends.kube, die)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, backends=backends)
    assert _policy(kube_api) is None
    kube_api.reset_requests()
    [result] = reconcile_after_lease(database, live)
    assert (result.request_id, result.state) == (request_id, "rolled-back")
    assert _writes(kube_api) == []  # nothing to undo, nothing deleted
    assert "remediation.step.not-in-effect" in request_actions(database, request_id)
    assert _open(live) == {"shop", "billing"}
    assert_audit_ok(database)


# == rollbacks ================================================================================
def test_a_rollback_deletes_exactly_the_created_policy_and_the_finding_comes_back(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    created = _policy(kube_api)
    assert created is not None
    metrics = _policy(kube_api, "allow-metrics")
    kube_api.reset_requests()
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert result.state == "rolled-back"
    assert _writes(kube_api) == [("DELETE", f"{POLICIES}/{POLICY_NAME}")]
    [delete] = kube_api.requests_to(f"{POLICIES}/{POLICY_NAME}", "DELETE")
    assert delete.body["preconditions"]["uid"] == created["metadata"]["uid"]
    assert _policy(kube_api) is None
    assert _policy(kube_api, "allow-metrics") == metrics
    assert _open(live) == {"shop", "billing"}
    assert request_actions(database, request_id)[-3:] == [
        "remediation.rollback-started",
        "remediation.step.rolled-back",
        "remediation.rolled-back",
    ]
    with pytest.raises(workflow.Refused, match="only an applied request"):
        workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert_audit_ok(database)


def test_a_rollback_after_someone_edited_the_policy_is_refused_and_fails(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    # Someone admits the ingress controller's namespace through our policy.
    theirs = [
        {"from": [{"podSelector": {}}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}]},
    ]
    someone_patches(live, "NetworkPolicy", POLICY_NAME, {"spec": {"ingress": theirs}})
    kube_api.reset_requests()
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert result.state == "failed", result.reason
    assert result.reason is not None and "manual action needed" in result.reason
    assert f"NetworkPolicy shop/{POLICY_NAME}" in result.reason
    assert _writes(kube_api) == []
    kept = _policy(kube_api)
    assert kept is not None and kept["spec"]["ingress"] == theirs
    actions = request_actions(database, request_id)
    assert "remediation.rollback-incomplete" in actions
    assert "remediation.rolled-back" not in actions
    stored = request_row(database, request_id)
    assert (stored.state, stored.owner) == ("failed", None)
    assert_audit_ok(database)


# == a target changed between approval and apply ==============================================
def _someone_denies_by_default(kube_api: FakeKubeApi) -> None:
    kube_api.add(network_policy("deny-all", "shop", policy_types=["Ingress"]))


def _namespace_gone(kube_api: FakeKubeApi) -> None:
    with kube_api._lock:  # a namespace deletion takes everything in it along
        for kind, items in kube_api.objects.items():
            items[:] = [
                o
                for o in items
                if not (kind == "Namespace" and o["metadata"]["name"] == "shop")
                and o["metadata"].get("namespace") != "shop"
            ]


def _our_name_taken(kube_api: FakeKubeApi) -> None:
    kube_api.add(network_policy(POLICY_NAME, "shop", policy_types=["Egress"]))


def _load_balancer_added(kube_api: FakeKubeApi) -> None:
    """The approver never saw the risk note this Service brings: the plan is not the same."""
    kube_api.add(service("shop-lb", namespace="shop"))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_someone_denies_by_default, "is no longer present"),
        (_namespace_gone, "is no longer present"),
        (_our_name_taken, f"NetworkPolicy shop/{POLICY_NAME} already exists"),
        (_load_balancer_added, "target changed since approval"),
    ],
)
def test_a_target_changed_since_approval_supersedes_the_request_and_writes_nothing(
    database: Database,
    kube_api: FakeKubeApi,
    live: LiveCluster,
    change: Callable[[FakeKubeApi], None],
    why: str,
) -> None:
    request_id = approved(database, _plan(live), settings=FAST)
    change(kube_api)
    before = _policy(kube_api)
    kube_api.reset_requests()
    with pytest.raises(workflow.Refused, match=why):
        workflow.apply_request(database.sessions, request_id, "bob", live)
    assert _writes(kube_api) == []
    assert _policy(kube_api) == before
    assert request_row(database, request_id).state == "superseded"
    assert request_actions(database, request_id)[-3:] == [
        "remediation.replanned",
        "remediation.superseded",
        "remediation.refused",
    ]
    assert_audit_ok(database)


def test_a_policy_created_by_someone_after_the_replan_is_left_alone(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    """Between the re-plan and the write someone creates the same name: the dry run gets 409,
    nothing is written and nothing of theirs is deleted."""
    theirs = network_policy(POLICY_NAME, "shop", pod_selector={"matchLabels": {"app": "web"}})

    def race(dry_run: bool) -> None:
        if _policy(kube_api) is None:
            kube_api.add(theirs)

    request_id = approved(database, _plan(live), settings=FAST)
    backends = live.backends()
    backends.kube = _Writer(backends.kube, race)
    kube_api.reset_requests()
    result = workflow.apply_request(database.sessions, request_id, "bob", live, backends=backends)
    assert result.state == "failed"
    assert result.reason is not None and "409" in result.reason
    assert [m for m, _ in _writes(kube_api)] == ["POST"]  # the refused dry run only
    kept = _policy(kube_api)
    assert kept is not None and "okeguard.io/request" not in (kept["metadata"].get("labels") or {})
    assert reconcile_after_lease(database, live) == []  # nothing in effect, nothing to settle
    assert _policy(kube_api) is not None
    assert_audit_ok(database)
