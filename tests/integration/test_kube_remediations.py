"""Kubernetes remediations end to end: the real client against the fake API server, a real database.

Request -> approval by someone else -> re-plan and hash check -> dry run -> guarded patch ->
rollout watched -> verified (or rolled back) -> every step in a hash chain that verifies.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from okeguard.audit.types import utcnow
from okeguard.config import RemediationConfig
from okeguard.remediations import workflow
from okeguard.remediations.engine import SimulatedCrash, StepFailed
from okeguard.remediations.kube_writer import open_kube_writer
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_chain_ok,
    held_by_another_run,
    live_cluster,
    reconcile_after_lease,
    request_actions,
    request_events,
    request_row,
)
from tests.unit.factories import bare_container, namespace, workload

DEPLOY_PATH = "/apis/apps/v1/namespaces/shop/deployments/web"
FAST = RemediationConfig(poll_interval_seconds=0.01, rollout_timeout_seconds=5)


def _web() -> dict[str, Any]:
    doc = workload(
        containers=[bare_container("web", image="fra.ocir.io/shop/web:1.2")],
        labels={"app": "web"},
    )
    doc["spec"]["replicas"] = 2
    return doc


@pytest.fixture
def live(kube_api: FakeKubeApi) -> LiveCluster:
    kube_api.add(namespace("shop"), _web())
    return live_cluster(kube_api, FAST)


def _plan(live: LiveCluster, check_id: str) -> Plan:
    inventory = live.read()
    finding = next(f for f in live.findings(inventory, (check_id,)) if f.status.value == "open")
    return plan_finding(finding, inventory, FAST)


def _template(api: FakeKubeApi) -> dict[str, Any]:
    return copy.deepcopy(api.get_object("Deployment", "web", "shop")["spec"]["template"])


def test_a_fix_is_requested_approved_applied_and_verified(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    plan = _plan(live, "k8s.run-as-root")
    request_id = approved(database, plan, settings=FAST)
    kube_api.reset_requests()
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    container = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    patches = kube_api.requests_to(DEPLOY_PATH, "PATCH")
    assert [p.query.get("dryRun") for p in patches] == [["All"], None]
    assert all(p.query["fieldManager"] == ["okeguard"] for p in patches)
    assert all(p.content_type == "application/json-patch+json" for p in patches)
    assert (
        patches[1].body[0]["op"] == "test"
        and patches[1].body[0]["path"] == "/metadata/resourceVersion"
    )
    assert patches[1].body == plan.operations[0].params["patch"]  # what was approved is what ran
    assert request_actions(database, request_id) == [
        "remediation.proposed",
        "remediation.pending-approval",
        "remediation.approved",
        "remediation.replanned",
        "remediation.applying",
        "remediation.step.started",
        "remediation.step.dry-run",
        "remediation.step.applied",
        "remediation.verified",
        "remediation.applied",
    ]
    request = request_row(database, request_id)
    assert (request.requester, request.approver, request.state) == ("alice", "bob", "applied")
    assert not [
        f for f in live.findings(live.read(), ("k8s.run-as-root",)) if f.status.value == "open"
    ]
    assert_chain_ok(database)


def test_a_crash_looping_rollout_is_rolled_back(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template(kube_api)
    kube_api.set_rollout("Deployment", "shop", "web", "crashloop")
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert result.state == "rolled-back"
    assert result.reason is not None and "CrashLoopBackOff" in result.reason
    assert _template(kube_api) == before
    actions = request_actions(database, request_id)
    assert actions[-3:] == [
        "remediation.verify-failed",
        "remediation.step.rolled-back",
        "remediation.rolled-back",
    ]
    assert_chain_ok(database)


def test_a_rollout_that_never_finishes_is_rolled_back_after_the_timeout(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template(kube_api)
    kube_api.set_rollout("Deployment", "shop", "web", "stuck", after=10_000)
    slow = RemediationConfig(poll_interval_seconds=0.01, rollout_timeout_seconds=1)
    live.config = live.config.model_copy(update={"remediation": slow})
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert result.state == "rolled-back"
    assert result.reason is not None and "did not finish within 1 s" in result.reason
    assert _template(kube_api) == before


def test_a_target_changed_since_approval_is_refused_and_nothing_written(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    with kube_api._lock:
        doc = kube_api.objects["Deployment"][0]
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = "fra.ocir.io/shop/web:1.3"
        doc["metadata"]["resourceVersion"] = "99999"
    kube_api.reset_requests()
    with pytest.raises(workflow.Refused, match="target changed since approval"):
        workflow.apply_request(database.sessions, request_id, "bob", live)
    assert not [r for r in kube_api.requests if r.method != "GET"]
    assert request_row(database, request_id).state == "superseded"
    assert request_actions(database, request_id)[-3:] == [
        "remediation.replanned",
        "remediation.superseded",
        "remediation.refused",
    ]
    assert_chain_ok(database)


def test_a_stale_resource_version_at_write_time_writes_nothing(
    kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    plan = _plan(live, "k8s.run-as-root")
    patch = plan.operations[0].params["patch"]
    with kube_api._lock:
        kube_api.objects["Deployment"][0]["metadata"]["resourceVersion"] = "1"
    writer = open_kube_writer("fake", kubeconfig=str(kube_api.kubeconfig_path))
    before = _template(kube_api)
    with pytest.raises(StepFailed, match="refused") as caught:
        writer.patch("Deployment", "shop", "web", patch)
    assert caught.value.wrote_nothing
    assert _template(kube_api) == before


def test_an_applied_fix_is_rolled_back_on_request(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template(kube_api)
    request_id = approved(database, _plan(live, "k8s.privilege-escalation"), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    assert _template(kube_api) != before
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert result.state == "rolled-back"
    assert _template(kube_api) == before
    assert request_actions(database, request_id)[-3:] == [
        "remediation.rollback-started",
        "remediation.step.rolled-back",
        "remediation.rolled-back",
    ]
    with pytest.raises(workflow.Refused, match="only an applied request"):
        workflow.rollback_request(database.sessions, request_id, "carol", live)


def test_a_rollback_refuses_to_overwrite_a_later_change(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    workflow.apply_request(database.sessions, request_id, "bob", live)
    with kube_api._lock:
        sc = kube_api.objects["Deployment"][0]["spec"]["template"]["spec"]["containers"][0][
            "securityContext"
        ]
        sc["runAsUser"] = 4242
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert result.state == "failed"
    assert _template(kube_api)["spec"]["containers"][0]["securityContext"]["runAsUser"] == 4242
    assert "remediation.step.rollback-failed" in request_actions(database, request_id)


def test_a_rollback_is_refused_while_another_run_holds_the_request(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    fixed = _template(kube_api)
    held_by_another_run(database, request_id, utcnow() + timedelta(seconds=30))
    with pytest.raises(workflow.Refused, match="another run holds it"):
        workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert _template(kube_api) == fixed
    assert request_row(database, request_id).state == "applied"


def test_a_rollback_cut_short_is_finished_by_reconcile(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    """A rollback that claimed the request and died: once its lease ran out, reconcile undoes
    what is still in effect and settles the request rolled-back."""
    before = _template(kube_api)
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    held_by_another_run(database, request_id, utcnow() - timedelta(seconds=1))
    [result] = workflow.reconcile(database.sessions, "okeguard-bot", lambda name: live)
    assert (result.request_id, result.state) == (request_id, "rolled-back")
    assert _template(kube_api) == before
    stored = request_row(database, request_id)
    assert (stored.state, stored.owner, stored.lease_until) == ("rolled-back", None, None)
    assert_chain_ok(database)


def test_a_default_deny_policy_is_created_and_rolled_back(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    request_id = approved(database, _plan(live, "k8s.missing-network-policy"), settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    policy = kube_api.get_object("NetworkPolicy", "okeguard-default-deny-ingress", "shop")
    assert policy["metadata"]["labels"]["okeguard.io/request"] == str(request_id)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert (
        workflow.rollback_request(database.sessions, request_id, "carol", live).state
        == "rolled-back"
    )
    with pytest.raises(KeyError):
        kube_api.get_object("NetworkPolicy", "okeguard-default-deny-ingress", "shop")


@pytest.mark.parametrize("check_id", ["k8s.run-as-root", "k8s.missing-network-policy"])
def test_a_crash_after_the_last_write_is_settled_as_applied(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster, check_id: str
) -> None:
    request_id = approved(database, _plan(live, check_id), settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    assert request_row(database, request_id).state == "applying"
    [result] = reconcile_after_lease(database, live, actor="okeguard-bot")
    assert (result.request_id, result.state) == (request_id, "applied")
    assert request_row(database, request_id).state == "applied"
    assert_chain_ok(database)


def test_a_crash_before_an_unhealthy_rollout_is_reconciled_by_rolling_back(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template(kube_api)
    kube_api.set_rollout("Deployment", "shop", "web", "image-pull")
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    [result] = reconcile_after_lease(database, live, actor="okeguard-bot")
    assert result.state == "rolled-back"
    assert _template(kube_api) == before
    actions = request_actions(database, request_id)
    assert "remediation.reconcile-started" in actions and "remediation.verify-failed" in actions
    assert_chain_ok(database)


def test_a_server_error_on_the_write_fails_the_request_and_writes_nothing(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template(kube_api)
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    kube_api.fail(DEPLOY_PATH, 500, method="PATCH")
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert result.state == "failed"
    assert result.reason is not None and "500" in result.reason
    assert _template(kube_api) == before
    assert "remediation.step.failed" in request_actions(database, request_id)
    assert reconcile_after_lease(database, live, actor="okeguard-bot") == []


def test_refusals_are_audited(database: Database, live: LiveCluster) -> None:
    plan = _plan(live, "k8s.run-as-root")
    request = workflow.request_fix(database.sessions, plan, "alice", FAST)
    with pytest.raises(workflow.Refused, match="cannot approve their own"):
        workflow.decide(
            database.sessions, request.id, "alice", FAST, approve=True, plan_hash=plan.hash
        )
    with pytest.raises(workflow.Refused, match="may not approve"):
        workflow.decide(
            database.sessions,
            request.id,
            "mallory",
            FAST,
            approve=True,
            authorised=lambda who, _: who in {"bob"},
        )
    with pytest.raises(workflow.Refused, match="plan hash"):
        workflow.decide(
            database.sessions, request.id, "bob", FAST, approve=True, plan_hash="0" * 12
        )
    with pytest.raises(workflow.Refused, match="not approved"):
        workflow.apply_request(database.sessions, request.id, "bob", live)
    workflow.decide(database.sessions, request.id, "bob", FAST, approve=True, plan_hash=plan.hash)
    with pytest.raises(workflow.Refused, match="not pending approval"):
        workflow.decide(
            database.sessions, request.id, "carol", FAST, approve=True, plan_hash=plan.hash
        )
    refusals = [
        e for e in request_events(database, request.id) if e["action"] == "remediation.refused"
    ]
    assert [e["actor"] for e in refusals] == ["alice", "mallory", "bob", "bob", "carol"]
    assert_chain_ok(database)


def test_an_expired_request_cannot_be_approved(database: Database, live: LiveCluster) -> None:
    plan = _plan(live, "k8s.run-as-root")
    request = workflow.request_fix(
        database.sessions, plan, "alice", FAST, now=utcnow() - timedelta(hours=25)
    )
    with pytest.raises(workflow.Refused, match="expired"):
        workflow.decide(
            database.sessions, request.id, "bob", FAST, approve=True, plan_hash=plan.hash
        )
    assert request_row(database, request.id).state == "expired"


def test_self_approval_can_be_allowed_per_remediation(
    database: Database, live: LiveCluster
) -> None:
    plan = _plan(live, "k8s.run-as-root")
    lenient = RemediationConfig(allow_self_approval=("add-security-context",))
    request = workflow.request_fix(database.sessions, plan, "alice", lenient)
    assert (
        workflow.decide(
            database.sessions, request.id, "alice", lenient, approve=True, plan_hash=plan.hash
        ).state
        == "approved"
    )


def test_two_simultaneous_approvals_apply_once(database: Database, live: LiveCluster) -> None:
    from concurrent.futures import ThreadPoolExecutor

    plan = _plan(live, "k8s.run-as-root")
    request = workflow.request_fix(database.sessions, plan, "alice", FAST)

    def approve(who: str) -> str:
        try:
            return workflow.decide(
                database.sessions, request.id, who, FAST, approve=True, plan_hash=plan.hash
            ).state
        except workflow.Refused as exc:
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(approve, ["bob", "carol", "dave", "erin"]))
    assert outcomes.count("approved") == 1, outcomes
    approvals = [
        e for e in request_events(database, request.id) if e["action"] == "remediation.approved"
    ]
    assert len(approvals) == 1


def test_no_secret_value_reaches_the_audit_trail(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    """The Deployment carries a literal password in env: it is redacted before planning."""
    with kube_api._lock:
        c = kube_api.objects["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]
        c["env"] = [{"name": "DB_PASSWORD", "value": "hunter2-very-secret"}]
    request_id = approved(database, _plan(live, "k8s.run-as-root"), settings=FAST)
    workflow.apply_request(database.sessions, request_id, "bob", live)
    dump = json.dumps([e["payload"] for e in request_events(database, request_id)])
    plan_text = json.dumps(request_row(database, request_id).plan)
    assert "hunter2" not in dump and "hunter2" not in plan_text
    # the live object keeps its value: the patch never touched env
    env = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert env == [{"name": "DB_PASSWORD", "value": "hunter2-very-secret"}]


def test_the_kubeconfig_path_is_used(tmp_path: Path, kube_api: FakeKubeApi) -> None:
    writer = open_kube_writer("fake", kubeconfig=str(kube_api.kubeconfig_path))
    assert writer.get("Deployment", "shop", "nothing") is None
    writer.close()
