"""The bot's scheduler: the leader lock (PostgreSQL advisory lock; always granted on SQLite), one
leading replica among several, the jobs of ``schedule:`` and their options, coalesced missed
runs (APScheduler's own mechanics, with run times back-dated), the scheduled functions against
the fakes, and a failing job that leaves the scheduler running."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from okeguard.audit import schema
from okeguard.audit.db import make_engine, session_factory
from okeguard.bot.slack import scheduler as scheduler_module
from okeguard.bot.slack.metrics import Metrics
from okeguard.bot.slack.people import Authorizer
from okeguard.bot.slack.posting import Pacer, make_client
from okeguard.bot.slack.scheduler import (
    BotScheduler,
    LeaderLock,
    scheduled_digest,
    scheduled_scan,
)
from okeguard.bot.slack.work import BotContext
from okeguard.config import Config
from okeguard.fleet import scan_configured
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlackApi, running_fake_slack_api
from tests.helpers import wait_for
from tests.unit.factories import bare_container, namespace, workload

CHANNEL = "C0FINDINGS"
DIGESTS = "C0DIGESTS"
OTHER = "C0ELSEWHERE"


@pytest.fixture
def pg_engines(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (two "replicas") on one PostgreSQL database."""
    first, second = create_engine(postgres_url), create_engine(postgres_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def config(kubeconfig: Path | None = None, **schedule: Any) -> Config:
    data: dict[str, Any] = {
        "slack": {"channel": CHANNEL, "post_interval_seconds": 0},
        "schedule": schedule,
    }
    if kubeconfig is not None:
        data["clusters"] = [{"name": "prod", "context": "fake", "kubeconfig": str(kubeconfig)}]
    return Config.model_validate(data)


def context(cfg: Config, database_url: str, slack: FakeSlackApi | None = None) -> BotContext:
    schema.upgrade(database_url)
    engine = make_engine(database_url)
    client = make_client(
        slack.bot_token if slack else "xoxb-none", base_url=slack and slack.base_url
    )
    return BotContext(
        config=cfg,
        sessions=session_factory(engine),
        client=client,
        authorizer=Authorizer(client, cfg.slack),
        pacer=Pacer(0),
        metrics=Metrics(),
        live_for=lambda name: pytest.fail("no live cluster in these tests"),
        scan=lambda clusters, namespaces: scan_configured(cfg, clusters, namespaces=namespaces),
    )


# --- LeaderLock --------------------------------------------------------------------------------


def test_one_postgresql_replica_holds_the_lock_until_it_releases_it(
    pg_engines: tuple[Engine, Engine],
) -> None:
    first, second = LeaderLock(pg_engines[0]), LeaderLock(pg_engines[1])
    assert first.try_acquire() and first.held
    assert first.try_acquire()  # re-entrant: still held, no second connection
    assert not second.try_acquire() and not second.held
    assert not second.try_acquire()  # and again: the failed attempts hold nothing
    assert pg_engines[1].pool.checkedout() == 0
    first.release()
    assert not first.held
    assert second.try_acquire() and second.held
    assert not first.try_acquire()
    second.release()


def test_the_lock_goes_with_the_leaders_connection(pg_engines: tuple[Engine, Engine]) -> None:
    first, second = LeaderLock(pg_engines[0]), LeaderLock(pg_engines[1])
    assert first.try_acquire()
    assert not second.try_acquire()
    first._connection.invalidate()  # the leader's process died: its connection is closed
    assert second.try_acquire()
    second.release()


def test_sqlite_is_always_the_leader(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        first, second = LeaderLock(engine), LeaderLock(engine)
        assert first.try_acquire() and second.try_acquire()
        first.release()
        assert not first.held and first.try_acquire()
    finally:
        engine.dispose()


# --- BotScheduler: one leader ------------------------------------------------------------------


class _Ctx:
    """What BotScheduler reads of the context when no job runs: the configuration."""

    def __init__(self, cfg: Config) -> None:
        self.config = cfg


def test_only_one_replica_runs_the_scheduler_and_another_takes_over(
    pg_engines: tuple[Engine, Engine],
) -> None:
    cfg = config(scans=[{"cluster": "*", "every_minutes": 60}])
    leader = BotScheduler(_Ctx(cfg), LeaderLock(pg_engines[0]), retry_seconds=0.1)  # type: ignore[arg-type]
    follower = BotScheduler(_Ctx(cfg), LeaderLock(pg_engines[1]), retry_seconds=0.1)  # type: ignore[arg-type]
    try:
        leader.start()
        follower.start()
        assert leader.scheduler.running and leader.leading
        time.sleep(0.5)  # several retries
        assert not follower.scheduler.running and not follower.leading
        assert len(follower.jobs()) == 1  # the jobs wait, pending
        leader.shutdown()
        assert not leader.scheduler.running and not leader.leading
        wait_for("the follower to lead", lambda: follower.scheduler.running)
        assert follower.leading
        assert [job.id for job in follower.jobs()] == ["scan:*:0"]
    finally:
        leader.shutdown()
        follower.shutdown()


def test_a_follower_that_shuts_down_stops_trying(pg_engines: tuple[Engine, Engine]) -> None:
    cfg = config()
    leader = BotScheduler(_Ctx(cfg), LeaderLock(pg_engines[0]), retry_seconds=0.05)  # type: ignore[arg-type]
    follower = BotScheduler(_Ctx(cfg), LeaderLock(pg_engines[1]), retry_seconds=0.05)  # type: ignore[arg-type]
    try:
        leader.start()
        follower.start()
        follower.shutdown()
        assert follower._waiter is not None
        follower._waiter.join(timeout=2)
        assert not follower._waiter.is_alive()
        leader.shutdown()
        time.sleep(0.2)
        assert not follower.scheduler.running and not follower.leading
    finally:
        leader.shutdown()
        follower.shutdown()


# --- jobs and their options --------------------------------------------------------------------


def scheduling_config() -> Config:
    return config(
        scans=[{"cluster": "prod", "every_minutes": 15}, {"cluster": "*", "every_minutes": 360}],
        digests=[
            {"channel": DIGESTS, "time": "07:30", "timezone": "Europe/Berlin"},
            {"channel": OTHER, "time": "18:05", "clusters": ["prod"]},
        ],
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[BotScheduler]:
    """A started scheduler (SQLite: the leader at once) with the jobs of scheduling_config()."""
    cfg = scheduling_config()
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    bot = BotScheduler(_Ctx(cfg), LeaderLock(engine), retry_seconds=0.1)  # type: ignore[arg-type]
    bot.start()
    try:
        yield bot
    finally:
        bot.shutdown()
        engine.dispose()


def test_the_scheduled_jobs_and_their_triggers(running: BotScheduler) -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    assert running.scheduler.running
    jobs = {job.id: job for job in running.jobs()}
    assert set(jobs) == {"scan:prod:0", "scan:*:1", f"digest:{DIGESTS}:0", f"digest:{OTHER}:1"}
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.name == job.id

    for job_id, minutes in (("scan:prod:0", 15), ("scan:*:1", 360)):
        trigger = jobs[job_id].trigger
        assert isinstance(trigger, IntervalTrigger)
        assert trigger.interval == timedelta(minutes=minutes)
        assert jobs[job_id].misfire_grace_time == minutes * 60  # a missed run is run once, late
        assert jobs[job_id].func.__closure__  # _guarded
    for job_id, hour, minute, zone in (
        (f"digest:{DIGESTS}:0", "7", "30", "Europe/Berlin"),
        (f"digest:{OTHER}:1", "18", "5", "UTC"),
    ):
        trigger = jobs[job_id].trigger
        assert isinstance(trigger, CronTrigger)
        fields = {field.name: str(field) for field in trigger.fields}
        assert (fields["hour"], fields["minute"], fields["second"]) == (hour, minute, "0")
        assert str(trigger.timezone) == zone
        assert jobs[job_id].misfire_grace_time == 3600

    # the digest's time is local: 07:30 in Berlin is 05:30 UTC in summer, 06:30 in winter
    berlin = jobs[f"digest:{DIGESTS}:0"].trigger
    summer = berlin.get_next_fire_time(None, datetime(2026, 7, 1, 12, tzinfo=UTC))
    winter = berlin.get_next_fire_time(None, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert summer.astimezone(UTC) == datetime(2026, 7, 2, 5, 30, tzinfo=UTC)
    assert winter.astimezone(UTC) == datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    # and nothing runs now: the next runs are in the future
    now = datetime.now(UTC)
    assert all(job.next_run_time > now for job in jobs.values())


def test_missed_runs_are_coalesced_into_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[str, datetime]] = []
    monkeypatch.setattr(
        scheduler_module,
        "scheduled_scan",
        lambda ctx, cluster: calls.append((cluster, datetime.now(UTC))),
    )
    cfg = config(scans=[{"cluster": "prod", "every_minutes": 15}])
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    bot = BotScheduler(_Ctx(cfg), LeaderLock(engine), retry_seconds=0.1)  # type: ignore[arg-type]
    bot.start()
    try:
        # the process was down (or busy) for 10 periods: 10 runs were missed
        missed_since = datetime.now(UTC) - timedelta(minutes=150) + timedelta(seconds=1)
        bot.scheduler.modify_job("scan:prod:0", next_run_time=missed_since)
        wait_for("the coalesced run", lambda: calls)
        time.sleep(0.5)
        assert [cluster for cluster, _ in calls] == ["prod"]  # once, not in a burst of 10
        [job] = bot.jobs()
        assert job.next_run_time > datetime.now(UTC)  # back on its schedule
        assert job.next_run_time - datetime.now(UTC) <= timedelta(minutes=15)
    finally:
        bot.shutdown()
        engine.dispose()


def test_a_failing_job_is_logged_and_the_scheduler_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[str] = []

    def flaky(ctx: Any, cluster: str) -> None:
        runs.append(cluster)
        if len(runs) == 1:
            raise RuntimeError("the cluster is unreachable")

    monkeypatch.setattr(scheduler_module, "scheduled_scan", flaky)
    cfg = config(scans=[{"cluster": "prod", "every_minutes": 5}])
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    bot = BotScheduler(_Ctx(cfg), LeaderLock(engine), retry_seconds=0.1)  # type: ignore[arg-type]
    caplog.set_level(logging.ERROR, logger=scheduler_module.__name__)
    bot.start()
    try:
        bot.scheduler.modify_job("scan:prod:0", next_run_time=datetime.now(UTC))
        wait_for("the failure logged", lambda: caplog.records)
        [record] = caplog.records
        assert record.getMessage() == "scheduled job scan:prod:0 failed"
        assert record.exc_info is not None and "unreachable" in str(record.exc_info[1])
        assert bot.scheduler.running and len(bot.jobs()) == 1
        bot.scheduler.modify_job("scan:prod:0", next_run_time=datetime.now(UTC))
        wait_for("the next run", lambda: len(runs) == 2)
        time.sleep(0.1)
        assert len(caplog.records) == 1  # the second run succeeded
        assert bot.scheduler.running
    finally:
        bot.shutdown()
        engine.dispose()


# --- the scheduled functions against the fakes -------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with running_fake_slack_api() as api:
        yield api


@pytest.fixture
def shop(kube_api: FakeKubeApi) -> FakeKubeApi:
    web = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1")])
    kube_api.add(namespace("shop"), web)
    return kube_api


def test_a_scheduled_scan_posts_only_what_is_new(
    shop: FakeKubeApi, slack: FakeSlackApi, database_url: str, tmp_path: Path
) -> None:
    ctx = context(config(tmp_path / "kubeconfig"), database_url, slack)
    scheduled_scan(ctx, "*")
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 1 and posts[0].params["channel"] == CHANNEL
    [message] = slack.messages(CHANNEL)
    assert message.blocks

    scheduled_scan(ctx, "prod")  # nothing new, nothing changed
    assert len(slack.calls("chat.postMessage")) == 1

    shop.add(workload(name="api", containers=[bare_container("api", image="nginx:1.27")]))
    scheduled_scan(ctx, "prod")  # a new workload with findings of its own
    posts = slack.calls("chat.postMessage")
    assert len(posts) == 2 and {p.params["channel"] for p in posts} == {CHANNEL}
    assert "api" in str(slack.messages(CHANNEL)[-1].blocks)
    assert ctx.metrics.scans.labels("prod", "complete")._value.get() == 3


def test_a_scheduled_scan_without_a_channel_posts_nothing(
    shop: FakeKubeApi, slack: FakeSlackApi, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "kubeconfig")
    cfg = cfg.model_copy(update={"slack": cfg.slack.model_copy(update={"channel": None})})
    ctx = context(cfg, f"sqlite:///{tmp_path / 'bot.db'}", slack)
    scheduled_scan(ctx, "*")
    assert not slack.calls("chat.postMessage")
    assert ctx.metrics.scans.labels("prod", "complete")._value.get() == 1


def test_a_scheduled_digest_is_posted_to_its_channel(
    shop: FakeKubeApi, slack: FakeSlackApi, tmp_path: Path
) -> None:
    ctx = context(config(tmp_path / "kubeconfig"), f"sqlite:///{tmp_path / 'bot.db'}", slack)
    scheduled_scan(ctx, "*")
    scheduled_digest(ctx, DIGESTS, ())
    [post] = [p for p in slack.calls("chat.postMessage") if p.params["channel"] == DIGESTS]
    assert "igest" in post.params["text"]
    assert slack.uploads and all(u.channel == DIGESTS for u in slack.uploads)  # the chart
    assert len(slack.messages(CHANNEL)) == 1  # the scan's post; the digest went elsewhere


def test_the_lock_key_belongs_to_the_database_and_schema() -> None:
    """Two deployments on one server (other databases or schemas) never share a key."""
    from okeguard.bot.slack.scheduler import leader_lock_key

    keys = {leader_lock_key(db, schema) for db in ("okeguard", "test") for schema in ("a", "b")}
    assert len(keys) == 4
    assert all(0 <= k < 2**63 for k in keys)
    assert leader_lock_key("test", "a") == leader_lock_key("test", "a")
