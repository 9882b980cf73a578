"""Socket Mode in the fake Slack, driven by the real ``slack_sdk.socket_mode`` builtin client:
apps.connections.open, the WebSocket handshake, hello, envelopes and acks, ping/pong, close and
Slack's disconnect; and the server's RFC 6455 checks, with a raw socket."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from tests.fakes.slack.socket_mode import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    _Reader,
    accept_key,
    encode_frame,
    read_frame,
)
from tests.fakes.slack_api import (
    APP_ID,
    FakeSlackApi,
    block_action_payload,
    running_fake_slack_api,
)
from tests.helpers import wait_for


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with running_fake_slack_api() as api:
        yield api


class Recorder:
    """A real SocketModeClient that records what it gets and acks every request."""

    def __init__(
        self, api: FakeSlackApi, *, answer: dict[str, Any] | None = None, ping_interval: float = 30
    ) -> None:
        self.messages: list[dict[str, Any]] = []
        self.requests: list[SocketModeRequest] = []
        self.closes: list[tuple[int, str | None]] = []
        self.answer = answer
        self.client = SocketModeClient(
            app_token=api.app_token,
            web_client=WebClient(token=api.bot_token, base_url=api.base_url),
            ping_interval=ping_interval,
            on_close_listeners=[lambda code, reason: self.closes.append((code, reason))],
        )
        self.client.message_listeners.append(
            lambda client, message, raw: self.messages.append(message)
        )
        self.client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        self.requests.append(request)
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=self.answer)
        )


@pytest.fixture
def recorder(slack: FakeSlackApi) -> Iterator[Recorder]:
    recorder = Recorder(slack, answer={"text": "got it"})
    recorder.client.connect()
    try:
        yield recorder
    finally:
        recorder.client.close()


# -- apps.connections.open ---------------------------------------------------------------------
def test_apps_connections_open_needs_the_app_level_token(slack: FakeSlackApi) -> None:
    answer = WebClient(base_url=slack.base_url).apps_connections_open(app_token=slack.app_token)
    assert answer["ok"] is True
    assert answer["url"].startswith(f"ws://127.0.0.1:{slack.socket_mode.port}/link/?ticket=")
    call = slack.calls("apps.connections.open")[0]
    assert "Authorization" not in call.headers and "token" not in call.params
    for token, error in (
        (slack.bot_token, "not_allowed_token_type"),
        ("xapp-nope", "invalid_auth"),
    ):
        with pytest.raises(SlackApiError) as raised:
            WebClient(base_url=slack.base_url).apps_connections_open(app_token=token)
        assert raised.value.response["error"] == error
    with pytest.raises(SlackApiError) as raised:  # the app token is no bot token
        WebClient(token=slack.app_token, base_url=slack.base_url).chat_postMessage(
            channel="C1", text="hi"
        )
    assert raised.value.response["error"] == "not_allowed_token_type"


def test_apps_connections_open_faults_apply(slack: FakeSlackApi) -> None:
    slack.fail("apps.connections.open", "internal_error")
    client = WebClient(base_url=slack.base_url)
    with pytest.raises(SlackApiError):
        client.apps_connections_open(app_token=slack.app_token)
    assert client.apps_connections_open(app_token=slack.app_token)["ok"]


# -- the real client ---------------------------------------------------------------------------
def test_the_real_client_connects_gets_hello_and_acks_an_envelope(
    slack: FakeSlackApi, recorder: Recorder
) -> None:
    assert recorder.client.is_connected()
    hello = wait_for("hello", lambda: [m for m in recorder.messages if m.get("type") == "hello"])
    assert hello[0]["num_connections"] == 1
    assert hello[0]["connection_info"] == {"app_id": APP_ID}
    assert "debug_info" in hello[0]
    [conn] = slack.socket_connections
    assert conn.headers["sec-websocket-version"] == "13" and conn.path.startswith("/link/?")

    envelope_id = slack.socket_send_slash_command(
        "scan prod", user_id="U0ALICE", channel_id="C0SEC", trigger_id="t-1"
    )
    ack = slack.wait_for_ack(envelope_id, timeout=3)
    assert ack.payload == {"text": "got it"} and ack.message == {
        "envelope_id": envelope_id,
        "payload": {"text": "got it"},
    }
    assert ack.latency is not None and 0 <= ack.latency < 3
    [request] = recorder.requests
    assert request.type == "slash_commands" and request.envelope_id == envelope_id
    assert request.accepts_response_payload is True
    assert request.payload["command"] == "/okeguard" and request.payload["text"] == "scan prod"
    assert request.payload["user_id"] == "U0ALICE" and request.payload["channel_id"] == "C0SEC"
    assert request.payload["trigger_id"] == "t-1"
    assert request.payload["response_url"].startswith(slack.url + "/response/")
    [envelope] = slack.socket_envelopes
    assert envelope.envelope_id == envelope_id and envelope.to_dict()["type"] == "slash_commands"


def test_interactive_envelopes_and_acks_without_payload(slack: FakeSlackApi) -> None:
    recorder = Recorder(slack)  # acks with no payload
    recorder.client.connect()
    try:
        click = block_action_payload("okeguard.request", "abc", user_id="U0BOB")
        first = slack.socket_send_interactive(click)
        submit = {"type": "view_submission", "view": {"callback_id": "x"}}
        second = slack.socket_send_interactive(submit)
        assert slack.wait_for_ack(first).payload is None
        assert slack.wait_for_ack(second).message == {"envelope_id": second}
        requests = {r.envelope_id: r for r in recorder.requests}
        assert requests[first].type == "interactive"
        assert requests[first].payload["actions"][0]["value"] == "abc"
        assert requests[first].accepts_response_payload is False  # as Slack: block_actions
        assert requests[second].accepts_response_payload is True
        with pytest.raises(TimeoutError):
            slack.wait_for_ack("no-such-envelope", timeout=0.2)
    finally:
        recorder.client.close()


def test_ping_pong_both_ways(slack: FakeSlackApi, recorder: Recorder) -> None:
    conn = slack.wait_for_socket_connection()
    # the client pings on connect; the fake pongs with the same payload
    wait_for("the client's ping", lambda: conn.pings)
    session = recorder.client.current_session
    assert session is not None
    assert conn.pings[0].decode().startswith(session.session_id + ":")
    wait_for("the pong to reach the client", lambda: session.last_ping_pong_time)
    # the fake pings; the client pongs
    assert slack.socket_ping(b"are-you-there") < 3
    assert b"are-you-there" in conn.pongs


def test_a_close_from_the_server_is_seen_and_the_client_reconnects(slack: FakeSlackApi) -> None:
    # the builtin client reconnects when its monitor (every ping_interval) finds the session gone
    recorder = Recorder(slack, ping_interval=0.5)
    recorder.client.connect()
    try:
        first = slack.wait_for_socket_connection()
        closed = slack.socket_close(1001, "going away")
        assert closed is first and closed.closed_at is not None
        wait_for("on_close", lambda: recorder.closes)
        assert recorder.closes[0] == (1001, "going away")
        second = slack.wait_for_socket_connection(after=1)
        assert second is not first and len(slack.calls("apps.connections.open")) == 2
        envelope_id = slack.socket_send("events_api", {"event": {"type": "app_mention"}})
        assert slack.wait_for_ack(envelope_id).connection_id == second.id
    finally:
        recorder.client.close()


def test_slack_disconnect_message_makes_the_client_reconnect(
    slack: FakeSlackApi, recorder: Recorder
) -> None:
    first = slack.wait_for_socket_connection()
    slack.socket_disconnect("refresh_requested")
    second = slack.wait_for_socket_connection(after=1)
    assert second is not first
    wait_for("the old connection to go", lambda: first.closed_at)
    envelope_id = slack.socket_send_slash_command("help")
    assert slack.wait_for_ack(envelope_id).connection_id == second.id


def test_the_client_closing_is_seen(slack: FakeSlackApi) -> None:
    recorder = Recorder(slack)
    recorder.client.connect()
    conn = slack.wait_for_socket_connection()
    started = time.monotonic()
    recorder.client.close()
    wait_for("the server to see the close", lambda: conn.closed_at)
    assert time.monotonic() - started < 10
    assert not slack.socket_mode.open_connections()


# -- RFC 6455 with a raw socket ----------------------------------------------------------------
def handshake(
    slack: FakeSlackApi, *, url: str | None = None, headers: dict[str, str] | None = None
) -> tuple[socket.socket, str, _Reader]:
    url = url or slack.socket_mode.issue_url()
    path = url.split(f"127.0.0.1:{slack.socket_mode.port}", 1)[1]
    key = base64.b64encode(os.urandom(16)).decode()
    fields = {
        "Host": f"127.0.0.1:{slack.socket_mode.port}",
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
    sock = socket.create_connection(("127.0.0.1", slack.socket_mode.port), timeout=5)
    sock.sendall((request + "\r\n").encode())
    reader = _Reader(sock)
    head = reader.read_until(b"\r\n\r\n").decode()
    assert head.startswith("HTTP/1.1 "), head
    if " 101 " in head.split("\r\n")[0]:
        assert f"Sec-WebSocket-Accept: {accept_key(key)}" in head
    return sock, head, reader


def server_frame(reader: _Reader) -> Frame:
    frame = read_frame(reader, require_mask=False)
    assert not frame.masked, "a server never masks"
    return frame


def masked(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask=os.urandom(4))


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshakes_are_checked(slack: FakeSlackApi) -> None:
    sock, head, _ = handshake(slack, url=f"ws://127.0.0.1:{slack.socket_mode.port}/link/?ticket=x")
    assert head.startswith("HTTP/1.1 401")
    sock.close()
    url = slack.socket_mode.issue_url()
    sock, head, _ = handshake(slack, url=url, headers={"Sec-WebSocket-Key": ""})
    assert head.startswith("HTTP/1.1 400")
    sock.close()
    sock, head, _ = handshake(slack, url=url, headers={"Sec-WebSocket-Version": "8"})
    assert head.startswith("HTTP/1.1 400")
    sock.close()
    sock, head, _ = handshake(slack, url=url)
    assert head.startswith("HTTP/1.1 101")
    sock.close()
    sock, head, _ = handshake(slack, url=url)  # a ticket is good once
    assert head.startswith("HTTP/1.1 401")
    sock.close()
    assert [status for status, _ in slack.socket_mode.rejected] == [401, 400, 400, 401]


def test_frames_fragments_ping_and_close_handshake(slack: FakeSlackApi) -> None:
    sock, _, reader = handshake(slack)
    try:
        hello = server_frame(reader)
        assert hello.opcode == OP_TEXT and json.loads(hello.payload)["type"] == "hello"
        envelope_id = slack.socket_send("events_api", {"big": "x" * 70000}, retry_attempt=0)
        big = server_frame(reader)  # a 64-bit length
        envelope = json.loads(big.payload)
        assert envelope["envelope_id"] == envelope_id and envelope["retry_attempt"] == 0
        assert envelope["accepts_response_payload"] is False
        # an ack in three fragments, a ping in between
        ack = json.dumps({"envelope_id": envelope_id, "payload": {"n": 1}}).encode()
        sock.sendall(masked(OP_TEXT, ack[:5], fin=False))
        sock.sendall(masked(OP_CONTINUATION, ack[5:20], fin=False))
        sock.sendall(masked(OP_PING, b"mid"))
        sock.sendall(masked(OP_CONTINUATION, ack[20:]))
        pong = server_frame(reader)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"mid")
        assert slack.wait_for_ack(envelope_id).payload == {"n": 1}
        sock.sendall(masked(OP_BINARY, b"\x00\x01"))
        conn = slack.wait_for_socket_connection()
        wait_for("the binary message", lambda: b"\x00\x01" in conn.messages)
        # the client closes: the server answers with a close frame and hangs up
        sock.sendall(masked(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        close = server_frame(reader)
        assert close.opcode == OP_CLOSE and struct.unpack("!H", close.payload[:2])[0] == 1000
        assert sock.recv(10) == b""
        assert conn.close_received == (1000, "bye") and conn.closed_at is not None
    finally:
        sock.close()


def test_unmasked_client_frames_are_a_protocol_error(slack: FakeSlackApi) -> None:
    sock, _, reader = handshake(slack)
    try:
        server_frame(reader)  # hello
        sock.sendall(encode_frame(OP_TEXT, b"{}"))  # not masked
        close = server_frame(reader)
        assert close.opcode == OP_CLOSE and struct.unpack("!H", close.payload[:2])[0] == 1002
        conn = slack.socket_connections[0]
        wait_for("the connection to close", lambda: conn.closed_at)
        assert conn.error == "client frames must be masked"
    finally:
        sock.close()


def test_stopping_the_fake_ends_its_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    with running_fake_slack_api() as api:
        recorder = Recorder(api)
        recorder.client.connect()
        api.wait_for_socket_connection()
        recorder.client.close()
    time.sleep(0.2)
    left = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith("fake-slack-socket")
    ]
    assert left == []
