"""One owner per remediation run, attacked from a second process (issue 11, part 1).

The run is ``okeguard remediations apply`` in a subprocess; the rival is ``okeguard
remediations reconcile`` in another, both with the same configuration and database, on SQLite
and on PostgreSQL. The plan is a five-step legacy-token rotation: create the new token, repoint
the consumer, repoint the ServiceAccount, await the consumer's rollout, delete the old token.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from okeguard.audit import schema
from okeguard.audit.db import make_engine, session_factory
from okeguard.config import Config, load_config
from okeguard.remediations import workflow
from okeguard.remediations.live import live_cluster
from okeguard.remediations.planners import plan_finding
from tests.e2e.conftest import okeguard_command
from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.helpers import wait_for
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_chain_ok,
    request_actions,
    request_events,
    request_row,
)
from tests.unit.factories import bare_container, namespace, workload

TOKEN_CHECK = "k8s.legacy-service-account-token"
LEASE = 2.0
AWAIT_STEP = 3  # 0-based: create, repoint consumer, repoint ServiceAccount, await, delete


def _token_objects() -> list[dict[str, Any]]:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "ci-token", "key": "token"}}}]
    deployer = workload(
        containers=[bare_container("app", env=env)], name="deployer", labels={"app": "deployer"}
    )
    deployer["spec"]["replicas"] = 1
    return [
        namespace("shop"),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "ci", "namespace": "shop"},
            "secrets": [{"name": "ci-token"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": "ci-token",
                "namespace": "shop",
                "annotations": {"kubernetes.io/service-account.name": "ci"},
            },
            "data": {"token": base64.b64encode(b"legacy-token-not-real").decode()},
        },
        deployer,
    ]


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL schema, for what only a database server can do."""
    schema.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        yield Database(postgres_url, engine, session_factory(engine))
    finally:
        engine.dispose()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApi]:
    with running_fake_kube_api(_token_objects()) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api


@pytest.fixture
def config_path(tmp_path: Path, cluster: FakeKubeApi) -> Path:
    path = tmp_path / "okeguard.yaml"
    doc = {
        "clusters": [
            {"name": "fake", "context": "fake", "kubeconfig": str(tmp_path / "kubeconfig")}
        ],
        "remediation": {
            "poll_interval_seconds": 0.05,
            "rollout_timeout_seconds": 120,
            "lease_seconds": LEASE,
        },
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _approved_rotation(database: Database, config: Config) -> tuple[int, str]:
    """Plan the legacy token's rotation live, request it as alice and approve it as bob."""
    live = live_cluster(config, cluster="fake")
    inventory = live.read()
    [finding] = live.findings(inventory, (TOKEN_CHECK,))
    plan = plan_finding(finding, inventory, config.remediation)
    assert [op.action for op in plan.operations][AWAIT_STEP] == "k8s.await-consumers"
    assert len(plan.operations) == 5
    request_id = approved(database, plan, settings=config.remediation)
    return request_id, str(plan.operations[0].target["name"])


def _okeguard(database: Database, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OKEGUARD_DATABASE_URL": database.url,
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
    }
    return subprocess.Popen(
        [*okeguard_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _rotation_in_step_4(
    database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> tuple[int, str, subprocess.Popen[str]]:
    """Approve the rotation, start ``okeguard remediations apply`` in a process, and return once
    it waits in step 4 for the consumer's rollout (held): (request id, new token, the process)."""
    request_id, new_token = _approved_rotation(database, load_config(config_path))
    cluster.hold_rollouts("Deployment", "shop", "deployer")
    args = ("remediations", "apply", str(request_id), "--yes", "--config", str(config_path))
    run = _okeguard(database, tmp_path, *args)
    wait_for(
        "the run to reach step 4", lambda: _reaches_await(database, request_id, run), timeout=60
    )
    return request_id, new_token, run


def _reaches_await(database: Database, request_id: int, run: subprocess.Popen[str]) -> bool:
    if run.poll() is not None:
        raise AssertionError(f"the run ended early: {run.communicate()}")
    return _started(database, request_id, AWAIT_STEP)


def _started(database: Database, request_id: int, step: int) -> bool:
    return any(
        e["action"] == "remediation.step.started" and e["payload"]["step"] == step
        for e in request_events(database, request_id)
    )


def _in_transaction(database: Database, pid: int) -> bool:
    """Whether process ``pid`` holds an open transaction on the database right now."""
    if database.dialect == "postgresql":
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = :name AND state NOT IN ('idle')"
        )
        with database.engine.connect() as conn:
            return bool(conn.execute(query, {"name": f"okeguard:{pid}"}).scalar())
    probe = sqlite3.connect(str(database.engine.url.database), timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")  # fails at once while another writer holds the lock
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def _freeze_between_transactions(database: Database, run: subprocess.Popen[str]) -> None:
    """SIGSTOP the run at a moment it holds no transaction: the pause a lease is for.

    (A process frozen *inside* a transaction is the server's to end on PostgreSQL; see
    ``test_a_transaction_left_open_does_not_block_reconcile``.)
    """
    for _ in range(200):
        os.kill(run.pid, signal.SIGSTOP)
        if not _in_transaction(database, run.pid):
            return
        os.kill(run.pid, signal.SIGCONT)
        time.sleep(0.013)
    raise AssertionError("the run never paused between transactions")


def _exists(api: FakeKubeApi, kind: str, name: str) -> bool:
    try:
        api.get_object(kind, name, "shop")
    except KeyError:
        return False
    return True


def _consumer_secret(api: FakeKubeApi) -> str:
    spec = api.get_object("Deployment", "deployer", "shop")["spec"]["template"]["spec"]
    return str(spec["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"])


def test_a_run_paused_past_its_lease_is_taken_over_once_and_stops_writing(
    database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> None:
    """The repro of issue 11: before the lease, reconcile rolled back while the paused run went on
    to delete the old token, leaving no token and a database saying ``rolled-back``."""
    request_id, new_token, run = _rotation_in_step_4(database, cluster, config_path, tmp_path)
    try:
        _freeze_between_transactions(database, run)  # frozen: no heartbeat, no writes
        time.sleep(LEASE + 0.5)
        rival = _okeguard(
            database, tmp_path, "remediations", "reconcile", "--config", str(config_path)
        )
        _, rival_err = rival.communicate(timeout=120)
        assert rival.returncode == 0, rival_err
        assert f"Request {request_id}: rolled-back" in rival_err
        assert request_row(database, request_id).state == "rolled-back"
        assert not _exists(cluster, "Secret", new_token)
        assert _consumer_secret(cluster) == "ci-token"
        # the consumer would now come up, and the paused run would go on to delete the old token
        cluster.hold_rollouts("Deployment", "shop", "deployer", held=False)
    finally:
        os.kill(run.pid, signal.SIGCONT)
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0
    assert "took this run over" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    # the old token is still there, and the database tells the truth
    assert _exists(cluster, "Secret", "ci-token")
    assert not cluster.requests_to("/api/v1/namespaces/shop/secrets/ci-token", "DELETE")
    request = request_row(database, request_id)
    assert (request.state, request.owner, request.lease_until) == ("rolled-back", None, None)
    assert not _started(database, request_id, AWAIT_STEP + 1)
    stopped = [
        e for e in request_events(database, request_id) if e["action"] == "remediation.run-stopped"
    ]
    assert len(stopped) == 1 and stopped[0]["payload"]["state"] == "rolled-back"
    assert_chain_ok(database)


def test_reconcile_leaves_a_live_run_alone_and_the_run_finishes(
    database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> None:
    request_id, new_token, run = _rotation_in_step_4(database, cluster, config_path, tmp_path)
    time.sleep(LEASE + 0.5)  # longer than one lease: only the heartbeat keeps it
    rival = _okeguard(database, tmp_path, "remediations", "reconcile", "--config", str(config_path))
    _, rival_err = rival.communicate(timeout=120)
    assert rival.returncode == 0, rival_err
    assert "still alive" in rival_err
    assert request_row(database, request_id).state == "applying"
    assert _exists(cluster, "Secret", new_token)
    cluster.hold_rollouts("Deployment", "shop", "deployer", held=False)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    request = request_row(database, request_id)
    assert (request.state, request.owner) == ("applied", None)
    assert not _exists(cluster, "Secret", "ci-token") and _exists(cluster, "Secret", new_token)
    actions = request_actions(database, request_id)
    assert "remediation.reconcile-started" not in actions
    assert actions.count("remediation.step.rolled-back") == 0


def test_two_reconcilers_settle_a_crashed_run_once(
    database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> None:
    """A crashed run (killed, lease run out) is claimed by exactly one of two reconcilers."""
    request_id, new_token, run = _rotation_in_step_4(database, cluster, config_path, tmp_path)
    run.kill()
    run.communicate(timeout=30)
    time.sleep(LEASE + 0.5)
    rivals = [
        _okeguard(database, tmp_path, "remediations", "reconcile", "--config", str(config_path))
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=120)[1] for r in rivals]
    assert [r.returncode for r in rivals] == [0, 0], outputs
    assert sum(f"Request {request_id}: rolled-back" in out for out in outputs) == 1, outputs
    actions = request_actions(database, request_id)
    assert actions.count("remediation.reconcile-started") == 1
    assert actions.count("remediation.rolled-back") == 1
    assert not _exists(cluster, "Secret", new_token) and _exists(cluster, "Secret", "ci-token")
    assert_chain_ok(database)


def test_reconcile_never_settles_a_run_as_applied_while_it_is_still_verifying(
    database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> None:
    """The run has written its last step and watches the rollout; a reconcile then must not run
    its own verification and mark the request applied: the rollout goes on to fail, and the
    run's rollback is the truth."""
    import threading

    config = load_config(config_path)
    web = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1")])
    cluster.add(web)
    live = live_cluster(config, cluster="fake")
    inventory = live.read()
    finding = next(
        f for f in live.findings(inventory, ("k8s.run-as-root",)) if f.resource.name == "web"
    )
    plan = plan_finding(finding, inventory, config.remediation)
    request_id = approved(database, plan, settings=config.remediation)
    cluster.hold_rollouts("Deployment", "shop", "web")
    outcome: list[workflow.ApplyResult] = []
    run = threading.Thread(
        target=lambda: outcome.append(
            workflow.apply_request(database.sessions, request_id, "bob", live)
        )
    )
    run.start()
    try:
        wait_for(
            "the last write",
            lambda: "remediation.step.applied" in request_actions(database, request_id),
        )
        time.sleep(LEASE + 0.5)
        [held] = workflow.reconcile(database.sessions, "rival", lambda _: live, lease_seconds=LEASE)
        assert (held.request_id, held.state) == (request_id, "applying")
        assert request_row(database, request_id).state == "applying"
        cluster.set_rollout("Deployment", "shop", "web", "crashloop")
    finally:
        cluster.hold_rollouts("Deployment", "shop", "web", held=False)
        run.join(timeout=60)
    assert [r.state for r in outcome] == ["rolled-back"]
    assert request_row(database, request_id).state == "rolled-back"
    actions = request_actions(database, request_id)
    assert "remediation.applied" not in actions and "remediation.reconcile-started" not in actions


def test_a_transaction_left_open_does_not_block_reconcile(
    pg_database: Database, cluster: FakeKubeApi, config_path: Path, tmp_path: Path
) -> None:
    """A process frozen inside a transaction holds the request's row lock: on PostgreSQL the
    server ends that session after its idle-in-transaction limit and reconcile goes on. (SQLite
    has no server to end a frozen writer: docs/operations.md says so.)"""
    database = pg_database
    request_id, new_token, run = _rotation_in_step_4(database, cluster, config_path, tmp_path)
    run.kill()
    run.communicate(timeout=30)
    # the frozen holder: a session with a short limit, its row lock taken and never committed
    holder_engine = make_engine(database.url + "%20-cidle_in_transaction_session_timeout%3D2s")
    holder = holder_engine.connect()
    try:
        holder.execute(
            text("UPDATE remediation_requests SET lease_until = lease_until WHERE id = :id"),
            {"id": request_id},
        )
        time.sleep(LEASE + 0.5)
        started = time.monotonic()
        rival = _okeguard(
            database, tmp_path, "remediations", "reconcile", "--config", str(config_path)
        )
        _, rival_err = rival.communicate(timeout=120)
        waited = time.monotonic() - started
        assert rival.returncode == 0, rival_err
        assert f"Request {request_id}: rolled-back" in rival_err
        assert waited < 30, f"reconcile waited {waited:.0f} s for a dead transaction"
        with pytest.raises(DBAPIError):  # the server ended the holder's session
            holder.execute(text("SELECT 1"))
    finally:
        holder.close()
        holder_engine.dispose()
    assert not _exists(cluster, "Secret", new_token) and _exists(cluster, "Secret", "ci-token")


def test_postgresql_sessions_are_named_and_bounded(pg_database: Database) -> None:
    database = pg_database
    with database.engine.connect() as conn:
        name, idle, lock = conn.execute(
            text(
                "SELECT current_setting('application_name'), "
                "current_setting('idle_in_transaction_session_timeout'), "
                "current_setting('lock_timeout')"
            )
        ).one()
    assert (name, idle, lock) == (f"okeguard:{os.getpid()}", "1min", "90s")
    engine = make_engine(database.url + "%20-clock_timeout%3D5s")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "5s"
    finally:
        engine.dispose()
