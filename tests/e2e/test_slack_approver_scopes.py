"""Approver scopes and governed exceptions in Slack (issue 11, parts 3 and 5): the running bot
(HTTP mode) with the fake Slack Web API and the fake Kubernetes API behind the real clients,
on SQLite and PostgreSQL.

Approvers are Alice and Bob (their user group) and Carol; only Carol approves on cluster prod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from okeguard.audit.chain import verify_chain
from okeguard.audit.models import AuditEvent, ExceptionRule
from okeguard.bot.cli_serve import RunningBot
from okeguard.bot.slack.actions import decide_in_slack
from okeguard.config import Config
from okeguard.remediations import workflow
from tests.e2e.slack_support import (
    ALICE,
    APPROVALS,
    APPROVERS_GROUP,
    BOB,
    CHANNEL,
    MALLORY,
    bot_config,
    http_bot,
)
from tests.e2e.test_slack_bot import (
    SECRET,
    _scan_and_request,
    answer,
    click,
    deliver,
    request_state,
)
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlackApi, sign_request, view_submission_body
from tests.helpers import wait_for

CAROL = "U0CAROL"


def scoped_config(tmp_path: Path) -> Config:
    base = bot_config(tmp_path).model_dump(mode="json", exclude_defaults=True)
    base["slack"]["approvers"] = {"users": [CAROL], "groups": [APPROVERS_GROUP]}
    base["slack"]["approvers_by_cluster"] = {"prod": {"users": [CAROL]}}
    base["cli"] = {"approvers": [{"uid": 1000, "name": "alice", "slack_user": ALICE}]}
    return Config.model_validate(base)


@pytest.fixture
def bot(
    tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi, database_url: str
) -> Iterator[RunningBot]:
    config = scoped_config(tmp_path)
    with http_bot(tmp_path, slack, SECRET, config=config, database_url=database_url) as running:
        yield running


def _events(bot: RunningBot, action: str) -> list[AuditEvent]:
    with bot.ctx.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _said(text: str) -> str:
    """The one line an ephemeral answer says (its ``text``)."""
    said = str(json.loads(text)["text"])
    assert "\n" not in said and "Traceback" not in said
    return said


def test_an_approver_out_of_scope_is_refused_and_one_in_scope_applies(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    _, approval, value = _scan_and_request(bot, slack)
    request_id = int(value.split(":")[0])
    # Bob approves in general (the group), but not on prod
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for(
        "Bob's refusal",
        lambda: any("may not approve" in e.text for e in slack.ephemerals(APPROVALS, BOB)),
    )
    assert request_state(bot, request_id) == "pending-approval"
    [refused] = _events(bot, "remediation.refused")
    assert refused.actor == f"slack:{BOB}"
    click(bot, "okeguard.approve", value, CAROL, APPROVALS, approval.ts)
    wait_for("the apply", lambda: request_state(bot, request_id) == "applied")
    container = cluster.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_a_request_made_on_the_command_line_is_not_approved_by_its_author_in_slack(
    bot: RunningBot, slack: FakeSlackApi
) -> None:
    from okeguard.remediations.live import live_cluster
    from okeguard.remediations.planners import plan_finding

    config = bot.ctx.config
    live = live_cluster(config, cluster="prod")
    inventory = live.read()
    finding = next(f for f in live.findings(inventory, ("k8s.run-as-root",)))
    plan = plan_finding(finding, inventory, config.remediation)
    # Alice asked on the command line (uid 1000, cli:alice); in Slack she is U0ALICE
    request = workflow.request_fix(bot.ctx.sessions, plan, "cli:alice", config.remediation)
    decide_in_slack(bot.ctx, request.id, ALICE, APPROVALS, approve=True, plan_hash=plan.hash)
    assert request_state(bot, request.id) == "pending-approval"
    [refused] = _events(bot, "remediation.refused")
    assert refused.actor == f"slack:{ALICE}"


def test_exceptions_are_bounded_and_fleet_wide_ones_wait_for_an_approver_in_scope(
    bot: RunningBot,
) -> None:
    too_long = answer(bot, "exceptions add k8s.run-as-root prod/Deployment/shop/web 99999999 x")
    assert _said(too_long).endswith(
        "an exception lasts at most 90 days (exceptions.max_days): "
        f"choose an expiry by {(bot.ctx.now() + timedelta(days=90)):%Y-%m-%d}"
    )
    huge = answer(bot, "exceptions add k8s.run-as-root prod/Deployment/shop/web " + "9" * 60 + " x")
    assert "at most 90 days" in _said(huge)
    assert "usage" in answer(bot, "exceptions add k8s.run-as-root prod/Deployment/shop/web ٣ x")
    assert len(_events(bot, "exception.refused")) == 2

    waiting = answer(bot, 'exceptions add k8s.run-as-root */*/shop/* 30 "vendor image"', MALLORY)
    assert "Exception #1 waits for an approver" in _said(waiting)
    assert "waiting for an approver" in answer(bot, "exceptions list")
    assert "may not approve" in _said(answer(bot, "exceptions approve 1", MALLORY))
    assert "may not approve for cluster prod" in _said(answer(bot, "exceptions approve 1", BOB))
    assert "is active by slack:U0CAROL" in _said(answer(bot, "exceptions approve #1", CAROL))
    assert "is active, not pending approval" in _said(answer(bot, "exceptions approve 1", ALICE))
    assert "waiting" not in answer(bot, "exceptions list")

    gone = answer(bot, "exceptions remove 99999999999999999999")
    assert _said(gone).endswith("no exception 2147483648")
    assert "no exception 2147483647" in _said(answer(bot, "exceptions reject 2147483647", CAROL))
    assert "usage" in answer(bot, "exceptions remove nine")
    assert "Exception removed: #1 (k8s.run-as-root)" in answer(bot, "exceptions remove 1")
    refusals = _events(bot, "exception.refused")
    assert len(refusals) == 7
    assert [e.actor for e in _events(bot, "exception.approved")] == [f"slack:{CAROL}"]
    with bot.ctx.sessions() as session:
        assert session.scalars(select(ExceptionRule)).all() == []
        assert verify_chain(session) is None


def test_accepting_a_risk_is_bounded_too(bot: RunningBot, slack: FakeSlackApi) -> None:
    import urllib.request

    from okeguard.bot.cli_serve import EVENTS_PATH
    from tests.e2e.slack_support import buttons
    from tests.fakes.slack_api import slash_command_body

    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    fingerprint = buttons(posted)["okeguard.accept"][0]
    click(bot, "okeguard.accept", fingerprint, ALICE, CHANNEL, posted.ts)
    modal = wait_for(
        "the accept-risk modal",
        lambda: [
            v for v in slack.views.values() if v.view.get("callback_id") == "okeguard.accept_risk"
        ],
    )[0]
    late = (bot.ctx.now() + timedelta(days=91)).date().isoformat()
    body = view_submission_body(
        "okeguard.accept_risk",
        modal.view["private_metadata"],
        {
            "reason": {"reason": "vendor image"},
            "expires": {"expires": {"type": "datepicker", "selected_date": late}},
        },
        user_id=ALICE,
    )
    headers = sign_request(body, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answered = json.loads(response.read() or b"{}")
    assert answered.get("response_action") == "errors"
    assert "at most 90 days (exceptions.max_days)" in answered["errors"]["expires"]
    wait_for("the refusal audited", lambda: _events(bot, "exception.refused"))
    time.sleep(0.3)
    with bot.ctx.sessions() as session:
        assert session.scalars(select(ExceptionRule)).all() == []
