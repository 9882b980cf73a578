"""The Slack bot when its database goes away: people are told, privately, in one short message.

The real ``okeguard serve --http 0`` runs against PostgreSQL through a TCP relay on 127.0.0.1;
once the bot is up the relay is cut (its connections dropped, its port closed), as a database
outage or a broken network would. A quick subcommand answered inline, a slow one answered after
the acknowledgement, and a button each get the ephemeral "okeguard cannot reach its database",
and each gives one JSON log line without a traceback.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from okeguard.bot.cli_serve import EVENTS_PATH
from tests.e2e.slack_support import ALICE, CHANNEL, ServeProcess, served
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import (
    FakeSlackApi,
    block_action_body,
    sign_request,
    slash_command_body,
)
from tests.helpers import wait_for

SECRET = "outage-signing-secret-0123456789"
NOTICE = "okeguard cannot reach its database"


class Relay:
    """Relays 127.0.0.1:``port`` to ``target``, until :meth:`cut`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close alone would not
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relay(postgres_url: str) -> Iterator[tuple[Relay, str]]:
    """A relay to the PostgreSQL server, and the test schema's URL through it."""
    relay = Relay(("127.0.0.1", 5432))
    try:
        yield relay, postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{relay.port}/")
    finally:
        relay.cut()


def deliver(serve: ServeProcess, body: bytes) -> tuple[int, str]:
    headers = {**sign_request(body, SECRET), "Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{serve.port}{EVENTS_PATH}", data=body, headers=headers
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = (int(response.status), response.read().decode())
    assert time.monotonic() - started < 3.0, "Slack needs an answer within 3 seconds"
    return answer


def test_a_database_outage_is_told_to_slack_users_privately(
    tmp_path: Path,
    cluster: FakeKubeApi,
    slack: FakeSlackApi,
    relay: tuple[Relay, str],
) -> None:
    cut, url = relay
    with served(tmp_path, slack, SECRET, database_url=url) as serve:
        start = serve.log.mark()
        status, answer = deliver(serve, slash_command_body(text="status", user_id=ALICE))
        assert status == 200 and NOTICE not in answer  # reachable: a real answer
        cut.cut()
        mark = serve.log.mark()
        # the first request's own trailing work may meet the cut too (on a loaded machine it
        # runs after it): that is a true line, but not one of the three counted below
        first = {json.loads(line).get("request_id") for line in serve.log.since(start)}

        # answered inline: the acknowledgement itself is the notice, seen by Alice only
        status, answer = deliver(
            serve, slash_command_body(text="status", user_id=ALICE, trigger_id="t-status")
        )
        assert status == 200
        assert NOTICE in json.loads(answer)["text"] and json.loads(answer)["response_type"] == (
            "ephemeral"
        )
        # acknowledged at once, then the work behind it finds no database: an ephemeral message
        scan = slash_command_body(
            text="scan prod", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-scan"
        )
        assert deliver(serve, scan)[0] == 200
        click = block_action_body(
            "okeguard.snooze", "0" * 64, user_id=ALICE, channel_id=CHANNEL, trigger_id="t-click"
        )
        assert deliver(serve, click)[0] == 200
        told = wait_for(
            "two private notices",
            lambda: (
                len(found := [e for e in slack.ephemerals(CHANNEL) if NOTICE in e.text]) == 2
                and found
            ),
        )
        assert {e.user for e in told} == {ALICE}
        assert not slack.messages(CHANNEL)  # nothing else was posted

        time.sleep(0.5)
        lines = serve.log.since(mark)
        assert not [line for line in lines if "Traceback" in line]
        records = [json.loads(line) for line in lines]  # every line one JSON object
        unreachable = [
            r
            for r in records
            if r.get("database") == "unreachable" and r.get("request_id") not in first - {None}
        ]
        assert len(unreachable) == 3, "\n".join(lines)
        assert all(r["level"] == "WARNING" and "\n" not in r["message"] for r in unreachable)
