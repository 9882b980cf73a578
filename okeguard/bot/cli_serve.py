"""``okeguard serve``: the Slack bot, its scheduler and its operations port.

Start-up, in order: load the configuration; migrate the database (audited); settle what a crash
left behind (``remediations reconcile``); open the operations port (``/healthz``, ``/readyz``,
``/metrics``); start the scheduler (on the replica holding the leader lock); then serve Slack,
in Socket Mode (``SLACK_APP_TOKEN``: outbound connections only) or, with ``--http PORT``, the
Events API at ``/slack/events`` (``SLACK_SIGNING_SECRET``), bounded by ``serve.http`` and the
``OKEGUARD_HTTP_*`` variables before any request is verified (``slack/http_server.py``).
``SLACK_BOT_TOKEN`` is needed by both. Tokens are read from the environment only and never logged.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CliContext, sessions_at
from okeguard.errors import ConfigError

if TYPE_CHECKING:
    from okeguard.bot.slack.http_server import SlackHttpServer
    from okeguard.bot.slack.ops import OpsServer
    from okeguard.bot.slack.scheduler import BotScheduler
    from okeguard.bot.slack.work import BotContext
    from okeguard.config import Config

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


def _env(name: str, env: Mapping[str, str], why: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is not set: {why}")
    return value


@dataclass
class RunningBot:
    """A started bot: stop it with :meth:`stop`."""

    ctx: BotContext
    app: Any
    scheduler: BotScheduler
    ops: OpsServer
    http: SlackHttpServer | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    socket_handler: Any = None
    workers: Any = None  # the scan worker process pool

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    def stop(self) -> None:
        if self.socket_handler is not None:
            self.socket_handler.close()
        if self.http is not None:
            self.http.stop()
        self.scheduler.shutdown()
        self.ops.stop()
        if self.workers is not None:
            self.workers.shutdown(wait=True, cancel_futures=True)


def start_bot(
    config: Config,
    *,
    database_url: str,
    env: Mapping[str, str],
    http_port: int | None = None,
    health_port: int = 8081,
    oci_endpoints: Mapping[str, str] | None = None,
    host: str = "0.0.0.0",
    socket_mode: bool = False,
) -> RunningBot:
    """Start the bot: Socket Mode (``SLACK_APP_TOKEN``) when ``socket_mode``, else the Events
    API on ``http_port``. Returns the running bot; :meth:`RunningBot.stop` stops it."""
    from okeguard.audit.db import make_engine, session_factory
    from okeguard.audit.keys import audit_keys
    from okeguard.bot.slack.actions import show_reconciled
    from okeguard.bot.slack.app import build_app
    from okeguard.bot.slack.metrics import Metrics
    from okeguard.bot.slack.ops import OpsServer
    from okeguard.bot.slack.people import Authorizer
    from okeguard.bot.slack.posting import Pacer, make_client
    from okeguard.bot.slack.scheduler import BOT_ACTOR, BotScheduler, LeaderLock
    from okeguard.bot.slack.work import BotContext
    from okeguard.bot.workers import scan_worker_pool
    from okeguard.logs import register_secrets, secrets_from_env
    from okeguard.remediations.live import LiveCluster, live_cluster
    from okeguard.remediations.workflow import reconcile

    register_secrets(secrets_from_env(env))  # never logged, even when passed in, not inherited
    audit_keys()  # a malformed audit key stops the bot now, not at its first audit event
    token = _env("SLACK_BOT_TOKEN", env, "the bot token (xoxb-…) of the Slack app")
    signing_secret = None
    if http_port is not None:
        from okeguard.bot.slack.http_server import http_limits

        signing_secret = _env("SLACK_SIGNING_SECRET", env, "HTTP mode verifies every request")
        limits = http_limits(config.serve.http, env)  # a bad OKEGUARD_HTTP_* stops us now
    client = make_client(token, base_url=env.get("OKEGUARD_SLACK_API_URL"))
    with sessions_at(database_url):  # migrate (audited) before anything reads
        pass
    engine = make_engine(database_url)
    sessions = session_factory(engine)

    def live_for(name: str) -> LiveCluster:
        return live_cluster(config, cluster=name, oci_endpoints=oci_endpoints)

    # Scans run in a worker process: reading and checking a large cluster is CPU-bound Python,
    # and in this process it would hold the GIL against Slack's acknowledgements.
    workers = scan_worker_pool(max_workers=1)

    def scan(clusters: Any, namespaces: Any) -> Any:
        job = workers.submit(
            scan_in_worker, config, tuple(clusters), tuple(namespaces), oci_endpoints
        )
        return job.result()

    metrics = Metrics()
    ctx = BotContext(
        config=config,
        sessions=sessions,
        client=client,
        authorizer=Authorizer(client, config.slack),
        pacer=Pacer(config.slack.post_interval_seconds),
        metrics=metrics,
        live_for=live_for,
        scan=scan,
    )
    reconciled = reconcile(
        sessions, BOT_ACTOR, live_for, lease_seconds=config.remediation.lease_seconds
    )
    for result in reconciled:
        log.info("reconciled request %s: %s", result.request_id, result.state)
    app = build_app(ctx, signing_secret=signing_secret)
    show_reconciled(ctx, reconciled)

    def ready() -> tuple[bool, str]:
        from sqlalchemy import text

        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return False, f"database: {type(exc).__name__}"
        return True, "ready"

    ops = OpsServer(health_port, metrics, ready, host=host).start()
    scheduler = BotScheduler(ctx, LeaderLock(engine))
    scheduler.start()
    bot = RunningBot(ctx, app, scheduler, ops, workers=workers)
    if socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app_token = _env("SLACK_APP_TOKEN", env, "Socket Mode needs the app-level token (xapp-…)")
        bot.socket_handler = SocketModeHandler(app, app_token, web_client=client)
        bot.socket_handler.connect()
    elif http_port is not None:
        from okeguard.bot.slack.http_server import SlackHttpServer

        assert signing_secret is not None
        bot.http = SlackHttpServer(app, signing_secret, host, http_port, limits, path=EVENTS_PATH)
        bot.http.start()
    return bot


def scan_in_worker(
    config: Config,
    clusters: tuple[str, ...],
    namespaces: tuple[str, ...],
    oci_endpoints: Mapping[str, str] | None,
) -> Any:
    """Run in the scan worker process: scan the configured clusters, return the report."""
    from okeguard.fleet import scan_configured

    return scan_configured(config, clusters, namespaces=namespaces, oci_endpoints=oci_endpoints)


@click.command("serve")
@click.option("--config", "config_path", metavar="FILE", help="Configuration file (okeguard.yaml).")
@click.option(
    "--http",
    "http_port",
    type=int,
    metavar="PORT",
    help="Serve the Events API on PORT instead of Socket Mode.",
)
@click.option(
    "--health-port",
    default=8081,
    show_default=True,
    type=int,
    help="Port of /healthz, /readyz and /metrics.",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--log-format",
    default="json",
    show_default=True,
    type=click.Choice(["json", "text"]),
    help="Logs on stderr: JSON lines (one object per line) or text.",
)
def serve_command(
    config_path: str | None,
    http_port: int | None,
    health_port: int,
    host: str,
    log_format: str,
) -> None:
    """Run the Slack bot: slash commands, buttons, approvals, scheduled scans and digests.

    \b
    Environment: SLACK_BOT_TOKEN (always), SLACK_APP_TOKEN (Socket Mode, the default),
    SLACK_SIGNING_SECRET (--http), OKEGUARD_DATABASE_URL (optional), OKEGUARD_HTTP_* (limits
    of --http: body size, read timeout, workers, backlog, connections; see serve.http).
    \b
    Examples:
      okeguard serve --config okeguard.yaml                 # Socket Mode: no inbound exposure
      okeguard serve --config okeguard.yaml --http 3000     # Events API at /slack/events
    """
    from okeguard.audit.db import resolve_url
    from okeguard.logs import configure_logging

    cli = CliContext.of(config_path)
    # a service logs INFO by default (scans, buttons, decisions); -v for DEBUG
    configure_logging(logging.INFO - 10 * min(cli.verbose, 1), json=log_format == "json")
    env = dict(os.environ)
    config = cli.config
    # Hand the GIL over more often (default 5 ms): acknowledgements are short, and each one
    # waiting a full interval behind listener work adds up in a burst of clicks.
    sys.setswitchinterval(0.001)
    if http_port is None:
        _env(
            "SLACK_APP_TOKEN",
            env,
            "Socket Mode needs the app-level token (xapp-…); or use --http PORT",
        )
    bot = start_bot(
        config,
        database_url=resolve_url(config.database.url),
        env=env,
        http_port=http_port,
        health_port=health_port,
        host=host,
        socket_mode=http_port is None,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if bot.socket_handler is not None:
        click.echo("okeguard: connected to Slack (Socket Mode)", err=True)
    else:
        click.echo(
            f"okeguard: serving the Events API at http://{host}:{bot.http_port}{EVENTS_PATH}",
            err=True,
        )
    stop.wait()
    bot.stop()
