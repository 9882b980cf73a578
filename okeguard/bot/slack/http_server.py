"""The Events API endpoint of ``okeguard serve --http``, bounded before anything is verified.

One thread runs an asyncio loop that accepts connections and reads each request within the
limits of ``serve.http`` (:class:`~okeguard.config.ServeHttpConfig`): at most
``max_connections`` open at once, a whole request within ``read_timeout_seconds``, a body of at
most ``max_body_bytes``, and bodies in progress at most ``max_body_bytes * (workers + backlog)``
bytes in all. Reading costs no thread, so a slow or half-open connection holds a few KiB and a
file descriptor until its deadline, never a worker. The loop then checks Slack's timestamp and
signature (the same check as Bolt's ``RequestVerification``, which runs again inside the app)
and the body's UTF-8; only then does one of ``workers`` threads hand the request to Bolt, with
at most ``backlog`` more waiting. Everything refused gets its status (400, 401, 404, 405, 408,
413, 431, 503…) and exactly one log line, never a traceback. :class:`BoundedHttpServer` is that
server without Slack; the operations port (``ops.py``) is one too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from okeguard.bot.slack.http_wire import (
    MAX_HEADER_BYTES,
    BodyBudget,
    ClientGone,
    Refusal,
    Request,
    read_request,
    render,
)
from okeguard.config import ServeHttpConfig
from okeguard.errors import ConfigError

if TYPE_CHECKING:
    from slack_bolt import App

log = logging.getLogger(__name__)
ENV_PREFIX = "OKEGUARD_HTTP_"
LISTEN_BACKLOG = 128  # the kernel's queue of connections not yet accepted (the loop is quick)
LINGER_SECONDS = 2.0  # after refusing a body: read on a little so the client sees the answer
LINGER_BYTES = 8 * 1024 * 1024
MAX_CLOCK_SKEW = 5 * 60  # Slack's rule: a request older (or newer) than 5 minutes is a replay
Answer = tuple[int, list[tuple[str, str]], bytes]


def http_limits(config: ServeHttpConfig, env: Mapping[str, str]) -> ServeHttpConfig:
    """``serve.http`` with each ``OKEGUARD_HTTP_<KEY>`` of ``env`` put over it; ConfigError
    naming the variable when one is not valid."""
    names = {f"{ENV_PREFIX}{name.upper()}": name for name in ServeHttpConfig.model_fields}
    overrides = {names[key]: value for key, value in env.items() if key in names}
    try:
        return ServeHttpConfig.model_validate({**config.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = f"{ENV_PREFIX}{str(first['loc'][0]).upper()}" if first["loc"] else ENV_PREFIX
        raise ConfigError(f"{where}: {first['msg']}") from None


def _refused(refusal: Refusal, client: str) -> None:
    log.warning(
        "HTTP %d (%s) for %s: %s",
        refusal.status,
        refusal.reason,
        client,
        refusal.why,
        extra={"http_status": refusal.status, "reason": refusal.reason, "client": client},
    )


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # asyncio's default handler logs a traceback (e.g. accept() failing with EMFILE)
    error = context.get("exception")
    log.error(
        "HTTP server: %s%s",
        context.get("message", "error"),
        f" ({type(error).__name__}: {error})" if error else "",
    )


class BoundedHttpServer:
    """An HTTP server on ``host:port`` within ``limits``: :meth:`check` runs on each request as
    read (in the loop: quick, raises :class:`Refusal`), :meth:`handle` answers the requests that
    pass (in a worker). :meth:`start` it, :meth:`stop` it; ``port`` 0 picks a free port."""

    allow = "POST"  # the Allow header of a 405
    name = "http"

    def __init__(self, host: str, port: int, limits: ServeHttpConfig) -> None:
        self.limits = limits
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix=f"okeguard-{self.name}")
        self._budget = BodyBudget(limits.max_body_bytes * (limits.workers + limits.backlog))
        self._open = 0  # connections; like _waiting, touched by the loop's thread only
        self._waiting = 0  # verified requests handed to the pool and not answered yet
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"okeguard-{self.name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> BoundedHttpServer:
        """Start serving in a thread of its own; returns once connections are accepted."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop accepting, drop open connections, and let the workers finish."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
        self._socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(_loop_error)
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._socket, limit=MAX_HEADER_BYTES
        )
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "unknown"
        self._open += 1
        try:
            with self._budget.account() as take:
                await self._exchange(reader, writer, client, take)
        except (ClientGone, ConnectionError):
            pass
        except Exception as exc:  # a bug here must not end the loop, nor log a traceback
            log.error("HTTP server: %s for %s", type(exc).__name__, client, exc_info=exc)
        finally:
            self._open -= 1
            if task is not None:
                self._tasks.discard(task)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # the client does not read its answer: drop it
            else:
                writer.close()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str, take: Any
    ) -> None:
        limits = self.limits
        try:
            if self._open > limits.max_connections:
                raise Refusal(503, "too_many_connections", f"over {limits.max_connections} open")
            try:
                async with asyncio.timeout(limits.read_timeout_seconds):
                    request = await read_request(
                        reader, writer, max_body_bytes=limits.max_body_bytes, take=take
                    )
            except TimeoutError:
                why = f"no whole request within {limits.read_timeout_seconds:g} s"
                raise Refusal(408, "read_timeout", why) from None
            self.check(request)
            if self._waiting >= limits.workers + limits.backlog:
                raise Refusal(503, "busy", "every worker is busy and the backlog is full")
        except Refusal as refusal:
            _refused(refusal, client)
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            if refusal.status == 405:
                headers.append(("Allow", self.allow))
            if refusal.status == 503:
                headers.append(("Retry-After", "1"))
            await self._send(writer, render(refusal.status, f"{refusal.why}\n".encode(), headers))
            if refusal.unread:
                await self._linger(reader, writer)
            return
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            status, headers, body = await loop.run_in_executor(
                self._pool, self.handle, request, client
            )
        finally:
            self._waiting -= 1
        await self._send(writer, render(status, body, headers))

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.drain(), self.limits.read_timeout_seconds)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read on (and drop) a little of a refused body: closing with unread data resets the
        connection, and a client still sending would never see the answer."""
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                dropped = 0
                while dropped < LINGER_BYTES and (chunk := await reader.read(65536)):
                    dropped += len(chunk)

    def check(self, request: Request) -> None:
        """Refuse ``request`` (raise :class:`Refusal`) unless it may be handled."""

    def handle(self, request: Request, client: str) -> Answer:
        """In a worker: the answer to a request that passed :meth:`check`."""
        raise NotImplementedError


class SlackHttpServer(BoundedHttpServer):
    """Serve ``app`` (Bolt) at ``path`` to requests signed with ``signing_secret``."""

    def __init__(
        self,
        app: App,
        signing_secret: str,
        host: str,
        port: int,
        limits: ServeHttpConfig,
        *,
        path: str = "/slack/events",
    ) -> None:
        super().__init__(host, port, limits)
        self.app = app
        self.path = path
        self._secret = signing_secret.encode()

    def check(self, request: Request) -> None:
        """Refuse what is not a well-formed, signed, fresh Slack request with a UTF-8 body."""
        if request.path != self.path:
            raise Refusal(404, "not_found", f"nothing at {request.path[:100]!r}")
        if request.method != "POST":
            raise Refusal(405, "method", f"{request.method[:20]} is not POST")
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise Refusal(401, "bad_timestamp", "X-Slack-Request-Timestamp missing or not a number")
        if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
            raise Refusal(401, "stale_timestamp", "X-Slack-Request-Timestamp is not within 5 min")
        signed = b"v0:" + timestamp.encode() + b":" + request.body  # Slack's scheme, on bytes
        expected = b"v0=" + hmac.new(self._secret, signed, hashlib.sha256).hexdigest().encode()
        given = request.headers.get("x-slack-signature", "").encode("latin-1")
        if not hmac.compare_digest(expected, given):
            raise Refusal(401, "bad_signature", "X-Slack-Signature missing or wrong")
        try:
            request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "body_not_utf8", "the body is not UTF-8") from None

    def handle(self, request: Request, client: str) -> Answer:
        """Bolt's answer to a verified request."""
        from slack_bolt import BoltRequest

        text = request.body.decode("utf-8")
        try:
            bolt_request = BoltRequest(
                body=text, query=request.query, headers=dict(request.headers)
            )
        except Exception as exc:  # a signed body that is not a Slack payload (bad JSON…)
            why = f"not a Slack payload ({type(exc).__name__})"
            _refused(Refusal(400, "bad_payload", why), client)
            return 400, [("Content-Type", "text/plain")], b"not a Slack payload\n"
        try:
            response = self.app.dispatch(bolt_request)
        except Exception as exc:
            log.error("Slack request failed: %s", type(exc).__name__, exc_info=exc)
            return 500, [("Content-Type", "text/plain")], b"internal error\n"
        headers = [(name, value) for name, values in response.headers.items() for value in values]
        return response.status, headers, str(response.body or "").encode("utf-8")
