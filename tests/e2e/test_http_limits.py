"""The limits of ``okeguard serve --http``, attacked from outside over real sockets.

The real ``okeguard serve --http 0`` runs in its own process (JSON logs on stderr, a read
deadline of 3 s through ``OKEGUARD_HTTP_READ_TIMEOUT_SECONDS``) against the fake Slack Web API.
Each test sends what an attacker would — a 100 MB body, a chunked body without end, a lying
``Content-Length``, one byte a second, 300 connections that never finish, timestamps that are
not numbers, bodies that are not UTF-8 — and checks the answer, how fast it came, the process's
memory and threads (``/proc/PID/status``), that a signed Slack request is still answered, and
that each refusal is exactly one JSON log line and nothing ever logs a traceback.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from okeguard.bot.cli_serve import EVENTS_PATH
from okeguard.bot.slack.http_wire import Refusal, parse_head
from tests.e2e.slack_support import ALICE, CHANNEL, ServeProcess, http_bot, served
from tests.fakes.slack_api import running_fake_slack_api, sign_request, slash_command_body
from tests.helpers import wait_for

SECRET = "limits-signing-secret-0123456789"
DEADLINE = 3.0  # OKEGUARD_HTTP_READ_TIMEOUT_SECONDS of the served process
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("http-limits")
    env = {"OKEGUARD_HTTP_READ_TIMEOUT_SECONDS": str(DEADLINE)}
    with running_fake_slack_api() as slack, served(folder, slack, SECRET, env=env) as process:
        yield process
    assert not [line for line in process.log.lines if "Traceback" in line]


def head(length: int | str | None = None, **headers: str) -> bytes:
    """A request head for the Events API (unsigned unless headers say otherwise)."""
    lines = [f"POST {EVENTS_PATH} HTTP/1.1", "Host: okeguard"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(serve: ServeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", serve.port), timeout=10)


def answer_of(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def exchange(serve: ServeProcess, data: bytes) -> int:
    """Send ``data`` whole and return the status of the answer."""
    with connect(serve) as sock:
        sock.sendall(data)
        return status_of(answer_of(sock))


def signed(body: bytes, *, stamp: str | None = None, **headers: str) -> bytes:
    """A request carrying ``body`` with a valid signature (over ``stamp`` when given)."""
    signature = sign_request(body, SECRET)
    if stamp is not None:
        signature = sign_request(body, SECRET, timestamp=int(stamp))
    return (
        head(
            len(body),
            Content_Type="application/x-www-form-urlencoded",
            X_Slack_Request_Timestamp=signature["X-Slack-Request-Timestamp"],
            X_Slack_Signature=signature["X-Slack-Signature"],
            **headers,
        )
        + body
    )


def slack_help(serve: ServeProcess) -> str:
    """``/okeguard help`` as Slack sends it, through urllib; the answer, within Slack's 3 s."""
    body = slash_command_body(
        text="help", user_id=ALICE, channel_id=CHANNEL, trigger_id=f"t-{time.monotonic_ns()}"
    )
    headers = {**sign_request(body, SECRET), "Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{serve.port}{EVENTS_PATH}", data=body, headers=headers
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        text: str = response.read().decode()
    assert time.monotonic() - started < 3.0
    return text


def refusals(serve: ServeProcess, mark: int, expected: dict[str, int]) -> list[dict[str, object]]:
    """Wait until the log holds ``expected`` (reason -> count) refusals after ``mark``, then
    check every new line is one JSON object, none a traceback, and no other refusal logged."""

    def refused() -> list[dict[str, object]]:
        lines = [json.loads(line) for line in serve.log.since(mark)]
        return [line for line in lines if "http_status" in line]

    def counts() -> dict[str, int]:
        found: dict[str, int] = {}
        for line in refused():
            found[str(line["reason"])] = found.get(str(line["reason"]), 0) + 1
        return found

    wait_for(f"the refusals {expected}", lambda: counts() == expected, timeout=DEADLINE + 10)
    time.sleep(0.2)  # nothing more arrives
    assert counts() == expected
    assert not [line for line in serve.log.since(mark) if "Traceback" in line]
    return refused()


def test_a_100_mb_body_is_refused_unread_and_memory_stays_flat(serve: ServeProcess) -> None:
    mark, peak_before = serve.log.mark(), serve.status()["VmHWM"]
    with connect(serve) as sock:  # a client that waits for the answer before sending a body
        started = time.monotonic()
        sock.sendall(head(100 * MIB, X_Slack_Request_Timestamp="1", X_Slack_Signature="v0=0"))
        answer = answer_of(sock)
        assert status_of(answer) == 413 and b"Connection: close" in answer
        assert time.monotonic() - started < 1.0

    def blind(_: int) -> tuple[int, float]:
        """Send all 100 MB without looking: how much went out before the server cut it."""
        sent, started = 0, time.monotonic()
        with connect(serve) as sock:
            try:
                sock.sendall(head(100 * MIB))
                while sent < 100 * MIB:
                    sock.sendall(b"a" * MIB)
                    sent += MIB
            except ConnectionError:
                pass
        return sent, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        clients = pool.map(blind, range(8))
        assert "scan [cluster]" in slack_help(serve)  # Slack is still served meanwhile
        cut = list(clients)
    assert all(sent < 50 * MIB and seconds < 5.0 for sent, seconds in cut), cut
    assert serve.status()["VmHWM"] - peak_before < 40 * 1024  # KiB: no body was kept
    lines = refusals(serve, mark, {"body_too_large": 9})
    assert {line["http_status"] for line in lines} == {413}


def test_a_chunked_body_is_cut_once_it_passes_the_limit(serve: ServeProcess) -> None:
    mark, sent = serve.log.mark(), 0
    with connect(serve) as sock:
        sock.sendall(head(Transfer_Encoding="chunked"))
        chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"  # 64 KiB a chunk, never a last one
        while not select.select([sock], [], [], 0)[0] and sent < 64 * MIB:
            sock.sendall(chunk)
            sent += 0x10000
        assert status_of(answer_of(sock)) == 413
    assert sent < 16 * MIB
    refusals(serve, mark, {"body_too_large": 1})


def test_a_lying_content_length_is_refused(serve: ServeProcess) -> None:
    mark = serve.log.mark()
    body = slash_command_body(text="help", user_id=ALICE, channel_id=CHANNEL)
    # longer body than announced: only the announced bytes are read, and they are not signed
    shorter = signed(body).replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 10")
    assert exchange(serve, shorter) == 401
    # shorter body than announced: the rest never comes, and the deadline ends the wait
    with connect(serve) as sock:
        started = time.monotonic()
        sock.sendall(
            signed(body).replace(f"Content-Length: {len(body)}".encode(), b"Content-Length: 5000")
        )
        assert status_of(answer_of(sock)) == 408
        assert DEADLINE - 0.5 < time.monotonic() - started < DEADLINE + 2
    # two lengths, a length that is no number, and a length with a chunked body are malformed
    assert (
        exchange(serve, head(5, X_Two="x").replace(b"X-Two: x", b"Content-Length: 6") + b"hello!")
        == 400
    )
    assert exchange(serve, head("12abc") + b"hello") == 400
    assert exchange(serve, head(5, Transfer_Encoding="chunked") + b"0\r\n\r\n") == 400
    refusals(serve, mark, {"bad_signature": 1, "read_timeout": 1, "malformed_request": 3})


def test_one_byte_a_second_is_cut_at_the_deadline(serve: ServeProcess) -> None:
    mark = serve.log.mark()
    request = signed(slash_command_body(text="help", user_id=ALICE, channel_id=CHANNEL))
    with connect(serve) as sock:
        started, cut_after = time.monotonic(), None
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except ConnectionError:
                cut_after = time.monotonic() - started
                break
            if select.select([sock], [], [], 1.0)[0]:  # answered (or closed) meanwhile
                cut_after = time.monotonic() - started
                assert status_of(answer_of(sock)) == 408
                break
    assert cut_after is not None and DEADLINE - 0.5 < cut_after < DEADLINE + 2
    refusals(serve, mark, {"read_timeout": 1})


def test_300_half_open_connections_cost_no_thread_and_slack_is_still_served(
    serve: ServeProcess,
) -> None:
    slack_help(serve)  # a worker thread exists before counting
    mark, threads = serve.log.mark(), serve.status()["Threads"]
    sockets = [connect(serve) for _ in range(300)]
    try:
        for sock in sockets:
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: okeguard\r\nContent-Le")
        time.sleep(0.5)
        assert serve.status()["Threads"] <= threads + 1
        assert "scan [cluster]" in slack_help(serve)
        assert serve.status()["Threads"] <= threads + 2
        answers = [answer_of(sock, timeout=DEADLINE + 5) for sock in sockets]  # cut at deadline
        assert {status_of(answer) for answer in answers} == {408}
    finally:
        for sock in sockets:
            sock.close()
    refusals(serve, mark, {"read_timeout": 300})
    assert serve.status()["Threads"] <= threads + 2


@pytest.mark.parametrize("stamp", [None, "", "soon", "1e9", "-5", "\uff11\uff12\uff13", "9" * 20])
def test_a_timestamp_missing_or_not_a_number_is_401(serve: ServeProcess, stamp: str | None) -> None:
    mark = serve.log.mark()
    body = slash_command_body(text="help", user_id=ALICE, channel_id=CHANNEL)
    request = signed(body)
    stamped = request.split(b"X-Slack-Request-Timestamp: ")[1].split(b"\r\n")[0]
    replacement = b"" if stamp is None else f"X-Slack-Request-Timestamp: {stamp}".encode()
    request = request.replace(b"X-Slack-Request-Timestamp: " + stamped, replacement)
    assert exchange(serve, request) == 401
    [line] = refusals(serve, mark, {"bad_timestamp": 1})
    assert line["http_status"] == 401 and line["level"] == "WARNING"


def test_garbage_and_bodies_that_are_not_utf8_get_400_or_401(serve: ServeProcess) -> None:
    mark = serve.log.mark()
    garbage = b"\xff\xfe\x00payload=\xc3(" * 50
    stale = str(int(time.time()) - 600)
    assert (
        exchange(
            serve,
            head(
                len(garbage),
                X_Slack_Request_Timestamp=str(int(time.time())),
                X_Slack_Signature="v0=deadbeef",
            )
            + garbage,
        )
        == 401
    )
    assert exchange(serve, head(len(garbage)) + garbage) == 401  # no timestamp, no signature
    assert exchange(serve, signed(garbage)) == 400  # signed, yet not UTF-8
    assert exchange(serve, signed(b"{not json")) == 400  # signed, yet not a Slack payload
    wrong = signed(b"command=%2Fokeguard").replace(
        b"X-Slack-Signature: v0=", "X-Slack-Signature: v0=é".encode()
    )
    assert exchange(serve, wrong) == 401
    assert exchange(serve, signed(b"command=%2Fokeguard", stamp=stale)) == 401
    assert exchange(serve, b"GARBAGE\r\n\r\n") == 400
    assert exchange(serve, b"GET /slack/events HTTP/1.1\r\nHost: x\r\n\r\n") == 405
    assert exchange(serve, b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 404
    expected = {
        "bad_signature": 2,
        "bad_timestamp": 1,
        "body_not_utf8": 1,
        "bad_payload": 1,
        "stale_timestamp": 1,
        "malformed_request": 1,
        "method": 1,
        "not_found": 1,
    }
    refusals(serve, mark, expected)
    assert "scan [cluster]" in slack_help(serve)


def test_connections_over_the_limit_get_503_at_once(tmp_path: Path) -> None:
    limits = {"OKEGUARD_HTTP_MAX_CONNECTIONS": "5", "OKEGUARD_HTTP_WORKERS": "1"}
    with running_fake_slack_api() as slack, served(tmp_path, slack, SECRET, env=limits) as serve:
        mark, held = serve.log.mark(), [connect(serve) for _ in range(5)]
        try:
            for sock in held:
                sock.sendall(b"POST /slack/events HTTP/1.1\r\n")
            time.sleep(0.3)
            with connect(serve) as sock:
                started = time.monotonic()
                answer = answer_of(sock)
                assert status_of(answer) == 503 and b"Retry-After: 1" in answer
                assert time.monotonic() - started < 1.0
        finally:
            for sock in held:
                sock.close()
        refusals(serve, mark, {"too_many_connections": 1})
        assert "scan [cluster]" in slack_help(serve)  # the closed ones freed their places


def test_the_operations_port_answers_probes_while_connections_hang_on_it(
    tmp_path: Path,
) -> None:
    with running_fake_slack_api() as slack, http_bot(tmp_path, slack, SECRET) as bot:
        base = f"http://127.0.0.1:{bot.ops.port}"
        threads = threading.active_count()
        hanging = [socket.create_connection(("127.0.0.1", bot.ops.port)) for _ in range(100)]
        try:
            for sock in hanging:
                sock.sendall(b"GET /heal")
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                assert response.status == 200 and response.read() == b"ok\n"
            with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                assert b"okeguard_" in response.read()
            assert threading.active_count() <= threads + 2
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(base + "/healthz", data=b"x"))
            assert refused.value.code == 405
        finally:
            for sock in hanging:
                sock.close()


@given(st.binary(max_size=300))
def test_any_head_is_parsed_or_refused(data: bytes) -> None:
    try:
        method, target, headers = parse_head(data)
    except Refusal as refusal:
        assert refusal.status in (400, 505)
    else:
        assert method and target and all(name == name.lower() for name in headers)


def test_a_bad_limit_in_the_environment_stops_serve(tmp_path: Path) -> None:
    with (
        running_fake_slack_api() as slack,
        pytest.raises(AssertionError, match="OKEGUARD_HTTP_WORKERS"),
        served(tmp_path, slack, SECRET, env={"OKEGUARD_HTTP_WORKERS": "lots"}),
    ):
        pass
