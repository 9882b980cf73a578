"""Retries where a transient error would otherwise undo a good fix (issue 13, part 5).

One 503 on a verification read, or one 429 on a write, is retried with backoff and the request
ends ``applied``, the retry on record; a persistent 5xx still rolls back; a 409/412, and a 5xx
of a write (it may have landed), are never sent again. The real ``kubernetes`` and ``oci``
clients against the fakes with their switchable faults, a real database (SQLite, PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from okeguard.audit import schema
from okeguard.audit.chain import verify_chain
from okeguard.audit.db import make_engine, session_factory
from okeguard.config import ClusterConfig, Config, RemediationConfig
from okeguard.remediations import kube_actions, oci_actions, workflow
from okeguard.remediations.engine import Backends, SimulatedCrash, StepFailed
from okeguard.remediations.kube_writer import KubeWriter
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.oci_writer import TransientRetryStrategy
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.retrying import Retrier, RetryNote, RetryPolicy, parse_retry_after
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import FakeOciApi
from tests.fakes.oci_world import OkeWorld, build_oke_world
from tests.helpers import after_lease
from tests.integration.database import Database
from tests.integration.requests_support import oci_live_cluster
from tests.unit.factories import bare_container, namespace, workload

assert kube_actions and oci_actions  # imported to register their operations
DEPLOY_PATH = "/apis/apps/v1/namespaces/shop/deployments/web"
ENDPOINT_WRITE = "/20180222/clusters/*/actions/updateEndpointConfig"
ATTEMPTS = 4
SETTINGS = RemediationConfig(
    poll_interval_seconds=0.01,
    rollout_timeout_seconds=5,
    work_request_timeout_seconds=30,
    retry_attempts=ATTEMPTS,
    retry_max_seconds=10,
    retry_base_seconds=0.01,
)


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite file, for the tests whose point is not the database."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        yield Database(url, engine, session_factory(engine))
    finally:
        engine.dispose()


def _approved(database: Database, plan: Plan) -> int:
    request = workflow.request_fix(database.sessions, plan, "alice", SETTINGS)
    workflow.decide(
        database.sessions, request.id, "bob", SETTINGS, approve=True, plan_hash=plan.hash
    )
    return request.id


def _events(database: Database, request_id: int) -> list[dict[str, Any]]:
    with database.sessions() as session:
        return workflow.request_events(session, request_id)


def _retried(database: Database, request_id: int) -> list[dict[str, Any]]:
    return [
        e["payload"] for e in _events(database, request_id) if e["action"] == "remediation.retried"
    ]


def _chain_ok(database: Database) -> None:
    with database.sessions() as session:
        assert verify_chain(session) is None


def _plan(live: LiveCluster, check_id: str) -> Plan:
    inventory = live.read()
    finding = next(f for f in live.findings(inventory, (check_id,)) if f.status.value == "open")
    return plan_finding(finding, inventory, SETTINGS)


def _around(obj: Any, name: str, before: Callable[[], None], after: Callable[[], None]) -> None:
    """Run ``before`` and ``after`` around the first real (not dry-run) call of ``obj.name``:
    faults switched on at the moment of the write, and right after it."""
    original = getattr(obj, name)
    done: list[bool] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if done or kwargs.get("dry_run"):
            return original(*args, **kwargs)
        done.append(True)
        before()
        result = original(*args, **kwargs)
        after()
        return result

    setattr(obj, name, wrapped)


# == Kubernetes: k8s.run-as-root on Deployment shop/web, its rollout watched ===================
@pytest.fixture
def kube_live(kube_api: FakeKubeApi) -> LiveCluster:
    web = workload(
        containers=[bare_container("web", image="fra.ocir.io/shop/web:1.2")],
        labels={"app": "web"},
    )
    web["spec"]["replicas"] = 2
    kube_api.add(namespace("shop"), web)
    assert kube_api.kubeconfig_path is not None
    cluster = ClusterConfig(name="fake", context="fake", kubeconfig=str(kube_api.kubeconfig_path))
    return LiveCluster(Config(remediation=SETTINGS, clusters=(cluster,)), cluster)


def _root_fix(database: Database, live: LiveCluster) -> tuple[int, Backends]:
    return _approved(database, _plan(live, "k8s.run-as-root")), live.backends()


def test_one_429_on_the_write_and_one_503_on_the_rollout_read_are_retried_and_applied(
    database: Database, kube_api: FakeKubeApi, kube_live: LiveCluster
) -> None:
    request_id, backends = _root_fix(database, kube_live)
    _around(
        backends.kube,
        "patch",
        before=lambda: kube_api.fail(DEPLOY_PATH, 429, times=1, method="PATCH"),
        after=lambda: kube_api.fail(DEPLOY_PATH, 503, times=1, method="GET"),
    )
    kube_api.reset_requests()
    result = workflow.apply_request(
        database.sessions, request_id, "bob", kube_live, backends=backends
    )
    assert (result.state, result.reason) == ("applied", None)
    container = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    patches = kube_api.requests_to(DEPLOY_PATH, "PATCH")
    assert [p.query.get("dryRun") for p in patches] == [["All"], None, None]  # 429, then sent
    assert patches[1].body == patches[2].body  # the same guarded patch, resourceVersion test too
    write, read = _retried(database, request_id)
    assert (write["phase"], write["status"], write["attempt"]) == ("write", 429, 1)
    assert write["call"] == f"PATCH {DEPLOY_PATH}" and write["reason"] == "429 TooManyRequests"
    assert (read["phase"], read["status"], read["call"]) == ("verify", 503, f"GET {DEPLOY_PATH}")
    assert write["step"] == read["step"] == 0 and write["action"] == "k8s.patch"
    actions = [e["action"] for e in _events(database, request_id)]
    assert actions[-6:] == [
        "remediation.step.dry-run",
        "remediation.retried",
        "remediation.step.applied",
        "remediation.retried",
        "remediation.verified",
        "remediation.applied",
    ]
    _chain_ok(database)


def test_reconcile_retries_a_503_on_its_reads_and_records_it(
    database: Database, kube_api: FakeKubeApi, kube_live: LiveCluster
) -> None:
    request_id, _ = _root_fix(database, kube_live)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", kube_live, crash_after=0)
    kube_api.fail(DEPLOY_PATH, 503, times=1, method="GET")
    [result] = workflow.reconcile(
        database.sessions, "reconciler", lambda _: kube_live, now=after_lease()
    )
    assert result.state == "applied", result.reason
    [retried] = _retried(database, request_id)
    assert (retried["phase"], retried["status"]) == ("check", 503)
    assert retried["call"] == f"GET {DEPLOY_PATH}"
    _chain_ok(database)


def test_a_persistent_5xx_on_the_rollout_read_still_rolls_back(
    database: Database, kube_api: FakeKubeApi, kube_live: LiveCluster
) -> None:
    before = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]
    request_id, backends = _root_fix(database, kube_live)
    _around(
        backends.kube,
        "patch",
        before=lambda: None,
        after=lambda: kube_api.fail(DEPLOY_PATH, 503, method="GET"),  # until cleared
    )
    result = workflow.apply_request(
        database.sessions, request_id, "bob", kube_live, backends=backends
    )
    assert result.state == "rolled-back", result.reason
    assert result.reason is not None and "503" in result.reason
    assert kube_api.get_object("Deployment", "web", "shop")["spec"]["template"] == before
    retried = _retried(database, request_id)
    assert [(r["phase"], r["attempt"]) for r in retried] == [("verify", n) for n in (1, 2, 3)]
    assert len(kube_api.requests_to(DEPLOY_PATH, "GET")) == ATTEMPTS
    _chain_ok(database)


@pytest.mark.parametrize("status", [409, 422, 500, 503])
def test_a_refused_or_unknown_write_is_never_sent_twice(
    sqlite_db: Database, kube_api: FakeKubeApi, kube_live: LiveCluster, status: int
) -> None:
    request_id, backends = _root_fix(sqlite_db, kube_live)
    _around(
        backends.kube,
        "patch",
        before=lambda: kube_api.fail(DEPLOY_PATH, status, times=1, method="PATCH"),
        after=lambda: None,
    )
    kube_api.reset_requests()
    result = workflow.apply_request(
        sqlite_db.sessions, request_id, "bob", kube_live, backends=backends
    )
    assert result.state in ("failed", "rolled-back") and str(status) in str(result.reason)
    writes = [p for p in kube_api.requests_to(DEPLOY_PATH, "PATCH") if not p.query.get("dryRun")]
    assert len(writes) == 1
    assert _retried(sqlite_db, request_id) == []


def test_a_dry_run_answered_5xx_is_retried_as_it_stores_nothing(
    kube_api: FakeKubeApi, kube_live: LiveCluster
) -> None:
    writer = kube_live.backends().kube
    kube_api.fail(DEPLOY_PATH, 502, times=1, method="PATCH")
    patch = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    writer.patch("Deployment", "shop", "web", patch, dry_run=True)
    assert len(kube_api.requests_to(DEPLOY_PATH, "PATCH")) == 2
    assert kube_api.get_object("Deployment", "web", "shop")["spec"]["replicas"] == 2


# == OCI: make-endpoint-private (an update followed to its work request, then a read) =========
@pytest.fixture
def oci_live(
    kube_api: FakeKubeApi, oci_api: FakeOciApi, oci_config: Path
) -> tuple[LiveCluster, OkeWorld]:
    world = build_oke_world(oci_api, secrets=0)
    endpoint = {**oci_api.get(world.cluster_id)["endpointConfig"], "isPublicIpEnabled": True}
    oci_api.update(world.cluster_id, endpointConfig=endpoint)
    live = oci_live_cluster(kube_api, oci_api, world.cluster_id, oci_config, SETTINGS)
    return live, world


def _public_ip(api: FakeOciApi, world: OkeWorld) -> bool:
    return bool(api.get(world.cluster_id)["endpointConfig"]["isPublicIpEnabled"])


def test_oci_one_429_on_the_update_and_one_503_on_the_verify_read_are_retried_and_applied(
    database: Database, oci_api: FakeOciApi, oci_live: tuple[LiveCluster, OkeWorld]
) -> None:
    live, world = oci_live
    request_id = _approved(database, _plan(live, "oke.public-api-endpoint"))
    backends = live.backends()
    cluster_path = f"/20180222/clusters/{world.cluster_id}"
    oci_api.fail(ENDPOINT_WRITE, 429, code="TooManyRequests", times=1, method="POST")
    _around(
        backends.oci,
        "write_and_wait",
        before=lambda: None,
        after=lambda: oci_api.fail(cluster_path, 503, times=1, method="GET"),
    )
    oci_api.reset_requests()
    result = workflow.apply_request(database.sessions, request_id, "bob", live, backends=backends)
    assert (result.state, result.reason) == ("applied", None)
    assert not _public_ip(oci_api, world)
    first, second = oci_api.requests_to(ENDPOINT_WRITE, "POST")
    assert first.if_match and first.if_match == second.if_match  # the same guarded update
    assert len(oci_api.work_requests) == 1  # applied once
    write, read = _retried(database, request_id)
    assert (write["phase"], write["status"], write["reason"]) == (
        "write",
        429,
        "429 TooManyRequests",
    )
    assert write["call"] == "OCI update_cluster_endpoint_config"
    assert (read["phase"], read["status"], read["call"]) == ("verify", 503, "OCI get_cluster")
    _chain_ok(database)


def test_oci_a_5xx_on_every_try_of_the_verify_read_still_rolls_back(
    database: Database, oci_api: FakeOciApi, oci_live: tuple[LiveCluster, OkeWorld]
) -> None:
    live, world = oci_live
    request_id = _approved(database, _plan(live, "oke.public-api-endpoint"))
    backends = live.backends()
    cluster_path = f"/20180222/clusters/{world.cluster_id}"
    _around(
        backends.oci,
        "write_and_wait",
        before=lambda: None,
        after=lambda: oci_api.fail(cluster_path, 500, times=ATTEMPTS, method="GET"),
    )
    result = workflow.apply_request(database.sessions, request_id, "bob", live, backends=backends)
    assert result.state == "rolled-back", result.reason
    assert "500" in str(result.reason)
    assert _public_ip(oci_api, world)  # undone: the rollback's reads find the API well again
    retried = _retried(database, request_id)
    assert [(r["phase"], r["status"]) for r in retried] == [("verify", 500)] * (ATTEMPTS - 1)
    _chain_ok(database)


@pytest.mark.parametrize(("status", "code"), [(412, "NoEtagMatch"), (409, "Conflict"), (503, None)])
def test_oci_a_refused_or_unknown_update_is_never_sent_twice(
    sqlite_db: Database,
    oci_api: FakeOciApi,
    oci_live: tuple[LiveCluster, OkeWorld],
    status: int,
    code: str | None,
) -> None:
    live, world = oci_live
    request_id = _approved(sqlite_db, _plan(live, "oke.public-api-endpoint"))
    oci_api.fail(ENDPOINT_WRITE, status, code=code, times=1, method="POST")
    oci_api.reset_requests()
    result = workflow.apply_request(sqlite_db.sessions, request_id, "bob", live)
    assert result.state in ("failed", "rolled-back") and str(status) in str(result.reason)
    assert len(oci_api.requests_to(ENDPOINT_WRITE, "POST")) == 1
    assert _public_ip(oci_api, world) and not oci_api.work_requests
    assert _retried(sqlite_db, request_id) == []


# == the policy: Retry-After, bounds ===========================================================
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _retrier(clock: _Clock, **policy: Any) -> Retrier:
    return Retrier(RetryPolicy(**policy), sleep=clock.sleep, clock=clock, rand=lambda: 1.0)


def test_retry_after_is_honoured_in_seconds_and_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    from datetime import UTC, datetime

    now = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 01 May 2026 12:00:07 GMT", now) == 7.0
    clock = _Clock()
    retrier = _retrier(clock, base_seconds=0.5)
    assert retrier.wait(1, 0.0, 2.0) == 2.0  # the server's word, not the backoff
    assert retrier.wait(1, 0.0, None) == 0.5 and retrier.wait(2, 0.0, None) == 1.0


def test_a_call_gives_up_after_its_attempts_or_its_time() -> None:
    clock = _Clock()
    retrier = _retrier(clock, attempts=4, total_seconds=30.0, base_seconds=1.0)
    assert [retrier.wait(n, 0.0, None) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, None]
    assert retrier.wait(1, 0.0, 31.0) is None  # a Retry-After past the budget: give up now
    clock.now = 29.5
    assert retrier.wait(1, 0.0, None) is None


def test_the_oci_strategy_honours_retry_after_on_a_throttled_write_only() -> None:
    import oci

    clock = _Clock()
    notes: list[RetryNote] = []
    retrier = _retrier(clock, base_seconds=0.01)
    retrier.on_retry = notes.append
    strategy = TransientRetryStrategy(retrier)
    answers: list[Any] = [
        oci.exceptions.ServiceError(429, "TooManyRequests", {"retry-after": "2"}, "slow down"),
        "done",
    ]

    def call_api(**kwargs: Any) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = strategy.make_retrying_call(call_api, method="PUT", operation_name="update_cluster")
    assert result == "done" and clock.slept == [2.0]
    assert notes[0].retry_after and notes[0].call == "OCI update_cluster"
    unknown = oci.exceptions.ServiceError(503, "ServiceUnavailable", {}, "try later")
    answers[:] = [unknown, "done"]
    with pytest.raises(oci.exceptions.ServiceError):
        strategy.make_retrying_call(call_api, method="PUT", operation_name="update_cluster")
    answers[:] = [unknown, "done"]
    assert strategy.make_retrying_call(call_api, method="GET", operation_name="get") == "done"


class _Response:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, headers or {}

    def read(self) -> bytes:
        return b'{"kind": "Deployment", "metadata": {"name": "web"}}'


class _ApiClient:
    """Just enough of ``kubernetes.client.ApiClient`` for KubeWriter: scripted answers."""

    def __init__(self, *answers: _Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[str] = []

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        return None, "https://k8s" + kwargs["resource_path"], {}, None, None

    def call_api(self, method: str, *args: Any, **kwargs: Any) -> _Response:
        self.sent.append(method)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_kubernetes_writer_honours_retry_after() -> None:
    clock = _Clock()
    api = _ApiClient(_Response(429, {"Retry-After": "3"}), _Response(200))
    writer = KubeWriter(api, "fake", retrier=_retrier(clock))
    assert writer.get("Deployment", "shop", "web") is not None
    assert clock.slept == [3.0]


def test_a_write_that_never_left_is_retried_and_one_that_may_have_landed_is_not() -> None:
    from urllib3.exceptions import NewConnectionError, ReadTimeoutError

    patch = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    refused = NewConnectionError(None, "connection refused")  # type: ignore[arg-type]
    api = _ApiClient(refused, _Response(200))
    writer = KubeWriter(api, "fake", retrier=_retrier(_Clock()))
    assert writer.patch("Deployment", "shop", "web", patch)["kind"] == "Deployment"
    assert api.sent == ["PATCH", "PATCH"]
    timeout = ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]
    api = _ApiClient(timeout, _Response(200))
    writer = KubeWriter(api, "fake", retrier=_retrier(_Clock()))
    with pytest.raises(StepFailed, match="ReadTimeoutError") as caught:
        writer.patch("Deployment", "shop", "web", patch)
    assert api.sent == ["PATCH"] and not caught.value.wrote_nothing
