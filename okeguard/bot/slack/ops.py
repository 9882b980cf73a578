"""The operations port: ``/healthz`` (the process answers), ``/readyz`` (the database answers
and Slack is connected) and ``/metrics`` (Prometheus text format), on a port of its own so
probes and scrapes never share the Slack endpoint.

It is served like the Slack endpoint (:class:`~okeguard.bot.slack.http_server.BoundedHttpServer`)
with small fixed limits, so that nothing reaching the port can hold more than a few threads or
keep probes from being answered: GET only, a whole request within 5 s, 256 connections.
"""

from __future__ import annotations

from collections.abc import Callable

from okeguard.bot.slack.http_server import Answer, BoundedHttpServer
from okeguard.bot.slack.http_wire import Refusal, Request
from okeguard.bot.slack.metrics import Metrics
from okeguard.config import ServeHttpConfig

# Only the kubelet and Prometheus should reach this port (the NetworkPolicy of deploy/).
OPS_LIMITS = ServeHttpConfig(
    max_body_bytes=1024, read_timeout_seconds=5, workers=2, backlog=32, max_connections=256
)
PATHS = ("/healthz", "/readyz", "/metrics")


class _OpsHttp(BoundedHttpServer):
    allow = "GET"
    name = "ops"

    def __init__(self, server: OpsServer, host: str, port: int) -> None:
        super().__init__(host, port, OPS_LIMITS)
        self.server = server

    def check(self, request: Request) -> None:
        if request.method != "GET":
            raise Refusal(405, "method", f"{request.method[:20]} is not GET")
        if request.path not in PATHS:
            raise Refusal(404, "not_found", f"nothing at {request.path[:100]!r}")

    def handle(self, request: Request, client: str) -> Answer:
        text = [("Content-Type", "text/plain")]
        if request.path == "/healthz":
            return 200, text, b"ok\n"
        if request.path == "/readyz":
            ok, why = self.server.ready()
            return 200 if ok else 503, text, (why + "\n").encode()
        metrics = [("Content-Type", "text/plain; version=0.0.4")]
        return 200, metrics, self.server.metrics.render()


class OpsServer:
    """The probes and metrics of ``okeguard serve`` on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        port: int,
        metrics: Metrics,
        ready: Callable[[], tuple[bool, str]],
        host: str = "0.0.0.0",
    ) -> None:
        self.metrics = metrics
        self.ready = ready
        self.http = _OpsHttp(self, host, port)

    @property
    def port(self) -> int:
        return self.http.port

    def start(self) -> OpsServer:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()
