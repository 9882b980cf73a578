"""Scheduled scans and daily digests (APScheduler 3), run by one replica only.

With PostgreSQL, replicas compete for a session-level advisory lock held on a connection of its
own for as long as the process lives: the holder runs the jobs, the others try again every
``retry_seconds``. With SQLite there is one process by construction, which is the leader. Missed
runs (the process was down, or busy) are coalesced into one run, never replayed in a burst.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from okeguard.bot.slack.people import actor_of
from okeguard.logs import request_context

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)
BOT_ACTOR = "okeguard-scheduler"


def leader_lock_key(database: str, schema: str) -> int:
    """The advisory-lock key of one okeguard deployment: derived from its database and schema,
    so deployments sharing a PostgreSQL server (or a database, in other schemas) never block
    each other's schedulers."""
    digest = hashlib.sha256(f"okeguard-leader:{database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFFFFFFFFFFFFFF


class LeaderLock:
    """A PostgreSQL advisory lock held on a dedicated connection (always granted on SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Any = None
        self._key: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name != "postgresql":
            self.held = True
            return True
        connection = self.engine.connect()
        if self._key is None:
            database, schema = connection.execute(
                text("SELECT current_database(), current_schema()")
            ).one()
            self._key = leader_lock_key(str(database), str(schema))
        got = bool(
            connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        )
        connection.commit()
        if got:
            self._connection, self.held = connection, True
        else:
            connection.close()
        return got

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
                self._connection.commit()
            finally:
                self._connection.close()
                self._connection = None
        self.held = False


def scheduled_scan(ctx: BotContext, cluster: str) -> None:
    """One scheduled scan: record it, and post new or changed findings to ``slack.channel``."""
    from okeguard.bot.slack.replies import post
    from okeguard.bot.slack.work import scan_and_record, summary_message

    clusters = () if cluster == "*" else (cluster,)
    for part in scan_and_record(ctx, clusters, (), BOT_ACTOR):
        channel = ctx.config.slack.channel
        if channel is None or not (part.new or part.changed or not part.report.complete):
            continue
        post(ctx, channel, summary_message(part))


def scheduled_digest(ctx: BotContext, channel: str, clusters: tuple[str, ...]) -> None:
    from okeguard.bot.slack.commands import send_digest

    send_digest(ctx, channel, clusters=clusters, actor=actor_of(BOT_ACTOR))
    log.info("scheduled digest sent to %s", channel, extra={"channel": channel})


def _guarded(name: str, job: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with request_context():  # one request id per run of a job
            try:
                job()
            except Exception:
                log.exception("scheduled job %s failed", name)

    return run


class BotScheduler:
    """The jobs of ``schedule:`` on a background scheduler, started once this replica leads."""

    def __init__(self, ctx: BotContext, lock: LeaderLock, *, retry_seconds: float = 30.0) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.ctx = ctx
        self.lock = lock
        self.retry_seconds = retry_seconds
        self.scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone="UTC",
        )
        self._stop = threading.Event()
        self._waiter: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self.lock.held

    def add_jobs(self) -> None:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        ctx = self.ctx
        for i, scan in enumerate(ctx.config.schedule.scans):
            name = f"scan:{scan.cluster}:{i}"
            self.scheduler.add_job(
                _guarded(name, partial(scheduled_scan, ctx, scan.cluster)),
                IntervalTrigger(minutes=scan.every_minutes),
                id=name,
                name=name,
                misfire_grace_time=scan.every_minutes * 60,
            )
        for i, digest in enumerate(ctx.config.schedule.digests):
            hour, minute = (int(x) for x in digest.time.split(":"))
            name = f"digest:{digest.channel}:{i}"
            self.scheduler.add_job(
                _guarded(name, partial(scheduled_digest, ctx, digest.channel, digest.clusters)),
                CronTrigger(hour=hour, minute=minute, timezone=digest.timezone),
                id=name,
                name=name,
            )

    def start(self) -> None:
        """Start now if this replica gets the lock, else keep trying in the background."""
        self.add_jobs()
        if self.lock.try_acquire():
            self.scheduler.start()
            log.info("scheduler started: this replica leads (%d jobs)", len(self.jobs()))
            return
        log.info("another replica leads; retrying the leader lock every %gs", self.retry_seconds)
        self._waiter = threading.Thread(target=self._wait_for_lead, daemon=True)
        self._waiter.start()

    def _wait_for_lead(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            if self.lock.try_acquire():
                self.scheduler.start()
                log.info("scheduler started: this replica now leads")
                return

    def jobs(self) -> list[Any]:
        return list(self.scheduler.get_jobs())

    def shutdown(self) -> None:
        self._stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.lock.release()
