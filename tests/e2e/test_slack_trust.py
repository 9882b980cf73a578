"""Slack approvals that cannot be bypassed, and a Slack that stays true (issue 11, parts 2 and 6).

The running bot (HTTP mode) on SQLite and PostgreSQL: forged button values, a click bound to
another message, a click faster than the bot's own bookkeeping, and a crash settled at start-up
that is reported in the approval thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from okeguard.audit.chain import verify_chain
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.models import AuditEvent, RemediationRequest, SlackMessage
from okeguard.audit.schema import upgrade
from okeguard.bot.cli_serve import RunningBot
from okeguard.bot.slack.posting import make_client
from okeguard.config import Config
from okeguard.remediations import workflow
from okeguard.remediations.engine import SimulatedCrash
from okeguard.remediations.live import live_cluster
from okeguard.remediations.planners import plan_finding
from tests.e2e.slack_support import (
    ALICE,
    APPROVALS,
    BOB,
    CHANNEL,
    bot_config,
    buttons,
    http_bot,
)
from tests.e2e.test_slack_bot import SECRET, click, request_state
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlackApi
from tests.helpers import wait_for


@pytest.fixture
def bot(
    tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi, database_url: str
) -> Iterator[RunningBot]:
    with http_bot(tmp_path, slack, SECRET, database_url=database_url) as running:
        yield running


def _request(bot: RunningBot, slack: FakeSlackApi) -> tuple[int, str, str]:
    """Alice requests the run-as-root fix: (request id, approval message ts, Approve value)."""
    from tests.e2e.test_slack_bot import _scan_and_request

    _, approval, value = _scan_and_request(bot, slack)
    return int(value.split(":")[0]), approval.ts, value


def _refusals(bot: RunningBot) -> list[str]:
    with bot.ctx.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action.in_(["slack.refused", "remediation.refused"])
            )
        ).all()
        return [r.payload for r in rows]


@pytest.mark.parametrize(
    "forged",
    [
        "{id}:",
        "{id}",
        "{id}:e",
        "{id}:{short}",
        "x:{hash}",
        "99999999999999999999:{hash}",
        ":",
        "{id}:{hash}:extra",
    ],
)
def test_forged_approve_values_are_refused_in_one_line(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi, forged: str
) -> None:
    request_id, ts, value = _request(bot, slack)
    full = value.split(":", 1)[1]
    forged_value = forged.format(id=request_id, hash=full, short=full[:12])
    before = cluster.get_object("Deployment", "web", "shop")["spec"]
    assert click(bot, "okeguard.approve", forged_value, BOB, APPROVALS, ts) == 200
    [refusal] = wait_for("the refusal", lambda: slack.ephemerals(APPROVALS, BOB))
    assert "\n" not in refusal.text.strip() and "Traceback" not in refusal.text
    assert request_state(bot, request_id) == "pending-approval"
    assert cluster.get_object("Deployment", "web", "shop")["spec"] == before
    assert len(_refusals(bot)) == 1


def test_an_approve_button_copied_to_another_message_is_refused(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    request_id, ts, value = _request(bot, slack)
    findings = slack.messages(CHANNEL)[0]
    # the right value, clicked on the scan summary in another channel, then on another ts
    click(bot, "okeguard.approve", value, BOB, CHANNEL, findings.ts)
    click(bot, "okeguard.approve", value, BOB, APPROVALS, "1999999999.000100")
    wait_for("two refusals", lambda: len(slack.ephemerals(None, BOB)) == 2)
    assert len(_refusals(bot)) == 2
    texts = [e.text for e in slack.ephemerals(None, BOB)]
    assert all("not on request" in t for t in texts) and len(texts) == 2
    assert request_state(bot, request_id) == "pending-approval"
    # on the approval message itself it goes through
    click(bot, "okeguard.approve", value, BOB, APPROVALS, ts)
    wait_for("the apply", lambda: request_state(bot, request_id) == "applied")


def test_a_click_before_the_bot_recorded_its_message_still_updates_it(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    """Slack shows the approval message at once, but the bot's chat.postMessage call is still
    waiting for its answer when Bob clicks Approve."""
    from tests.e2e.test_slack_bot import deliver
    from tests.fakes.slack_api import slash_command_body

    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    slack.delay("chat.postMessage", 4.0, after_acting=True)
    click(
        bot, "okeguard.request", buttons(posted)["okeguard.request"][0], ALICE, CHANNEL, posted.ts
    )
    approval = wait_for("the approval message", lambda: slack.messages(APPROVALS))[0]
    [value] = buttons(approval)["okeguard.approve"]
    request_id = int(value.split(":")[0])
    with bot.ctx.sessions() as session:
        [row] = session.scalars(
            select(SlackMessage).where(SlackMessage.request_id == request_id)
        ).all()
        assert row.ts == ""  # the bot does not know the message's ts yet
    slack.clear_faults()
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for("the apply", lambda: request_state(bot, request_id) == "applied", timeout=20)
    thread = wait_for("the result in the thread", lambda: slack.thread(APPROVALS, approval.ts))
    assert any("applied" in m.text.lower() for m in thread)
    wait_for(
        "the approval message updated",
        lambda: "okeguard.approve" not in buttons(slack.message(APPROVALS, approval.ts)),
    )


def test_a_crashed_run_is_settled_at_start_up_and_reported_in_its_thread(
    tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi, database_url: str
) -> None:
    base = bot_config(tmp_path)
    config = Config.model_validate(
        {
            **base.model_dump(mode="json", exclude_defaults=True),
            "remediation": {
                **base.remediation.model_dump(mode="json", exclude_defaults=True),
                "lease_seconds": 0.5,
            },
        }
    )
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        live = live_cluster(config, cluster="prod")
        inventory = live.read()
        finding = next(f for f in live.findings(inventory, ("k8s.run-as-root",)))
        plan = plan_finding(finding, inventory, config.remediation)
        request = workflow.request_fix(sessions, plan, "slack:" + ALICE, config.remediation)
        # the approval message an earlier bot process posted, then the crash mid-run
        client = make_client(slack.bot_token, base_url=slack.base_url)
        ts = str(client.chat_postMessage(channel=APPROVALS, text=f"Request #{request.id}")["ts"])
        with sessions.begin() as session:
            session.add(
                SlackMessage(kind="approval", request_id=request.id, channel=APPROVALS, ts=ts)
            )
        workflow.decide(
            sessions,
            request.id,
            "slack:" + BOB,
            config.remediation,
            approve=True,
            plan_hash=plan.hash,
        )
        cluster.set_rollout("Deployment", "shop", "web", "crashloop")
        with pytest.raises(SimulatedCrash):
            workflow.apply_request(sessions, request.id, "slack:" + BOB, live, crash_after=0)
    finally:
        engine.dispose()
    time.sleep(0.8)  # the crashed run's lease runs out
    with http_bot(tmp_path, slack, SECRET, config=config, database_url=database_url) as bot:
        assert request_state(bot, request.id) == "rolled-back"
        thread = wait_for("the result in the thread", lambda: slack.thread(APPROVALS, ts))
        assert any("rolled" in m.text.lower() for m in thread)
        assert "rolled" in slack.message(APPROVALS, ts).text.lower()
        with bot.ctx.sessions() as session:
            assert verify_chain(session) is None
            stored = session.get(RemediationRequest, request.id)
            assert stored is not None and stored.owner is None
