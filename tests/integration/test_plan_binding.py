"""What is approved is what runs (issue 11, part 2), attacked on SQLite and PostgreSQL.

An approval names the whole plan hash; apply hashes the stored plan again and compares it with
the hash the approval event in the audit chain records, so a plan rewritten in the database
(with or without its ``plan_hash`` column) is refused and nothing reaches the cluster.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import text, update

from okeguard.audit.models import RemediationRequest
from okeguard.audit.stores import plan_hash as hash_of
from okeguard.config import RemediationConfig
from okeguard.remediations import workflow
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    live_cluster,
    request_events,
    request_row,
)
from tests.unit.factories import bare_container, namespace, workload

FAST = RemediationConfig(poll_interval_seconds=0.01, rollout_timeout_seconds=5)
DEPLOY_PATH = "/apis/apps/v1/namespaces/shop/deployments/web"


@pytest.fixture
def live(kube_api: FakeKubeApi) -> LiveCluster:
    web = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1.2")])
    kube_api.add(namespace("shop"), web)
    return live_cluster(kube_api, FAST)


def _plan(live: LiveCluster) -> Plan:
    inventory = live.read()
    finding = next(f for f in live.findings(inventory, ("k8s.run-as-root",)))
    return plan_finding(finding, inventory, FAST)


def _pending(database: Database, plan: Plan) -> int:
    return workflow.request_fix(database.sessions, plan, "alice", FAST).id


def _refusals(database: Database, request_id: int) -> list[str]:
    return [
        e["payload"]["reason"]
        for e in request_events(database, request_id)
        if e["action"] == "remediation.refused"
    ]


@pytest.mark.parametrize(
    "named",
    [None, "", "e", "E", "0" * 12, "PREFIX", "x" * 64, "0" * 63, "0" * 65, " ", "0" * 64],
)
def test_an_approval_that_does_not_name_the_whole_hash_is_refused_and_audited(
    database: Database, live: LiveCluster, named: str | None
) -> None:
    plan = _plan(live)
    request_id = _pending(database, plan)
    if named == "PREFIX":
        named = plan.hash[:63]  # every digit but the last: refused by length, not by luck
    with pytest.raises(workflow.Refused):
        workflow.decide(database.sessions, request_id, "bob", FAST, approve=True, plan_hash=named)
    assert request_row(database, request_id).state == "pending-approval"
    assert len(_refusals(database, request_id)) == 1


def test_the_whole_hash_approves_and_the_approval_event_records_it(
    database: Database, live: LiveCluster
) -> None:
    plan = _plan(live)
    request_id = _pending(database, plan)
    workflow.decide(
        database.sessions, request_id, "bob", FAST, approve=True, plan_hash=plan.hash.upper()
    )
    [approval] = [
        e for e in request_events(database, request_id) if e["action"] == "remediation.approved"
    ]
    assert approval["payload"]["plan_hash"] == plan.hash
    assert approval["actor"] == "bob"


def _rewrite(database: Database, request_id: int, *, with_hash_column: bool) -> None:
    """An attacker with write access to the database swaps the approved plan for a worse one."""
    with database.sessions.begin() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        evil: dict[str, Any] = copy.deepcopy(request.plan)
        evil["operations"][0]["params"]["patch"].append(
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True}
        )
        values: dict[str, Any] = {"plan": evil}
        if with_hash_column:
            values["plan_hash"] = hash_of(evil)
        session.execute(
            update(RemediationRequest).where(RemediationRequest.id == request_id).values(**values)
        )


@pytest.mark.parametrize("with_hash_column", [False, True])
def test_a_plan_rewritten_in_the_database_after_approval_is_never_applied(
    database: Database, live: LiveCluster, kube_api: FakeKubeApi, with_hash_column: bool
) -> None:
    plan = _plan(live)
    request_id = approved(database, plan, settings=FAST)
    _rewrite(database, request_id, with_hash_column=with_hash_column)
    before = kube_api.get_object("Deployment", "web", "shop")
    with pytest.raises(workflow.Refused, match="not the plan that was approved"):
        workflow.apply_request(database.sessions, request_id, "bob", live)
    assert kube_api.get_object("Deployment", "web", "shop") == before
    assert not [r for r in kube_api.requests_to(DEPLOY_PATH) if r.method != "GET"]
    assert request_row(database, request_id).state == "superseded"
    assert any("database was changed" in r for r in _refusals(database, request_id))


def test_a_plan_rewritten_before_approval_is_caught_by_the_approver_hash_and_at_apply(
    database: Database, live: LiveCluster, kube_api: FakeKubeApi
) -> None:
    """Rewritten with its hash column while pending: the approver names the hash they saw in
    Slack (the original), so the approval is refused; naming the new hash does not help either,
    because the live re-plan gives the original plan again."""
    plan = _plan(live)
    request_id = _pending(database, plan)
    _rewrite(database, request_id, with_hash_column=True)
    with pytest.raises(workflow.Refused, match="not this request's"):
        workflow.decide(
            database.sessions, request_id, "bob", FAST, approve=True, plan_hash=plan.hash
        )
    forged_hash = request_row(database, request_id).plan_hash
    workflow.decide(database.sessions, request_id, "bob", FAST, approve=True, plan_hash=forged_hash)
    with pytest.raises(workflow.Refused, match="target changed"):
        workflow.apply_request(database.sessions, request_id, "bob", live)
    assert not [r for r in kube_api.requests_to(DEPLOY_PATH) if r.method != "GET"]


def test_an_approval_forged_by_a_direct_update_is_not_applied(
    database: Database, live: LiveCluster, kube_api: FakeKubeApi
) -> None:
    """state = 'approved' written by SQL, with no approval event in the chain: apply refuses."""
    plan = _plan(live)
    request_id = _pending(database, plan)
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE remediation_requests SET state = 'approved', approver = 'bob' WHERE id = :id"
            ),
            {"id": request_id},
        )
    with pytest.raises(workflow.Refused, match="the approval named no hash"):
        workflow.apply_request(database.sessions, request_id, "mallory", live)
    assert not [r for r in kube_api.requests_to(DEPLOY_PATH) if r.method != "GET"]


def test_the_plan_json_roundtrip_keeps_the_hash(live: LiveCluster) -> None:
    """The stored JSON hashes to the plan's hash: the comparison at apply is not vacuous."""
    plan = _plan(live)
    stored = json.loads(json.dumps(plan.to_dict()))
    assert hash_of(stored) == plan.hash == Plan.from_dict(stored).hash
