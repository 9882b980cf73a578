"""The Slack bot end to end: a running bot (HTTP mode), the fake Slack Web API behind its real
``WebClient``, the fake Kubernetes API behind the real client, a real database.

/okeguard scan -> findings posted with buttons -> Request fix -> approval message -> refusals
(self, stranger) -> approval by a second person -> patch applied on the cluster -> thread and
message updated -> audit chain verified.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from okeguard.audit.chain import verify_chain
from okeguard.audit.models import RemediationRequest, SlackMessage
from okeguard.bot.cli_serve import EVENTS_PATH, RunningBot
from tests.e2e.slack_support import (
    ALICE,
    APPROVALS,
    BOB,
    CHANNEL,
    MALLORY,
    buttons,
    http_bot,
)
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import (
    FakeSlackApi,
    block_action_body,
    sign_request,
    slash_command_body,
)
from tests.helpers import wait_for

SECRET = "fake-signing-secret-0123456789"


@pytest.fixture
def bot(tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi) -> Iterator[RunningBot]:
    with http_bot(tmp_path, slack, SECRET) as running:
        yield running


def deliver(bot: RunningBot, body: bytes, *, secret: str = SECRET, age: int = 0) -> int:
    """POST a signed request to the bot's Events API endpoint; returns the HTTP status."""
    headers = sign_request(body, secret, timestamp=int(time.time()) - age)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}", data=body, headers=headers, method="POST"
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert time.monotonic() - started < 3.0, "Slack needs an answer within 3 seconds"
    return status


def click(bot: RunningBot, action_id: str, value: str, user: str, channel: str, ts: str) -> int:
    body = block_action_body(
        action_id,
        value,
        user_id=user,
        channel_id=channel,
        message_ts=ts,
        trigger_id=f"trigger-{time.monotonic_ns()}",
    )
    return deliver(bot, body)


def request_state(bot: RunningBot, request_id: int) -> str:
    with bot.ctx.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        return request.state


def test_scan_request_approve_apply_verify_and_audit(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    assert (
        deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL)) == 200
    )
    posted = wait_for(
        "the scan summary", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)]
    )
    fingerprints = buttons(posted[0])["okeguard.request"]
    run_as_root = next(
        f for f in fingerprints if any("run-as-root" in json.dumps(b) for b in posted[0].blocks)
    )
    assert click(bot, "okeguard.request", run_as_root, ALICE, CHANNEL, posted[0].ts) == 200
    approval = wait_for("the approval request", lambda: slack.messages(APPROVALS))[0]
    [value] = buttons(approval)["okeguard.approve"]
    request_id = int(value.split(":")[0])
    assert request_state(bot, request_id) == "pending-approval"

    # the requester and a stranger are refused, privately, and nothing moves
    click(bot, "okeguard.approve", value, ALICE, APPROVALS, approval.ts)
    click(bot, "okeguard.approve", value, MALLORY, APPROVALS, approval.ts)
    refusals = wait_for(
        "two refusals",
        lambda: len(slack.ephemerals(APPROVALS)) >= 2 and slack.ephemerals(APPROVALS),
    )
    texts = " ".join(e.text for e in refusals)
    assert "cannot approve their own request" in texts and "may not approve" in texts
    assert request_state(bot, request_id) == "pending-approval"

    # a second person approves: applied on the cluster, verified, messages updated
    assert click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts) == 200
    wait_for("the apply", lambda: request_state(bot, request_id) == "applied")
    container = cluster.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    thread = wait_for("the result in the thread", lambda: slack.thread(APPROVALS, approval.ts))
    assert any("Applied and verified" in m.text or "applied" in m.text for m in thread)
    updated = wait_for(
        "the approval message updated",
        lambda: (m := slack.message(APPROVALS, approval.ts)) and "applied" in m.text and m,
    )
    assert "okeguard.approve" not in buttons(updated)  # the buttons are gone

    # a later click on the stale Approve button is refused and audited, applies nothing
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for(
        "the refusal",
        lambda: any("not pending approval" in e.text for e in slack.ephemerals(APPROVALS)),
    )
    with bot.ctx.sessions() as session:
        assert verify_chain(session) is None
        from okeguard.remediations.workflow import request_events

        actions = [e["action"] for e in request_events(session, request_id)]
    assert actions.count("remediation.applied") == 1
    assert actions.count("remediation.refused") >= 3
    assert ("slack:" + BOB) in {e["actor"] for e in request_events(bot.ctx.sessions(), request_id)}


def test_a_retried_delivery_is_processed_once(bot: RunningBot, slack: FakeSlackApi) -> None:
    body = slash_command_body(
        text="scan prod", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-once"
    )
    assert deliver(bot, body) == 200
    assert deliver(bot, body) == 200  # Slack retried the same delivery
    wait_for("the scan summary", lambda: slack.messages(CHANNEL))
    time.sleep(1.0)
    assert len(slack.messages(CHANNEL)) == 1


def test_bad_signatures_and_stale_timestamps_are_rejected(
    bot: RunningBot, slack: FakeSlackApi
) -> None:
    body = slash_command_body(text="help", user_id=ALICE, channel_id=CHANNEL)
    assert deliver(bot, body, secret="not-the-secret") == 401
    assert deliver(bot, body, age=10 * 60) == 401
    assert deliver(bot, body) == 200
    assert not slack.messages(CHANNEL)


def test_unknown_subcommands_get_the_usage(bot: RunningBot) -> None:
    body = slash_command_body(text="frobnicate", user_id=ALICE, channel_id=CHANNEL)
    headers = sign_request(body, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert "unknown subcommand 'frobnicate'" in json.dumps(answer)


def test_the_digest_is_posted_with_its_chart(bot: RunningBot, slack: FakeSlackApi) -> None:
    deliver(bot, slash_command_body(text="scan", user_id=ALICE, channel_id=CHANNEL))
    wait_for("the scan", lambda: slack.messages(CHANNEL))
    deliver(
        bot,
        slash_command_body(text="digest", user_id=ALICE, channel_id=CHANNEL, trigger_id="t-digest"),
    )
    wait_for("the chart", lambda: slack.uploads)
    [upload] = slack.uploads
    assert upload.content.startswith(b"\x89PNG") and upload.channel == CHANNEL
    assert any("Digest" in m.text or "digest" in m.text for m in slack.messages(CHANNEL))


def test_health_ready_and_metrics(bot: RunningBot, slack: FakeSlackApi) -> None:
    deliver(bot, slash_command_body(text="scan", user_id=ALICE, channel_id=CHANNEL))
    wait_for("the scan", lambda: slack.messages(CHANNEL))
    base = f"http://127.0.0.1:{bot.ops.port}"
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(base + path, timeout=5) as response:
            assert response.status == 200
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'okeguard_scans_total{cluster="prod",result="complete"} 1.0' in text
    assert "okeguard_open_findings" in text and "okeguard_posture_score" in text


def _scan_and_request(bot: RunningBot, slack: FakeSlackApi) -> tuple[str, Any, str]:
    """Scan, request the fix of the run-as-root finding; (fingerprint, approval message, value)."""
    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    fingerprint = buttons(posted)["okeguard.request"][0]
    click(bot, "okeguard.request", fingerprint, ALICE, CHANNEL, posted.ts)
    approval = wait_for("the approval request", lambda: slack.messages(APPROVALS))[0]
    [value] = buttons(approval)["okeguard.approve"]
    return fingerprint, approval, value


def _recorded(bot: RunningBot, request_id: int, ts: str) -> bool:
    """Whether the bot has recorded its approval message ``ts`` of ``request_id``."""
    with bot.ctx.sessions() as session:
        found = session.scalar(
            select(SlackMessage.id).where(
                SlackMessage.request_id == request_id, SlackMessage.ts == ts
            )
        )
    return found is not None


def test_an_expired_request_is_refused_and_marked_expired(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    from datetime import timedelta

    _, approval, value = _scan_and_request(bot, slack)
    request_id = int(value.split(":")[0])
    # Slack shows the message before the bot has its ts (recorded once the post is answered);
    # the expiry marks the recorded messages, so the click waits for that event, not a race.
    wait_for("the approval message recorded", lambda: _recorded(bot, request_id, approval.ts))
    with bot.ctx.sessions.begin() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        request.expires_at = bot.ctx.now() - timedelta(minutes=1)
    before = cluster.get_object("Deployment", "web", "shop")["spec"]
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for("the refusal", lambda: any("expired" in e.text for e in slack.ephemerals(APPROVALS)))
    assert request_state(bot, request_id) == "expired"
    wait_for(
        "the message marked expired",
        lambda: "expired" in slack.message(APPROVALS, approval.ts).text,
    )
    assert cluster.get_object("Deployment", "web", "shop")["spec"] == before


def test_a_target_changed_after_the_request_is_superseded_not_applied(
    bot: RunningBot, slack: FakeSlackApi, cluster: FakeKubeApi
) -> None:
    _, approval, value = _scan_and_request(bot, slack)
    request_id = int(value.split(":")[0])
    with cluster._lock:
        doc = cluster.objects["Deployment"][0]
        doc["spec"]["template"]["spec"]["containers"][0]["image"] = "fra.ocir.io/shop/web:2"
        doc["metadata"]["resourceVersion"] = "777777"
    click(bot, "okeguard.approve", value, BOB, APPROVALS, approval.ts)
    wait_for("superseded", lambda: request_state(bot, request_id) == "superseded")
    thread = wait_for("the thread reply", lambda: slack.thread(APPROVALS, approval.ts))
    assert any("target changed since approval" in m.text for m in thread)
    spec = cluster.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"]
    assert "securityContext" not in spec["containers"][0]


def test_preview_opens_a_modal_and_fills_it_with_the_plan(
    bot: RunningBot, slack: FakeSlackApi
) -> None:
    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    fingerprint = buttons(posted)["okeguard.preview"][0]
    click(bot, "okeguard.preview", fingerprint, ALICE, CHANNEL, posted.ts)
    view = wait_for(
        "the modal filled with the plan",
        lambda: [v for v in slack.views.values() if "add-security-context" in json.dumps(v.view)],
    )[0]
    assert view.history, "the modal was opened (loading) first, then updated with the plan"
    text = json.dumps(view.view)
    assert "add-security-context" in text and "okeguard.request" in text


def test_snooze_and_accept_risk(bot: RunningBot, slack: FakeSlackApi) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from okeguard.audit.models import ExceptionRule, FindingRecord
    from tests.fakes.slack_api import view_submission_body

    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    posted = wait_for("the scan", lambda: [m for m in slack.messages(CHANNEL) if buttons(m)])[0]
    first, second = buttons(posted)["okeguard.snooze"][:2]
    click(bot, "okeguard.snooze", first, ALICE, CHANNEL, posted.ts)
    wait_for("the snooze", lambda: any("Snoozed" in e.text for e in slack.ephemerals(CHANNEL)))

    click(bot, "okeguard.accept", second, ALICE, CHANNEL, posted.ts)
    modal = wait_for(
        "the accept-risk modal",
        lambda: [
            v for v in slack.views.values() if v.view.get("callback_id") == "okeguard.accept_risk"
        ],
    )[0]
    metadata = modal.view["private_metadata"]
    empty = view_submission_body(
        "okeguard.accept_risk",
        metadata,
        {
            "reason": {"reason": ""},
            "expires": {"expires": {"type": "datepicker", "selected_date": "2099-01-01"}},
        },
        user_id=ALICE,
    )
    headers = sign_request(empty, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}", data=empty, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read() or b"{}")
    assert answer.get("response_action") == "errors" and "reason" in answer["errors"]
    # within exceptions.max_days (90) of today
    until = (bot.ctx.now() + timedelta(days=30)).date().isoformat()
    good = view_submission_body(
        "okeguard.accept_risk",
        metadata,
        {
            "reason": {"reason": "vendor image, SEC-42"},
            "expires": {"expires": {"type": "datepicker", "selected_date": until}},
        },
        user_id=ALICE,
        view_id="V0OTHER",
        view_hash="h2",
    )
    assert deliver(bot, good) == 200
    wait_for(
        "the confirmation",
        lambda: any("Risk accepted" in e.text for e in slack.ephemerals(CHANNEL)),
    )
    with bot.ctx.sessions() as session:
        statuses = {r.fingerprint: r.status for r in session.scalars(select(FindingRecord))}
        [rule] = session.scalars(select(ExceptionRule)).all()
    assert statuses[first] == "snoozed" and statuses[second] == "accepted-risk"
    assert (rule.reason, rule.author) == ("vendor image, SEC-42", f"slack:{ALICE}")


def answer(bot: RunningBot, text: str, user: str = ALICE) -> str:
    """The immediate (acknowledgement) answer to ``/okeguard text``, as JSON text."""
    body = slash_command_body(
        text=text, user_id=user, channel_id=CHANNEL, trigger_id=f"t-{time.monotonic_ns()}"
    )
    headers = sign_request(body, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_quick_subcommands_answer_inline(bot: RunningBot, slack: FakeSlackApi) -> None:
    assert "scan [cluster] [namespace]" in answer(bot, "help")
    assert "never" in answer(bot, "status")  # no scan yet
    deliver(bot, slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL))
    wait_for("the scan", lambda: slack.messages(CHANNEL))
    assert "k8s.run-as-root" in answer(bot, "findings prod high")
    assert "k8s.run-as-root" not in answer(bot, "findings prod low")
    assert "neither a configured cluster nor a severity" in answer(bot, "findings nowhere")
    assert "k8s.run-as-root" in answer(bot, "history Deployment/shop/web")
    assert "no recorded finding" in answer(bot, "history Deployment/shop/nothing")
    added = answer(bot, 'exceptions add k8s.run-as-root prod/Deployment/shop/web 30 "vendor image"')
    assert "Exception #1 added for 30 days" in added
    assert "vendor image" in answer(bot, "exceptions list")
    assert "unknown check id" in answer(bot, "exceptions add k8s.nope */*/*/* 30 why")
    assert "Exception removed" in answer(bot, "exceptions remove 1")
    assert "no configured cluster 'nowhere'" in answer(bot, "scan nowhere")
    assert "usage: /okeguard fix FINDING" in answer(bot, "fix")
