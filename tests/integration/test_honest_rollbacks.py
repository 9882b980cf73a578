"""Honest rollbacks (issue 12, part 3): an undo restores exactly what was there, and a request
whose undo was refused ends ``failed`` — naming the objects left as they are — never
``rolled-back``.

The real ``kubernetes`` and ``oci`` clients against the fakes, a real database (SQLite and
PostgreSQL). "Someone else" changes objects through the API, as a person with kubectl would.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from okeguard.audit.types import utcnow
from okeguard.remediations import workflow
from okeguard.remediations.engine import SimulatedCrash, UndoRefused, retry_token
from okeguard.remediations.kube_actions import PatchAction
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.secret_mirror import SyncSecretAction
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import FakeOciApi
from tests.fakes.oci_world import OkeWorld, secret_content
from tests.integration import test_secret_rotation as rotation
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_audit_ok,
    held_by_another_run,
    live_cluster,
    reconcile_after_lease,
    request_actions,
    request_events,
    request_row,
    someone_patches,
)
from tests.integration.test_kube_remediations import FAST as KUBE_FAST
from tests.integration.test_kube_remediations import _web
from tests.integration.test_secret_rotation import FakeLive, _current, _plan
from tests.unit.factories import namespace

live = rotation.live  # the fixture: Kubernetes and the Vault side behind the fakes
STALE = "k8s.stale-secret"
ROTATED_AT = "okeguard.io/rotated-at"
VERSION = "okeguard.io/vault-secret-version"
ROTATED_BY = "okeguard.io/rotated-by"
EARLIER = "2026-03-01T00:00:00Z"  # an earlier rotation, long enough ago to be stale again


# -- helpers -----------------------------------------------------------------------------------
def _secret(kube_api: FakeKubeApi, name: str = "db-1") -> dict[str, Any]:
    return kube_api.get_object("Secret", name, "shop")


def _stale_open(live: FakeLive, name: str) -> bool:
    return any(
        f.resource.name == name and f.status.value == "open"
        for f in live.findings(live.read(), (STALE,))
    )


def _assert_failed_naming(
    database: Database, result: workflow.ApplyResult, objects: list[str]
) -> dict[str, Any]:
    """The request is failed, its reason asks for manual action naming ``objects``, and the
    trail holds one ``remediation.rollback-incomplete`` event naming each step not undone."""
    assert result.state == "failed", result.reason
    assert result.reason is not None and "manual action needed" in result.reason
    for obj in objects:
        assert obj in result.reason
    stored = request_row(database, result.request_id)
    assert (stored.state, stored.owner, stored.lease_until) == ("failed", None, None)
    events = request_events(database, result.request_id)
    actions = [e["action"] for e in events]
    assert "remediation.rolled-back" not in actions
    [incomplete] = [
        e["payload"] for e in events if e["action"] == "remediation.rollback-incomplete"
    ]
    for step in incomplete["not_undone"]:
        assert step["why"] and step["target"]
    return dict(incomplete)


# == 1. rotate-secret: the undo restores the annotations exactly ==============================
@pytest.fixture(params=["absent", "set"])
def earlier(request: pytest.FixtureRequest, live: FakeLive) -> str:
    """The mirror db-1 before the run: never rotated by okeguard, or rotated on ``EARLIER``."""
    if request.param == "set":
        annotations = {ROTATED_AT: EARLIER, VERSION: "2", ROTATED_BY: "okeguard-0-1-earlier"}
        someone_patches(live, "Secret", "db-1", {"metadata": {"annotations": annotations}})
    return str(request.param)


def _rotate_until_rollback(
    how: str, database: Database, live: FakeLive, kube_api: FakeKubeApi
) -> workflow.ApplyResult:
    """Rotate db-1 (its stale-secret finding) and have it undone: by the run itself after a
    failed verification, on request, or by reconcile after a crash."""
    if how == "verify-failed":
        kube_api.set_rollout("Deployment", "shop", "api-1", "crashloop")
    plan = _plan(live, STALE, name="db-1")
    assert [op.action for op in plan.operations][:2] == [
        "vault.new-version",
        "k8s.sync-secret-from-vault",
    ]
    request_id = approved(database, plan, settings=rotation.FAST)
    if how == "verify-failed":
        return workflow.apply_request(database.sessions, request_id, "bob", live)
    if how == "on-request":
        applied = workflow.apply_request(database.sessions, request_id, "bob", live)
        assert applied.state == "applied", applied.reason
        assert not _stale_open(live, "db-1")  # the rotation renewed it
        return workflow.rollback_request(database.sessions, request_id, "carol", live)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=1)
    [settled] = reconcile_after_lease(database, live)
    return settled


@pytest.mark.parametrize("how", ["verify-failed", "on-request", "reconcile"])
def test_undoing_a_rotation_restores_the_secret_and_its_rotated_at_exactly(
    how: str,
    earlier: str,
    database: Database,
    live: FakeLive,
    kube_api: FakeKubeApi,
    oci_api: FakeOciApi,
    world: OkeWorld,
) -> None:
    sid = world.secret_ids[1]
    before = _secret(kube_api)
    assert _stale_open(live, "db-1")
    result = _rotate_until_rollback(how, database, live, kube_api)
    assert result.state == "rolled-back", result.reason
    after = _secret(kube_api)
    assert after["data"] == before["data"] == {"password": secret_content("db-password-1", 2)}
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert after["metadata"]["annotations"].get(ROTATED_AT) == (
        EARLIER if earlier == "set" else None
    )
    assert _current(oci_api, sid) == 2  # the previous Vault version is current again
    assert _stale_open(live, "db-1")  # nothing was rotated, so the finding stays open
    assert_audit_ok(database)


def test_a_mirror_not_holding_the_current_version_is_refused_before_anything_is_written(
    database: Database, live: FakeLive, kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    """Its content could not be restored by a rollback (only Vault versions can), so the
    rotation refuses up front instead of overwriting it."""
    sid = world.secret_ids[1]
    stale = {"data": {"password": secret_content("db-password-1", 1)}}
    someone_patches(live, "Secret", "db-1", stale)
    before = _secret(kube_api)
    request_id = approved(database, _plan(live, STALE, name="db-1"), settings=rotation.FAST)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert result.state == "failed"
    assert result.reason is not None and "Secret shop/db-1" in result.reason
    assert "does not hold" in result.reason
    assert _current(oci_api, sid) == 2 and len(oci_api.secret_versions[sid]) == 2
    assert _secret(kube_api) == before
    assert_audit_ok(database)


# == 2. an undo that is refused ends failed ===================================================
def test_reconcile_fails_a_rotation_whose_mirror_was_changed_after_the_crash(
    database: Database, live: FakeLive, kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    request_id = approved(database, _plan(live, STALE, name="db-1"), settings=rotation.FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=1)
    theirs = {"password": secret_content("someone-else", 1)}
    someone_patches(live, "Secret", "db-1", {"data": theirs})
    [result] = reconcile_after_lease(database, live)
    incomplete = _assert_failed_naming(database, result, ["Secret shop/db-1", "VaultSecret"])
    assert [s["step"] for s in incomplete["not_undone"]] == [1, 0]
    assert _secret(kube_api)["data"] == theirs  # left as it is
    assert _current(oci_api, sid) == 3  # the earlier step is not undone under a later one
    # A second reconcile does not pretend otherwise.
    for settled in reconcile_after_lease(database, live):
        assert settled.state == "failed"
    assert request_row(database, request_id).state == "failed"
    assert_audit_ok(database)


def test_rollback_of_an_applied_rotation_fails_when_vault_moved_on(
    database: Database, live: FakeLive, kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    request_id = approved(database, _plan(live, STALE, name="db-1"), settings=rotation.FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    # Someone makes a version of their own current (their etag changes too).
    version = oci_api.add_secret_version(sid, secret_content("someone-else", 4))
    oci_api.update(sid, currentVersionNumber=version)
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    incomplete = _assert_failed_naming(database, result, ["VaultSecret"])
    assert incomplete["not_undone"][0]["step"] == 0
    assert _current(oci_api, sid) == version
    assert_audit_ok(database)


@pytest.fixture
def web(kube_api: FakeKubeApi) -> LiveCluster:
    kube_api.add(namespace("shop"), _web())
    return live_cluster(kube_api, KUBE_FAST)


def _container(kube_api: FakeKubeApi) -> dict[str, Any]:
    template = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]
    return copy.deepcopy(template["spec"]["containers"][0])


def _web_plan(live: LiveCluster) -> Plan:
    inventory = live.read()
    finding = next(
        f for f in live.findings(inventory, ("k8s.run-as-root",)) if f.status.value == "open"
    )
    return plan_finding(finding, inventory, KUBE_FAST)


def _someone_sets_run_as_user(live: LiveCluster, kube_api: FakeKubeApi) -> dict[str, Any]:
    container = _container(kube_api)
    container["securityContext"]["runAsUser"] = 4242
    patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
    someone_patches(live, "Deployment", "web", patch)
    return _container(kube_api)


def test_reconcile_fails_a_crashed_patch_whose_target_was_changed_since(
    database: Database, kube_api: FakeKubeApi, web: LiveCluster
) -> None:
    request_id = approved(database, _web_plan(web), settings=KUBE_FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", web, crash_after=0)
    theirs = _someone_sets_run_as_user(web, kube_api)
    [result] = reconcile_after_lease(database, web)
    incomplete = _assert_failed_naming(database, result, ["Deployment shop/web"])
    assert [s["step"] for s in incomplete["not_undone"]] == [0]
    assert "changed since" in incomplete["not_undone"][0]["why"]
    assert _container(kube_api) == theirs
    assert "remediation.step.not-in-effect" not in request_actions(database, request_id)
    # Settled: a later reconcile keeps it failed.
    assert reconcile_after_lease(database, web) == []
    assert request_row(database, request_id).state == "failed"
    assert_audit_ok(database)


def test_rollback_of_an_applied_patch_fails_and_names_the_object(
    database: Database, kube_api: FakeKubeApi, web: LiveCluster
) -> None:
    request_id = approved(database, _web_plan(web), settings=KUBE_FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", web).state == "applied"
    theirs = _someone_sets_run_as_user(web, kube_api)
    result = workflow.rollback_request(database.sessions, request_id, "carol", web)
    _assert_failed_naming(database, result, ["Deployment shop/web"])
    assert _container(kube_api) == theirs
    # Reconcile does not turn the failed request into a rolled-back one.
    assert reconcile_after_lease(database, web) == []
    assert request_row(database, request_id).state == "failed"
    assert_audit_ok(database)


def test_a_patch_is_told_apart_never_landed_in_effect_and_changed_since(
    kube_api: FakeKubeApi, web: LiveCluster
) -> None:
    """After a crash the record of a write is lost: the live object alone must say whether the
    patch never landed (nothing to undo), is in effect (undo it), or landed and was changed since
    (refuse: the undo would overwrite someone's change)."""
    op = _web_plan(web).operations[0]
    action = PatchAction()
    backends = web.backends()
    try:
        # Someone touches the object (a label) before our write: never landed, even though the
        # resourceVersion moved on.
        someone_patches(web, "Deployment", "web", {"metadata": {"labels": {"team": "shop"}}})
        assert action.in_effect(op, backends, None, "t") is False
        patch = [o for o in op.params["patch"] if o["path"] != "/metadata/resourceVersion"]
        backends.kube.patch("Deployment", "shop", "web", patch)
        assert action.in_effect(op, backends, None, "t") is True
        _someone_sets_run_as_user(web, kube_api)
        with pytest.raises(UndoRefused, match=r"Deployment shop/web.*changed since"):
            action.in_effect(op, backends, None, "t")
        with pytest.raises(UndoRefused, match="changed since"):
            action.in_effect(op, backends, {"resourceVersion": "1"}, "t")
    finally:
        backends.kube.close()


def test_reconcile_fails_a_crashed_rotation_when_another_version_was_made_current(
    database: Database, live: FakeLive, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    """rotate_secret names no version: the first one after the pinned version is the step's,
    and a later one made current by someone else is not replaced by the undo."""
    sid = world.secret_ids[0]  # has a rotation target: rotate_secret
    request_id = approved(database, _plan(live, STALE, name="db-0"), settings=rotation.FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    assert _current(oci_api, sid) == 3
    theirs = oci_api.add_secret_version(sid, secret_content("someone-else", 4))
    [result] = reconcile_after_lease(database, live)
    incomplete = _assert_failed_naming(database, result, ["VaultSecret"])
    assert [s["step"] for s in incomplete["not_undone"]] == [0]
    assert _current(oci_api, sid) == theirs
    assert_audit_ok(database)


def test_a_rollback_cut_short_after_restoring_the_mirror_is_finished_by_reconcile(
    database: Database, live: FakeLive, kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld
) -> None:
    """The rollback restored the Secret and died before recording it: the Secret as it was
    before the run reads as undone (not as changed by someone), and reconcile finishes."""
    sid = world.secret_ids[1]
    before = _secret(kube_api)
    plan = _plan(live, STALE, name="db-1")
    request_id = approved(database, plan, settings=rotation.FAST)
    applied = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert applied.state == "applied"
    record = next(
        e["payload"]["result"]
        for e in request_events(database, request_id)
        if e["action"] == "remediation.step.applied" and e["payload"]["step"] == 1
    )
    token = retry_token(request_id, plan.hash, 1)
    SyncSecretAction().revert(plan.operations[1], live.backends(), record, token)
    # What the dead rollback's claim left: another owner, and a lease that has run out.
    held_by_another_run(database, request_id, utcnow() - timedelta(seconds=1))
    [result] = workflow.reconcile(database.sessions, "reconciler", lambda _: live)
    assert result.state == "rolled-back", result.reason
    actions = [
        (e["action"], e["payload"].get("step")) for e in request_events(database, request_id)
    ]
    assert ("remediation.step.not-in-effect", 1) in actions
    assert _current(oci_api, sid) == 2
    after = _secret(kube_api)
    assert (after["data"], after["metadata"]["annotations"]) == (
        before["data"],
        before["metadata"]["annotations"],
    )
    assert_audit_ok(database)
