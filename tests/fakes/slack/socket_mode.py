"""Socket Mode in the fake Slack: ``apps.connections.open`` and a WebSocket server.

``apps.connections.open`` needs the app-level token (``api.app_token``, ``xapp-…``; a bot token
→ ``not_allowed_token_type``, another → ``invalid_auth``) and answers ``{"ok": true, "url":
"ws://127.0.0.1:PORT/link/?ticket=…&app_id=…"}``; each ticket is good for one connection.

The WebSocket server (RFC 6455, standard library only) runs in threads on 127.0.0.1, started
on first use and stopped with the fake. It checks the Upgrade handshake (GET, ``Upgrade:
websocket``, ``Connection: Upgrade``, ``Sec-WebSocket-Version: 13``, a 16-byte
``Sec-WebSocket-Key``, an issued ticket) and answers 101 with ``Sec-WebSocket-Accept``, or 400
(401 for a bad ticket). Client frames must be masked (else close 1002); text and binary messages
may be fragmented; pings are answered with pongs of the same payload; a close frame is answered
with one and the socket closed. Server frames are never masked.

Slack's protocol on top: each connection gets ``{"type": "hello", "num_connections": n,
"debug_info": {…}, "connection_info": {"app_id": …}}``; ``socket_send*`` push envelopes
``{"envelope_id", "type", "payload", "accepts_response_payload"}`` (as slack_sdk's
``SocketModeRequest.from_dict`` reads them) to the newest open connection; text messages with an
``envelope_id`` that come back are acks (``SocketModeResponse.to_dict()``: ``{"envelope_id",
"payload"?}``), recorded with their arrival time. ``socket_disconnect`` sends Slack's
``{"type": "disconnect", "reason": …}`` (the client reconnects through apps.connections.open),
``socket_close`` a close frame, ``socket_ping`` a ping (and waits for the pong).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.slack.methods import method
from tests.fakes.slack.model import APP_ID, TEAM_DOMAIN, TEAM_ID
from tests.fakes.slack.signing import (
    CHANNEL_ID,
    CHANNEL_NAME,
    TRIGGER_ID,
    USER_ID,
    USER_NAME,
    VERIFICATION_TOKEN,
)

if TYPE_CHECKING:
    from tests.fakes.slack.store import FakeSlackApi

APP_TOKEN = "xapp-1-A0FAKEAPP-1-fake-app-level-token"
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})  # only the app-level token may call
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_CONTROL = frozenset({OP_CLOSE, OP_PING, OP_PONG})
_DATA = frozenset({OP_CONTINUATION, OP_TEXT, OP_BINARY})
MAX_MESSAGE = 16 * 1024 * 1024

# Slack: slash commands and the interactions whose ack may carry an answer (response_action,
# options) accept a response payload; block_actions, shortcuts and events do not.
_ACCEPTS_RESPONSE = frozenset({"view_submission", "block_suggestion"})


# -- the WebSocket protocol --------------------------------------------------------------------
def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def encode_frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame; ``mask`` (4 bytes) for client frames, none for the server's."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if mask is not None:
        if len(mask) != 4:
            raise ValueError("a mask is 4 bytes")
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason.encode()


class ProtocolError(Exception):
    """The peer broke RFC 6455: the connection is closed with ``code``."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes  # unmasked
    masked: bool


class _Reader:
    """Buffered reads of a socket (what follows the handshake may arrive with it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the peer closed the connection")
        self.buffer += data

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read_until(self, marker: bytes, limit: int = 65536) -> bytes:
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise ProtocolError("request headers too long")
            self._fill()
        out, _, self.buffer = self.buffer.partition(marker)
        return out


def read_frame(reader: _Reader, *, require_mask: bool = True) -> Frame:
    b1, b2 = reader.read_exact(2)
    if b1 & 0x70:
        raise ProtocolError("reserved bits set without an extension")
    fin, opcode, masked, n = bool(b1 & 0x80), b1 & 0x0F, bool(b2 & 0x80), b2 & 0x7F
    if opcode not in _CONTROL | _DATA:
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    if opcode in _CONTROL and (not fin or n > 125):
        raise ProtocolError("control frames are short and never fragmented")
    if n == 126:
        (n,) = struct.unpack("!H", reader.read_exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", reader.read_exact(8))
    if n > MAX_MESSAGE:
        raise ProtocolError("frame too big", 1009)
    if require_mask and not masked:
        raise ProtocolError("client frames must be masked")
    mask = reader.read_exact(4) if masked else b""
    data = reader.read_exact(n)
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return Frame(fin, opcode, data, masked)


# -- recorded traffic --------------------------------------------------------------------------
@dataclass(frozen=True)
class SocketEnvelope:
    """An envelope the fake pushed, and when (``time.time()``)."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    connection_id: str
    sent_at: float
    extra: Mapping[str, Any] = field(default_factory=dict)  # retry_attempt, retry_reason…

    def to_dict(self) -> dict[str, Any]:
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "payload": copy.deepcopy(self.payload),
            "accepts_response_payload": self.accepts_response_payload,
            **self.extra,
        }


@dataclass(frozen=True)
class SocketAck:
    """An acknowledgement the client sent: ``{"envelope_id": …, "payload": {…}?}``, its arrival
    (``time.time()``) and how long after its envelope it came (None: no such envelope)."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    message: dict[str, Any]
    connection_id: str
    latency: float | None


@dataclass
class SocketConnection:
    """One WebSocket connection: what it requested and everything that came over it."""

    id: str  # the ticket
    path: str
    headers: dict[str, str]
    opened_at: float
    sock: socket.socket
    reader: _Reader
    messages: list[Any] = field(default_factory=list)  # text (JSON decoded) and binary received
    pings: list[bytes] = field(default_factory=list)  # payloads of the client's pings
    pongs: list[bytes] = field(default_factory=list)  # payloads of the client's pongs
    close_received: tuple[int | None, str] | None = None  # the client's close frame
    close_sent: tuple[int | None, str] | None = None
    closed_at: float | None = None
    error: str | None = None  # a protocol error that ended it
    _send_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None and self.close_sent is None

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(encode_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self._send_frame(OP_TEXT, text.encode())

    def send_json(self, message: Mapping[str, Any]) -> None:
        self.send_text(json.dumps(message))


class SocketModeServer:
    """The WebSocket side of the fake; reached through ``FakeSlackApi``'s ``socket_*`` methods."""

    def __init__(self, app_id: str = APP_ID) -> None:
        self.app_id = app_id
        self.connections: list[SocketConnection] = []
        self.envelopes: list[SocketEnvelope] = []
        self.acks: list[SocketAck] = []
        self.rejected: list[tuple[int, str]] = []  # refused handshakes: (status, why)
        self._tickets: set[str] = set()
        self._changed = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._counter: Iterator[int] = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> SocketModeServer:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept_loop, "fake-slack-socket-accept")
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            connections = list(self.connections)
        for conn in connections:
            if conn.closed_at is None:
                self._shut(conn)
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        self._threads.clear()

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() the socket server first"
        return int(self._listener.getsockname()[1])

    def issue_url(self) -> str:
        """A one-time WebSocket URL, as apps.connections.open hands it out."""
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- serving -------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._serve, "fake-slack-socket-conn", sock)

    def _refuse(self, sock: socket.socket, status: int, why: str) -> None:
        reason = {400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed"}[status]
        body = why.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with self._changed:
            self.rejected.append((status, why))
        try:
            sock.sendall(head.encode() + body)
        finally:
            sock.close()

    def _handshake(self, sock: socket.socket, reader: _Reader) -> SocketConnection | None:
        try:
            raw = reader.read_until(b"\r\n\r\n").decode("latin-1")
        except (EOFError, OSError, ProtocolError):
            sock.close()
            return None
        request_line, *lines = raw.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._refuse(sock, 400, "not an HTTP request")
            return None
        verb, target, _ = parts
        if verb != "GET":
            self._refuse(sock, 405, "a WebSocket handshake is a GET")
            return None
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        key = headers.get("sec-websocket-key", "")
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            key_ok = False
        if (
            headers.get("upgrade", "").lower() != "websocket"
            or "upgrade" not in tokens
            or headers.get("sec-websocket-version") != "13"
            or not key_ok
            or "host" not in headers
        ):
            self._refuse(sock, 400, "not a WebSocket upgrade (RFC 6455 section 4.1)")
            return None
        split = urlsplit(target)
        ticket = (parse_qs(split.query).get("ticket") or [""])[0]
        with self._changed:
            valid = split.path.rstrip("/") == "/link" and ticket in self._tickets
            self._tickets.discard(ticket)
        if not valid:
            self._refuse(sock, 401, "unknown or used ticket: call apps.connections.open")
            return None
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        conn = SocketConnection(ticket, target, headers, time.time(), sock, reader)
        with self._changed:
            self.connections.append(conn)
            count = sum(1 for c in self.connections if c.is_open)
            self._changed.notify_all()
        conn.send_json(
            {
                "type": "hello",
                "num_connections": count,
                "debug_info": {
                    "host": "applink-fake-1",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        return conn

    def _serve(self, sock: socket.socket) -> None:
        reader = _Reader(sock)
        conn = self._handshake(sock, reader)
        if conn is None:
            return
        fragments: list[bytes] = []
        fragment_opcode: int | None = None
        try:
            while True:
                frame = read_frame(reader)
                if frame.opcode == OP_PING:
                    with self._changed:
                        conn.pings.append(frame.payload)
                    conn._send_frame(OP_PONG, frame.payload)
                elif frame.opcode == OP_PONG:
                    with self._changed:
                        conn.pongs.append(frame.payload)
                        self._changed.notify_all()
                elif frame.opcode == OP_CLOSE:
                    self._closed_by_client(conn, frame.payload)
                    return
                else:
                    if frame.opcode == OP_CONTINUATION:
                        if fragment_opcode is None:
                            raise ProtocolError("a continuation without a message")
                    elif fragment_opcode is not None:
                        raise ProtocolError("a new message inside a fragmented one")
                    else:
                        fragment_opcode = frame.opcode
                    fragments.append(frame.payload)
                    if sum(len(f) for f in fragments) > MAX_MESSAGE:
                        raise ProtocolError("message too big", 1009)
                    if frame.fin:
                        data, opcode = b"".join(fragments), fragment_opcode
                        fragments, fragment_opcode = [], None
                        self._received(conn, opcode, data)
        except ProtocolError as exc:
            with self._changed:
                conn.error = str(exc)
            self._send_close(conn, exc.code, str(exc))
        except (EOFError, OSError):
            pass  # the client went away (the builtin client closes without a close frame)
        finally:
            self._shut(conn)

    def _received(self, conn: SocketConnection, opcode: int, data: bytes) -> None:
        if opcode == OP_BINARY:
            with self._changed:
                conn.messages.append(data)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("text that is not UTF-8", 1007) from None
        try:
            message: Any = json.loads(text)
        except ValueError:
            message = text
        at = time.time()
        with self._changed:
            conn.messages.append(message)
            if isinstance(message, dict) and message.get("envelope_id"):
                envelope_id = str(message["envelope_id"])
                sent = next((e for e in self.envelopes if e.envelope_id == envelope_id), None)
                payload = message.get("payload")
                self.acks.append(
                    SocketAck(
                        envelope_id,
                        dict(payload) if isinstance(payload, dict) else None,
                        at,
                        message,
                        conn.id,
                        None if sent is None else at - sent.sent_at,
                    )
                )
            self._changed.notify_all()

    def _closed_by_client(self, conn: SocketConnection, payload: bytes) -> None:
        if len(payload) == 1:
            raise ProtocolError("a close payload of one byte")
        code = struct.unpack("!H", payload[:2])[0] if payload else None
        reason = payload[2:].decode("utf-8", "replace")
        with self._changed:
            conn.close_received = (code, reason)
        if conn.close_sent is None:  # echo it, as RFC 6455 section 5.5.1 asks
            self._send_close(conn, code, "")

    def _send_close(self, conn: SocketConnection, code: int | None, reason: str) -> None:
        with self._changed:
            if conn.close_sent is not None or conn.closed_at is not None:
                return
            conn.close_sent = (code, reason)
        with contextlib.suppress(OSError):
            conn._send_frame(OP_CLOSE, close_payload(code, reason[:120]))

    def _shut(self, conn: SocketConnection) -> None:
        with self._changed:
            if conn.closed_at is not None:
                return
            conn.closed_at = time.time()
            self._changed.notify_all()
        with contextlib.suppress(OSError):  # wakes the connection's thread blocked in recv
            conn.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            conn.sock.close()

    # -- what tests do -------------------------------------------------------------------------
    def open_connections(self) -> list[SocketConnection]:
        with self._changed:
            return [c for c in self.connections if c.is_open]

    def wait_for_connection(self, timeout: float = 5.0, *, after: int = 0) -> SocketConnection:
        """The newest open connection, waiting for one (``after``: the ``len(connections)``
        before, to wait for a new one)."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((c for c in reversed(self.connections[after:]) if c.is_open), None),
                timeout,
            )
        if found is None:
            raise TimeoutError(f"no Socket Mode connection within {timeout} s")
        return found

    def send(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool,
        connection: SocketConnection | None = None,
        timeout: float = 5.0,
        **extra: Any,
    ) -> SocketEnvelope:
        conn = connection or self.wait_for_connection(timeout)
        envelope = SocketEnvelope(
            str(uuid.uuid4()),
            type,
            copy.deepcopy(dict(payload)),
            accepts_response_payload,
            conn.id,
            time.time(),
            extra,
        )
        with self._changed:
            self.envelopes.append(envelope)
        conn.send_json(envelope.to_dict())
        return envelope

    def wait_for_ack(self, envelope_id: str, timeout: float = 3.0) -> SocketAck:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((a for a in self.acks if a.envelope_id == envelope_id), None),
                timeout,
            )
        if found is None:
            raise TimeoutError(f"envelope {envelope_id} not acknowledged within {timeout} s")
        return found

    def ping(
        self,
        payload: bytes = b"",
        *,
        connection: SocketConnection | None = None,
        timeout: float = 3.0,
    ) -> float:
        """Ping; the seconds until the matching pong came back."""
        conn = connection or self.wait_for_connection(timeout)
        payload = payload or f"fake-ping-{next(self._counter)}".encode()
        started = time.monotonic()
        conn._send_frame(OP_PING, payload)
        with self._changed:
            got = self._changed.wait_for(lambda: payload in conn.pongs, timeout)
        if not got:
            raise TimeoutError(f"no pong for {payload!r} within {timeout} s")
        return time.monotonic() - started

    def close(
        self,
        code: int = 1000,
        reason: str = "",
        *,
        connection: SocketConnection | None = None,
        timeout: float = 3.0,
    ) -> SocketConnection:
        """Send a close frame and wait for the client's close frame or for it to hang up."""
        conn = connection or self.wait_for_connection(timeout)
        self._send_close(conn, code, reason)
        with self._changed:
            done = self._changed.wait_for(lambda: conn.closed_at is not None, timeout)
        if not done:
            self._shut(conn)
        return conn

    def disconnect(
        self, reason: str = "refresh_requested", *, connection: SocketConnection | None = None
    ) -> SocketConnection:
        """Slack's warning before it drops a connection: the client should reconnect."""
        conn = connection or self.wait_for_connection()
        conn.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}}
        )
        return conn


# -- in the fake Slack -------------------------------------------------------------------------
@method("apps.connections.open")
def apps_connections_open(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    return {"url": api.socket_mode.issue_url()}


class SocketModeApi:
    """The Socket Mode half of ``FakeSlackApi`` (a mixin: the dataclass holds ``app_token``,
    ``_socket_server`` and ``_lock``)."""

    app_token: str
    _socket_server: SocketModeServer | None
    _lock: threading.RLock

    @property
    def socket_mode(self) -> SocketModeServer:
        """The WebSocket server, started on first use."""
        with self._lock:
            if self._socket_server is None:
                self._socket_server = SocketModeServer().start()
            return self._socket_server

    def _stop_socket_mode(self) -> None:
        with self._lock:
            server, self._socket_server = self._socket_server, None
        if server is not None:
            server.stop()

    @property
    def socket_connections(self) -> list[SocketConnection]:
        """Every WebSocket connection made, oldest first (``is_open`` for the live ones)."""
        server = self.socket_mode
        with server._changed:
            return list(server.connections)

    @property
    def socket_envelopes(self) -> list[SocketEnvelope]:
        server = self.socket_mode
        with server._changed:
            return list(server.envelopes)

    @property
    def socket_acks(self) -> list[SocketAck]:
        """The acknowledgements received, in order of arrival."""
        server = self.socket_mode
        with server._changed:
            return list(server.acks)

    def wait_for_socket_connection(
        self, timeout: float = 5.0, *, after: int = 0
    ) -> SocketConnection:
        return self.socket_mode.wait_for_connection(timeout, after=after)

    def socket_send(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool = False,
        **extra: Any,
    ) -> str:
        """Push an envelope of any ``type`` (``events_api``: pass ``retry_attempt``…); its id."""
        return self.socket_mode.send(
            type, payload, accepts_response_payload=accepts_response_payload, **extra
        ).envelope_id

    def socket_send_slash_command(
        self,
        text: str = "",
        *,
        command: str = "/okeguard",
        user_id: str = USER_ID,
        user_name: str = USER_NAME,
        channel_id: str = CHANNEL_ID,
        channel_name: str = CHANNEL_NAME,
        trigger_id: str = TRIGGER_ID,
        response_url: str | None = None,
    ) -> str:
        """Push a ``slash_commands`` envelope (the payload: the fields of the HTTP form, as
        strings); the response URL defaults to one on this fake bound to the channel and user.
        Returns the envelope id."""
        if response_url is None:
            response_url = self.new_response_url(channel=channel_id, user=user_id)  # type: ignore[attr-defined]
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.socket_mode.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        return self.socket_send("slash_commands", payload, accepts_response_payload=True)

    def socket_send_interactive(
        self, payload: Mapping[str, Any], *, accepts_response_payload: bool | None = None
    ) -> str:
        """Push an ``interactive`` envelope (``block_action_payload(…)``,
        ``view_submission_payload(…)``…). ``accepts_response_payload`` defaults to Slack's:
        true for view_submission and block_suggestion, false otherwise. The envelope id."""
        if accepts_response_payload is None:
            accepts_response_payload = payload.get("type") in _ACCEPTS_RESPONSE
        return self.socket_send(
            "interactive", payload, accepts_response_payload=accepts_response_payload
        )

    def wait_for_ack(self, envelope_id: str, timeout: float = 3.0) -> SocketAck:
        """The ack of an envelope (TimeoutError when it does not come within ``timeout``)."""
        return self.socket_mode.wait_for_ack(envelope_id, timeout)

    def socket_ping(self, payload: bytes = b"", timeout: float = 3.0) -> float:
        """Ping the newest connection; seconds until its pong."""
        return self.socket_mode.ping(payload, timeout=timeout)

    def socket_close(self, code: int = 1000, reason: str = "") -> SocketConnection:
        """Close the newest connection (a close frame, then wait for the client to go)."""
        return self.socket_mode.close(code, reason)

    def socket_disconnect(self, reason: str = "refresh_requested") -> SocketConnection:
        """Send Slack's ``disconnect`` message to the newest connection."""
        return self.socket_mode.disconnect(reason)
