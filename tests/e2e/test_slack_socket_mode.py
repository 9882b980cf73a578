"""The Slack bot end to end in Socket Mode: ``start_bot(socket_mode=True)`` connects through
``apps.connections.open`` to the fake Slack's WebSocket server with slack_bolt's real
``SocketModeHandler``; the fake Kubernetes API behind the real client; a real database.

/okeguard help -> acked within 3 s with the help as the ack's payload; /okeguard scan prod ->
acked at once, the summary posted through chat.postMessage; Request fix on a finding of that
post -> acked, an approval request posted; stop -> the connection and its threads end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from okeguard.bot.cli_serve import RunningBot, start_bot
from tests.e2e.slack_support import (
    ALICE,
    APPROVALS,
    CHANNEL,
    bot_config,
    buttons,
)
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlackApi, block_action_payload, running_fake_slack_api
from tests.helpers import wait_for

ACK_WITHIN = 3.0  # Slack's deadline for an acknowledgement
WHOLE_TEST = 30.0


@pytest.fixture
def timed() -> Iterator[None]:
    """Set up first, torn down last: the whole test, bot start and stop included."""
    started = time.monotonic()
    yield
    assert time.monotonic() - started < WHOLE_TEST


@pytest.fixture
def bot(
    timed: None, tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi
) -> Iterator[RunningBot]:
    config = bot_config(tmp_path)
    env = {
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "OKEGUARD_SLACK_API_URL": slack.base_url,
    }
    running = start_bot(
        config,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        env=env,
        socket_mode=True,
        health_port=0,
        host="127.0.0.1",
    )
    try:
        yield running
    finally:
        handler = running.socket_handler
        started = time.monotonic()
        running.stop()
        stopped_in = time.monotonic() - started
        # a clean stop: the fake sees the connection end, the client's threads are gone
        conns = slack.socket_connections
        wait_for("the connection to close", lambda: all(c.closed_at for c in conns), 5)
        client = handler.client
        runners = (client.current_session_runner, client.current_app_monitor)
        assert all(not r.is_alive() for r in (*runners, client.message_processor))
        assert client.closed and not client.is_connected()
        assert stopped_in < 10, f"stopping took {stopped_in:.1f} s"


def test_the_bot_connects_in_socket_mode(bot: RunningBot, slack: FakeSlackApi) -> None:
    assert bot.http is None and bot.socket_handler is not None
    [open_call] = slack.calls("apps.connections.open")
    assert open_call.response["ok"] is True
    conn = slack.wait_for_socket_connection()
    assert conn.is_open and bot.socket_handler.client.is_connected()


def test_help_scan_and_request_fix_over_socket_mode(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    # /okeguard help: answered in the ack itself
    help_id = slack.socket_send_slash_command(
        "help", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-help"
    )
    ack = slack.wait_for_ack(help_id, timeout=ACK_WITHIN)
    assert ack.latency is not None and ack.latency < ACK_WITHIN
    assert ack.payload is not None
    assert ack.payload["text"].startswith("okeguard commands:")
    assert "scan" in ack.payload["text"] and ack.payload["blocks"]
    assert "okeguard: keep OKE clusters" in json.dumps(ack.payload["blocks"])

    # /okeguard scan prod: acked at once, the summary posted through the Web API
    scan_id = slack.socket_send_slash_command(
        "scan prod", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-scan"
    )
    ack = slack.wait_for_ack(scan_id, timeout=ACK_WITHIN)
    assert ack.latency is not None and ack.latency < ACK_WITHIN
    assert ack.payload is not None and "Scanning" in ack.payload["text"]
    posted = wait_for(
        "the scan summary", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)]
    )
    assert any(
        c.params.get("channel") == CHANNEL and c.response["ok"]
        for c in slack.calls("chat.postMessage")
    )
    summary = posted[0]
    fingerprints = buttons(summary)["okeguard.request"]
    run_as_root = next(
        f for f in fingerprints if any("run-as-root" in json.dumps(b) for b in summary.blocks)
    )

    # Request fix on a finding of that post: acked, an approval request posted
    click = block_action_payload(
        "okeguard.request",
        run_as_root,
        user_id=ALICE,
        channel_id=CHANNEL,
        message_ts=summary.ts,
        trigger_id="t-request",
        text="Request fix",
        message={
            "type": "message",
            "user": slack.bot_user_id,
            "ts": summary.ts,
            "text": summary.text or "",
            "blocks": summary.blocks,
        },
    )
    click_id = slack.socket_send_interactive(click)
    ack = slack.wait_for_ack(click_id, timeout=ACK_WITHIN)
    assert ack.latency is not None and ack.latency < ACK_WITHIN
    approval = wait_for("the approval request", lambda: slack.messages(APPROVALS))[0]
    [value] = buttons(approval)["okeguard.approve"]
    assert int(value.split(":")[0]) > 0
    # every envelope was acknowledged exactly once
    acked = [a.envelope_id for a in slack.socket_acks]
    assert sorted(acked) == sorted([help_id, scan_id, click_id])


def test_no_socket_mode_threads_outlive_the_fake(tmp_path: Path) -> None:
    """The fake's own threads (accept loop, one per connection) end when it stops."""
    with running_fake_slack_api() as api:
        api.socket_mode  # noqa: B018 - starts the server
    names = [t.name for t in threading.enumerate() if t.name.startswith("fake-slack-socket")]
    assert names == []
