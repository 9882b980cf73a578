"""No secret reaches the bot's logs: a running bot (HTTP mode) logging JSON at DEBUG, a cluster
holding a Secret and a Deployment with a literal password in its env; /okeguard scan, Request
fix, an approval by a second person and the digest. Then the logs hold no token, no signing
secret, no Secret value, no password; every line is JSON; the lines of one Slack interaction
share a request id, and two interactions have different ones."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from okeguard.bot.cli_serve import RunningBot
from okeguard.logs import configure_logging
from tests.e2e.slack_support import ALICE, APPROVALS, BOB, CHANNEL, buttons, http_bot
from tests.e2e.test_slack_bot import SECRET, deliver, request_state
from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.fakes.slack_api import FakeSlackApi, block_action_body, slash_command_body
from tests.helpers import wait_for
from tests.unit.factories import b64, bare_container, namespace, secret, workload

ENV_PASSWORD = "env-password-Q7w9Zr41xK"
SECRET_VALUE = "secret-value-M3n8Vb26pL"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApi]:
    """Deployment shop/web runs as root with a password in its env; Secret shop/db holds one."""
    env = [{"name": "DB_PASSWORD", "value": ENV_PASSWORD}]
    web = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1", env=env)])
    db = secret("db", data={"password": SECRET_VALUE})
    with running_fake_kube_api([namespace("shop"), web, db]) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process, as the bot writes it (JSON lines, DEBUG)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging(logging.DEBUG, json=True, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def bot(
    tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi, captured: io.StringIO
) -> Iterator[RunningBot]:
    with http_bot(tmp_path, slack, SECRET) as running:
        yield running


def click(bot: RunningBot, action_id: str, value: str, user: str, channel: str, ts: str) -> str:
    """Click a button; returns the trigger id (what identifies the interaction)."""
    trigger = f"trigger-{action_id}-{user}-{time.monotonic_ns()}"
    body = block_action_body(
        action_id, value, user_id=user, channel_id=channel, message_ts=ts, trigger_id=trigger
    )
    assert deliver(bot, body) == 200
    return trigger


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    out = []
    for line in buffer.getvalue().splitlines():
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict) and {"time", "level", "logger", "message"} <= set(record)
        out.append(record)
    return out


def ids_of(lines: list[dict[str, Any]], needle: str) -> set[str | None]:
    return {r.get("request_id") for r in lines if needle in r["message"]}


def test_no_secret_reaches_the_logs_and_request_ids_follow_interactions(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi, captured: io.StringIO
) -> None:
    scan = slash_command_body(
        text="scan prod", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-log-scan"
    )
    assert deliver(bot, scan) == 200
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    run_as_root = buttons(posted)["okeguard.request"][0]  # the first fixable: high, run as root
    click(bot, "okeguard.request", run_as_root, ALICE, CHANNEL, posted.ts)
    approval = wait_for("the approval request", lambda: slack.messages(APPROVALS))[0]
    [value] = buttons(approval)["okeguard.approve"]
    request_id = int(value.split(":")[0])
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for("the apply", lambda: request_state(bot, request_id) == "applied")
    digest = slash_command_body(
        text="digest", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-log-digest"
    )
    assert deliver(bot, digest) == 200
    wait_for("the digest", lambda: slack.uploads)
    wait_for("the digest logged", lambda: "digest #" in captured.getvalue(), timeout=5)

    text = captured.getvalue()
    for value_ in (slack.bot_token, SECRET, SECRET_VALUE, b64(SECRET_VALUE), ENV_PASSWORD):
        assert value_ not in text, f"{value_[:6]}… reached the logs"
    lines = records(captured)
    assert len(lines) > 10  # DEBUG: the libraries' lines are there too

    # one interaction, one id: the slash command and the scan it ran
    [scan_id] = ids_of(lines, "slash command /okeguard scan")
    assert scan_id and ids_of(lines, "scan of prod") == {scan_id}
    # the approval: the button and the decision (in Bolt's worker thread) share theirs
    [approve_id] = ids_of(lines, "button okeguard.approve from " + BOB)
    assert approve_id and ids_of(lines, f"remediation request #{request_id}: approve") == {
        approve_id
    }
    [request_fix_id] = ids_of(lines, "button okeguard.request from " + ALICE)
    [digest_id] = ids_of(lines, "slash command /okeguard digest")
    assert ids_of(lines, "digest #") == {digest_id}
    assert len({scan_id, approve_id, request_fix_id, digest_id}) == 4
    assert any(r.get("state") == "applied" for r in lines)
