"""The bot's Slack plumbing: pacing per channel, who may request and approve (user groups read
through a real ``WebClient`` from the fake Slack Web API, and cached), failing closed when Slack
cannot be asked, and the client's retries on 429 (Retry-After) and dropped connections."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from okeguard.audit import schema
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.models import RemediationRequest, RequestState
from okeguard.audit.stores import create_request, transition
from okeguard.bot.slack.actions import decide_in_slack
from okeguard.bot.slack.metrics import Metrics
from okeguard.bot.slack.people import Authorizer
from okeguard.bot.slack.posting import RETRIES, Pacer, make_client
from okeguard.bot.slack.work import BotContext
from okeguard.config import Config, SlackConfig
from tests.fakes.slack_api import FakeSlackApi, running_fake_slack_api

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
APPROVERS, REQUESTERS = "S0APPROVERS", "S0REQUESTERS"
CHANNEL = "C0APPROVALS"


class FakeClock:
    """A clock that moves only when slept on (or told to)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --- Pacer -------------------------------------------------------------------------------------


def test_posts_to_one_channel_are_spaced_by_the_interval() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.wait("C1")
    assert clock.slept == []  # the first post goes at once
    pacer.wait("C1")
    pacer.wait("C1")
    assert clock.slept == [1.0, 1.0]
    assert clock.now == 1002.0
    clock.now += 5.0  # a quiet spell: the next post does not wait
    pacer.wait("C1")
    assert clock.slept == [1.0, 1.0]


def test_a_burst_books_consecutive_slots() -> None:
    """Posts arriving together (the clock does not move while they book) wait 0, 1, 2… s."""
    clock = FakeClock()
    slept: list[float] = []
    pacer = Pacer(1.0, clock=clock, sleep=slept.append)
    for _ in range(4):
        pacer.wait("C1")
    assert slept == [1.0, 2.0, 3.0]


def test_channels_are_paced_independently() -> None:
    clock = FakeClock()
    slept: list[float] = []
    pacer = Pacer(1.0, clock=clock, sleep=slept.append)
    pacer.wait("C1")
    pacer.wait("C1")
    assert slept == [1.0]
    pacer.wait("C2")  # C1's queue does not hold C2 up
    pacer.wait("C3")
    assert slept == [1.0]
    pacer.wait("C2")
    assert slept == [1.0, 1.0]


def test_a_zero_interval_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait("C1")
    assert clock.slept == []


def test_threads_posting_to_two_channels_do_not_wait_for_each_other() -> None:
    """With the real clock: 3 threads per channel; each channel's posts 0.2 s apart, and the two
    channels' queues run side by side (the sleeping happens outside the lock)."""
    pacer = Pacer(0.2)
    times: dict[str, list[float]] = {"C1": [], "C2": []}
    lock = threading.Lock()
    start = threading.Barrier(6)

    def post(channel: str) -> None:
        start.wait()
        pacer.wait(channel)
        with lock:
            times[channel].append(time.monotonic())

    threads = [threading.Thread(target=post, args=(c,)) for c in ("C1", "C2") * 3]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    for stamps in times.values():
        stamps.sort()
        assert len(stamps) == 3
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(stamps))
        assert stamps[-1] - began < 0.8  # 2 intervals (0.4 s), not 5 (1 s): no waiting on the other
    assert abs(times["C1"][0] - times["C2"][0]) < 0.1


# --- Authorizer --------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with running_fake_slack_api() as api:
        api.add_usergroup(APPROVERS, [ALICE, BOB])
        api.add_usergroup(REQUESTERS, [CAROL])
        yield api


def settings(**fields: Any) -> SlackConfig:
    return SlackConfig.model_validate(
        {
            "approvers": {"users": [MALLORY], "groups": [APPROVERS]},
            "group_cache_seconds": 300,
            **fields,
        }
    )


def group_calls(slack: FakeSlackApi) -> list[str]:
    return [c.params["usergroup"] for c in slack.calls("usergroups.users.list")]


def test_approvers_and_requesters_by_user_and_by_group(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url)
    auth = Authorizer(client, settings(requesters={"groups": [REQUESTERS]}))
    assert auth.may_approve(MALLORY)  # a listed user: no call to Slack
    assert group_calls(slack) == []
    assert auth.may_approve(ALICE) and auth.may_approve(BOB)
    assert not auth.may_approve(CAROL) and not auth.may_approve("U0STRANGER")
    assert group_calls(slack) == [APPROVERS]  # one call, then the cache
    assert auth.may_request(CAROL)  # a requester by group
    assert auth.may_request(ALICE)  # approvers may request
    assert not auth.may_request("U0STRANGER")
    assert group_calls(slack) == [APPROVERS, REQUESTERS]
    assert auth.describe_approvers() == f"<@{MALLORY}>, <!subteam^{APPROVERS}>"


def test_anyone_may_request_when_no_requesters_are_configured(slack: FakeSlackApi) -> None:
    auth = Authorizer(make_client(slack.bot_token, base_url=slack.base_url), SlackConfig())
    assert auth.may_request("U0ANYONE")
    assert not auth.may_approve("U0ANYONE")  # and nobody approves
    assert group_calls(slack) == []
    assert auth.describe_approvers() == "nobody (configure slack.approvers)"


def test_group_members_are_cached_for_group_cache_seconds(slack: FakeSlackApi) -> None:
    clock = FakeClock()
    client = make_client(slack.bot_token, base_url=slack.base_url)
    auth = Authorizer(client, settings(group_cache_seconds=60), clock=clock)
    assert auth.may_approve(ALICE)
    assert len(group_calls(slack)) == 1
    slack.add_usergroup(APPROVERS, [BOB])  # ALICE leaves the group: not seen while cached
    clock.now += 59.9
    assert auth.may_approve(ALICE)
    assert len(group_calls(slack)) == 1
    clock.now += 0.1  # expired: asked again
    assert not auth.may_approve(ALICE) and auth.may_approve(BOB)
    assert len(group_calls(slack)) == 2


def test_a_zero_cache_asks_every_time(slack: FakeSlackApi) -> None:
    clock = FakeClock()
    client = make_client(slack.bot_token, base_url=slack.base_url)
    auth = Authorizer(client, settings(group_cache_seconds=0), clock=clock)
    for _ in range(3):
        assert auth.may_approve(ALICE)
    assert len(group_calls(slack)) == 3


def test_a_slack_error_raises_and_is_not_cached(slack: FakeSlackApi) -> None:
    clock = FakeClock()
    client = make_client(slack.bot_token, base_url=slack.base_url)
    auth = Authorizer(client, settings(), clock=clock)
    slack.fail("usergroups.users.list", "no_such_subteam", times=3)
    with pytest.raises(SlackApiError):
        auth.members(APPROVERS)
    # the approver rule fails closed, and says why
    assert not auth.may_approve(ALICE)
    problem = auth.approval_refusal(ALICE)
    assert problem is not None and "cannot tell whether slack:U0ALICE is an approver" in problem
    assert auth.may_approve(ALICE)  # the next check asks again, and Slack answers
    assert len(group_calls(slack)) == 4


def test_decide_in_slack_fails_closed_when_slack_cannot_be_asked(
    slack: FakeSlackApi, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    config = Config.model_validate({"slack": {"approvers": {"groups": [APPROVERS]}}})
    client = make_client(slack.bot_token, base_url=slack.base_url)
    ctx = BotContext(
        config=config,
        sessions=sessions,
        client=client,
        authorizer=Authorizer(client, config.slack),
        pacer=Pacer(0),
        metrics=Metrics(),
        live_for=lambda name: pytest.fail("nothing is applied"),
        scan=lambda clusters, namespaces: pytest.fail("nothing is scanned"),
    )
    with sessions.begin() as session:
        request = create_request(
            session,
            plan={"remediation": "k8s.run-as-non-root", "operations": []},
            requester="slack:" + CAROL,
            finding_fingerprint="f" * 64,
        )
        assert transition(
            session, request.id, RequestState.PROPOSED, RequestState.PENDING_APPROVAL, "x"
        )
        request_id = request.id
    slack.fail("usergroups.users.list", "internal_error", times=None)
    try:
        decide_in_slack(ctx, request_id, ALICE, CHANNEL, approve=True, plan_hash=None)
        [refusal] = slack.ephemerals(CHANNEL, ALICE)
        assert "cannot tell whether slack:U0ALICE is an approver" in refusal.text
        with sessions() as session:
            stored = session.get(RemediationRequest, request_id)
            assert stored is not None and stored.state == RequestState.PENDING_APPROVAL.value
        assert ctx.metrics.refusals.labels("approve")._value.get() == 1
        assert group_calls(slack) == [APPROVERS]
    finally:
        engine.dispose()


# --- make_client: retries ----------------------------------------------------------------------


def test_a_429_is_retried_after_retry_after(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url)
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    started = time.monotonic()
    response = client.chat_postMessage(channel=CHANNEL, text="hello")
    elapsed = time.monotonic() - started
    assert response["ok"]
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0  # Retry-After honoured
    assert elapsed >= 1.0
    assert [m.text for m in slack.messages(CHANNEL)] == ["hello"]


def test_rate_limits_beyond_the_retries_raise(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url)
    slack.rate_limit("auth.test", times=None, retry_after=0)
    with pytest.raises(SlackApiError) as raised:
        client.auth_test()
    assert raised.value.response.status_code == 429
    assert len(slack.calls("auth.test")) == 1 + RETRIES


def test_a_dropped_connection_is_retried(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url)
    slack.drop("chat.postMessage", times=1)
    response = client.chat_postMessage(channel=CHANNEL, text="hello")
    assert response["ok"]
    assert len(slack.calls("chat.postMessage")) == 2
    assert [m.text for m in slack.messages(CHANNEL)] == ["hello"]  # posted once


def test_a_server_error_is_retried(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url)
    slack.fail("auth.test", "internal_error", status=500, times=1)
    assert client.auth_test()["ok"]
    assert [c.status for c in slack.calls("auth.test")] == [500, 200]


def test_the_client_keeps_the_base_url_and_timeout(slack: FakeSlackApi) -> None:
    client = make_client(slack.bot_token, base_url=slack.base_url, timeout=7)
    assert client.base_url == slack.base_url and client.timeout == 7
    assert len(client.retry_handlers) >= 3
    assert make_client("xoxb-x").base_url == "https://slack.com/api/"
