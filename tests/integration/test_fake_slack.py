"""The fake Slack Web API, driven through the real ``slack_sdk.WebClient``; and the signed
request helpers, checked with slack_sdk's own ``SignatureVerifier``."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import (
    BOT_USER_ID,
    FakeSlackApi,
    block_action_body,
    running_fake_slack_api,
    sign_request,
    slash_command_body,
    view_submission_body,
)

CHANNEL = "C0SECURITY"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*finding*"}}
MODAL = {
    "type": "modal",
    "callback_id": "approve",
    "title": {"type": "plain_text", "text": "Approve"},
    "blocks": [SECTION],
}


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    with running_fake_slack_api() as api:
        yield api


def client(api: FakeSlackApi, token: str | None = None, **kwargs: Any) -> WebClient:
    return WebClient(token=token or api.bot_token, base_url=api.base_url, timeout=5, **kwargs)


def error_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call(*args, **kwargs)
    return str(raised.value.response["error"])


# -- auth -------------------------------------------------------------------------------------
def test_auth_test_names_the_bot_and_the_team(slack: FakeSlackApi) -> None:
    answer = client(slack).auth_test()
    assert answer["user_id"] == BOT_USER_ID and answer["team_id"] == slack.team_id
    call = slack.calls("auth.test")[0]
    assert "Authorization" not in call.headers and call.status == 200


def test_a_wrong_or_missing_token_is_refused(slack: FakeSlackApi) -> None:
    assert error_of(client(slack, token="xoxb-wrong").auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=slack.base_url).auth_test) == "not_authed"
    # the ``token`` form field is accepted as well as the header
    assert WebClient(base_url=slack.base_url).auth_test(token=slack.bot_token)["ok"]


def test_configurable_identities() -> None:
    with running_fake_slack_api(
        bot_token="xoxb-other", bot_user_id="U0OTHER", team_id="T0X"
    ) as api:
        answer = client(api).auth_test()
        assert (answer["user_id"], answer["team_id"]) == ("U0OTHER", "T0X")


# -- chat -------------------------------------------------------------------------------------
def test_post_message_returns_increasing_ts_and_stores_the_message(slack: FakeSlackApi) -> None:
    web = client(slack)
    first = web.chat_postMessage(channel=CHANNEL, text="hello", blocks=[SECTION])
    second = web.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=first["ts"])
    assert first["ts"] == "1732700000.000100" and second["ts"] > first["ts"]
    assert first["channel"] == CHANNEL and first["message"]["blocks"] == [SECTION]
    assert first["message"]["user"] == BOT_USER_ID and "bot_id" in first["message"]
    stored = slack.messages(CHANNEL)
    assert [(m.text, m.thread_ts) for m in stored] == [("hello", None), ("reply", first["ts"])]
    assert stored[0].blocks == [SECTION]
    assert [m.ts for m in slack.thread(CHANNEL, first["ts"])] == [second["ts"]]
    assert slack.calls("chat.postMessage")[0].params["blocks"] == [SECTION]


def test_form_encoded_blocks_are_decoded(slack: FakeSlackApi) -> None:
    answer = client(slack).api_call(
        "chat.postMessage", params={"channel": CHANNEL, "blocks": json.dumps([SECTION])}
    )
    assert slack.message(CHANNEL, answer["ts"]).blocks == [SECTION]


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_refuses_no_text_and_too_many_blocks(slack: FakeSlackApi) -> None:
    web = client(slack)
    assert error_of(web.chat_postMessage, channel=CHANNEL) == "no_text"
    assert (
        error_of(web.chat_postMessage, channel=CHANNEL, blocks=[SECTION] * 51) == "invalid_blocks"
    )
    assert (
        error_of(web.chat_postMessage, channel=CHANNEL, blocks=[{"text": "x"}]) == "invalid_blocks"
    )
    assert web.chat_postMessage(channel=CHANNEL, blocks=[SECTION] * 50)["ok"]
    assert len(slack.messages(CHANNEL)) == 1


def test_channels_unknown_not_a_member_or_archived(slack: FakeSlackApi) -> None:
    web = client(slack)
    slack.add_channel("C0OUT", "outside", is_member=False)
    slack.add_channel("C0OLD", "old", is_archived=True)
    assert error_of(web.chat_postMessage, channel="C0OUT", text="x") == "not_in_channel"
    assert error_of(web.chat_postMessage, channel="C0OLD", text="x") == "is_archived"
    assert web.conversations_info(channel="C0OUT")["channel"]["name"] == "outside"
    slack.strict_channels = True
    assert error_of(web.chat_postMessage, channel="C0NOPE", text="x") == "channel_not_found"
    assert error_of(web.conversations_info, channel="C0NOPE") == "channel_not_found"


def test_update_changes_the_stored_message(slack: FakeSlackApi) -> None:
    web = client(slack)
    ts = web.chat_postMessage(channel=CHANNEL, text="pending", blocks=[SECTION])["ts"]
    done = {"type": "context", "elements": [{"type": "mrkdwn", "text": "approved"}]}
    answer = web.chat_update(channel=CHANNEL, ts=ts, text="approved", blocks=[done])
    assert answer["ts"] == ts and answer["message"]["blocks"] == [done]
    message = slack.message(CHANNEL, ts)
    assert (message.text, message.blocks, message.edits) == ("approved", [done], 1)
    assert message.history[0]["text"] == "pending"
    web.chat_update(channel=CHANNEL, ts=ts, text="text only")  # blocks left out: kept
    assert slack.message(CHANNEL, ts).blocks == [done]
    assert (
        error_of(web.chat_update, channel=CHANNEL, ts="1.000000", text="x") == "message_not_found"
    )
    assert (
        error_of(web.chat_update, channel=CHANNEL, ts=ts, text="x", blocks=[SECTION] * 51)
        == "invalid_blocks"
    )
    human = slack.add_message(CHANNEL, "by a person")
    assert error_of(web.chat_update, channel=CHANNEL, ts=human, text="x") == "cant_update_message"


def test_ephemeral_delete_and_permalink(slack: FakeSlackApi) -> None:
    web = client(slack)
    eph = web.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="only you")
    assert eph["message_ts"]
    assert [e.text for e in slack.ephemerals(CHANNEL, "U0ALICE")] == ["only you"]
    assert slack.ephemerals(CHANNEL, "U0BOB") == []
    parent = web.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    reply = web.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent)["ts"]
    link = web.chat_getPermalink(channel=CHANNEL, message_ts=reply)["permalink"]
    assert link.endswith(
        f"/archives/{CHANNEL}/p{reply.replace('.', '')}?thread_ts={parent}&cid={CHANNEL}"
    )
    assert web.chat_delete(channel=CHANNEL, ts=reply)["ts"] == reply
    assert [m.ts for m in slack.messages(CHANNEL)] == [parent]
    assert error_of(web.chat_delete, channel=CHANNEL, ts=reply) == "message_not_found"
    assert error_of(web.chat_getPermalink, channel=CHANNEL, message_ts=reply) == "message_not_found"


# -- views ------------------------------------------------------------------------------------
def test_views_open_update_with_hash_and_push(slack: FakeSlackApi) -> None:
    web = client(slack)
    opened = web.views_open(trigger_id="t-1", view=MODAL)["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["callback_id"] == "approve"
    assert opened["state"] == {"values": {}} and opened["root_view_id"] == opened["id"]
    changed = dict(MODAL, blocks=[SECTION, SECTION])
    updated = web.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    assert updated["hash"] != opened["hash"] and len(slack.views[opened["id"]].view["blocks"]) == 2
    stale = error_of(web.views_update, view_id=opened["id"], hash=opened["hash"], view=MODAL)
    assert stale == "hash_conflict"
    assert error_of(web.views_update, view_id="V0NOPE", view=MODAL) == "not_found"
    pushed = web.views_push(trigger_id="t-1", view=MODAL)["view"]
    assert pushed["root_view_id"] == opened["id"] and pushed["previous_view_id"] == opened["id"]
    assert [v.id for v in slack.modals()] == [opened["id"], pushed["id"]]


def test_views_open_needs_a_live_trigger_and_a_valid_view(slack: FakeSlackApi) -> None:
    web = client(slack)
    assert error_of(web.api_call, "views.open", json={"view": MODAL}) == "invalid_arguments"
    slack.expire_trigger("t-old")
    assert error_of(web.views_open, trigger_id="t-old", view=MODAL) == "expired_trigger_id"
    assert error_of(web.views_open, trigger_id="t-2", view={"type": "modal"}) == "invalid_arguments"


def test_views_publish_keeps_one_home_tab_per_user(slack: FakeSlackApi) -> None:
    web = client(slack)
    home = {"type": "home", "blocks": [SECTION]}
    first = web.views_publish(user_id="U0ALICE", view=home)["view"]
    again = web.views_publish(user_id="U0ALICE", view=home, hash=first["hash"])["view"]
    assert again["id"] == first["id"] and again["hash"] != first["hash"]
    assert (
        error_of(web.views_publish, user_id="U0ALICE", view=home, hash="stale") == "hash_conflict"
    )
    view = slack.home_view("U0ALICE")
    assert view is not None and view.hash == again["hash"]


# -- users and groups -------------------------------------------------------------------------
def test_usergroups_and_users(slack: FakeSlackApi) -> None:
    web = client(slack)
    slack.add_usergroup("S0APPROVERS", ["U0ALICE", "U0BOB"], handle="oke-approvers")
    slack.add_user("U0ALICE", "alice", email="alice@example.com")
    assert web.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["U0ALICE", "U0BOB"]
    assert error_of(web.usergroups_users_list, usergroup="S0NOPE") == "no_such_subteam"
    assert web.users_info(user="U0ALICE")["user"]["profile"]["email"] == "alice@example.com"
    assert error_of(web.users_info, user="U0NOPE") == "user_not_found"


# -- files ------------------------------------------------------------------------------------
def test_files_upload_v2_end_to_end(slack: FakeSlackApi) -> None:
    web = client(slack)
    parent = web.chat_postMessage(channel=CHANNEL, text="weekly posture")["ts"]
    png = b"\x89PNG\r\n\x1a\n...png bytes..."
    answer = web.files_upload_v2(
        channel=CHANNEL,
        content=png,
        filename="trend.png",
        title="Posture trend",
        initial_comment="Here is the trend",
        thread_ts=parent,
    )
    assert answer["file"]["title"] == "Posture trend" and answer["file"]["name"] == "trend.png"
    [upload] = slack.uploads
    assert (upload.content, upload.filename, upload.title) == (png, "trend.png", "Posture trend")
    assert (upload.channel, upload.thread_ts) == (CHANNEL, parent)
    assert upload.initial_comment == "Here is the trend"
    share = slack.message(CHANNEL, str(upload.message_ts))
    assert share.files == [upload.file_id] and share.text == "Here is the trend"
    assert share.thread_ts == parent
    assert [c.method for c in slack.requests[1:]] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    assert web.files_info(file=upload.file_id)["file"]["size"] == len(png)


def test_complete_without_upload_is_refused(slack: FakeSlackApi) -> None:
    web = client(slack)
    file_id = web.files_getUploadURLExternal(filename="a.txt", length=3)["file_id"]
    refused = error_of(
        web.files_completeUploadExternal, files=[{"id": file_id}], channel_id=CHANNEL
    )
    assert refused == "file_not_found"
    assert error_of(web.files_info, file=file_id) == "file_not_found"


def test_a_failed_upload_post_fails_files_upload_v2(slack: FakeSlackApi) -> None:
    slack.fail("upload", status=500)
    with pytest.raises(urllib.error.HTTPError, match="500"):  # slack_sdk's urlopen raises
        client(slack).files_upload_v2(channel=CHANNEL, content=b"x", filename="x.png")
    assert slack.uploads == []


# -- rate limits and faults -------------------------------------------------------------------
def test_rate_limited_then_retried_after_retry_after(slack: FakeSlackApi) -> None:
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    web = client(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    assert web.chat_postMessage(channel=CHANNEL, text="hi")["ok"]
    assert time.monotonic() - started >= 1.0
    calls = slack.calls("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.0
    assert len(slack.messages(CHANNEL)) == 1


def test_rate_limited_without_retry_handler(slack: FakeSlackApi) -> None:
    slack.rate_limit("chat.*", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        client(slack).chat_postMessage(channel=CHANNEL, text="hi")
    response = raised.value.response
    assert response.status_code == 429 and response["error"] == "ratelimited"
    assert response.headers["Retry-After"] == "7"


def test_channel_pacing_is_recorded_and_can_be_enforced(slack: FakeSlackApi) -> None:
    web = client(slack)
    for n in range(3):
        web.chat_postMessage(channel=CHANNEL, text=str(n))
    times = slack.posts_to(CHANNEL)
    assert len(times) == 3 and times == sorted(times) and slack.posts_to("C0OTHER") == []
    slack.enforce_channel_pacing(1.0)
    assert error_of(web.chat_postMessage, channel=CHANNEL, text="too fast") == "ratelimited"
    assert web.chat_postMessage(channel="C0OTHER", text="other channel")["ok"]


def test_fail_delay_and_drop(slack: FakeSlackApi) -> None:
    web = client(slack)
    slack.fail("auth.test", times=2)
    assert error_of(web.auth_test) == "internal_error"
    slack.fail("auth.test", "fatal_error", status=500)  # queued after the first
    assert error_of(web.auth_test) == "internal_error"
    with pytest.raises(SlackApiError) as raised:
        web.auth_test()
    assert raised.value.response.status_code == 500
    assert web.auth_test()["ok"]
    slack.delay("auth.test", 0.3)
    started = time.monotonic()
    web.auth_test()
    assert time.monotonic() - started >= 0.3
    slack.clear_faults()
    slack.drop("auth.test")  # slack_sdk's default ConnectionErrorRetryHandler tries once more
    assert web.auth_test()["ok"]
    assert [c.status for c in slack.calls("auth.test")[-2:]] == [0, 200]
    slack.drop("auth.test")
    with pytest.raises(ConnectionError):  # http.client.RemoteDisconnected
        client(slack, retry_handlers=[]).auth_test()


def test_unknown_method(slack: FakeSlackApi) -> None:
    assert error_of(client(slack).api_call, "nope.nothing") == "unknown_method"


def test_concurrent_posts_get_unique_ts(slack: FakeSlackApi) -> None:
    web = client(slack)
    seen: list[str] = []

    def post(n: int) -> None:
        seen.append(web.chat_postMessage(channel=CHANNEL, text=str(n))["ts"])

    threads = [threading.Thread(target=post, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 20 and len(slack.messages(CHANNEL)) == 20


# -- response URLs ----------------------------------------------------------------------------
def _post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_response_url_replaces_posts_and_answers_ephemerally(slack: FakeSlackApi) -> None:
    ts = client(slack).chat_postMessage(channel=CHANNEL, text="approve?")["ts"]
    bound = slack.new_response_url(channel=CHANNEL, message_ts=ts, user="U0ALICE")
    assert _post_json(bound, {"replace_original": True, "text": "approved"}) == 200
    assert slack.message(CHANNEL, ts).text == "approved"
    _post_json(bound, {"text": "just you"})
    assert [e.text for e in slack.ephemerals(CHANNEL, "U0ALICE")] == ["just you"]
    _post_json(bound, {"response_type": "in_channel", "text": "everyone"})
    assert [m.text for m in slack.messages(CHANNEL)] == ["approved", "everyone"]
    _post_json(bound, {"delete_original": True})
    assert [m.text for m in slack.messages(CHANNEL)] == ["everyone"]
    assert len(slack.calls("response_url")) == 4


# -- signed requests --------------------------------------------------------------------------
def test_sign_request_matches_slack_sdk_verifier() -> None:
    body = slash_command_body(text="scan prod")
    headers = sign_request(body, "s3cret")
    verifier = SignatureVerifier("s3cret")
    stamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert verifier.is_valid(body, stamp, signature)
    assert not SignatureVerifier("other").is_valid(body, stamp, signature)
    assert not verifier.is_valid(body + b"x", stamp, signature)
    old = sign_request(body, "s3cret", timestamp=int(time.time()) - 600)
    assert not verifier.is_valid(
        body, old["X-Slack-Request-Timestamp"], old["X-Slack-Signature"]
    )  # too old: Slack's 5-minute window
    fixed = sign_request(b"x", "s3cret", timestamp=1531420618)
    assert fixed["X-Slack-Request-Timestamp"] == "1531420618"
    assert fixed["X-Slack-Signature"].startswith("v0=") and len(fixed["X-Slack-Signature"]) == 67


def test_slack_docs_signature_example() -> None:
    # The worked example of Slack's "Verifying requests from Slack" page.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = sign_request(body, "8f742231b10e8888abcd99yyyzzz85a5", timestamp=1531420618)
    assert headers["X-Slack-Signature"] == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_payload_builders_carry_the_fields_bolt_reads() -> None:
    slash = {
        k: v[0]
        for k, v in parse_qs(slash_command_body(text="scan", user_id="U0A").decode()).items()
    }
    assert slash["command"] == "/okeguard" and slash["text"] == "scan" and slash["user_id"] == "U0A"
    assert {"team_id", "channel_id", "response_url", "trigger_id", "api_app_id"} <= slash.keys()

    action = json.loads(
        parse_qs(
            block_action_body(
                "approve", "plan-1", user_id="U0A", channel_id="C0B", message_ts="1.000100"
            ).decode()
        )["payload"][0]
    )
    assert action["type"] == "block_actions" and action["user"]["id"] == "U0A"
    assert action["actions"][0]["action_id"] == "approve"
    assert action["actions"][0]["value"] == "plan-1"
    assert action["container"] == {
        "type": "message",
        "message_ts": "1.000100",
        "channel_id": "C0B",
        "is_ephemeral": False,
    }
    assert action["channel"]["id"] == "C0B" and action["message"]["ts"] == "1.000100"

    submission = json.loads(
        parse_qs(
            view_submission_body(
                "reject", "plan-1", {"reason": {"reason_input": "too risky"}}, user_id="U0A"
            ).decode()
        )["payload"][0]
    )
    assert submission["type"] == "view_submission"
    view = submission["view"]
    assert view["callback_id"] == "reject" and view["private_metadata"] == "plan-1"
    assert view["state"]["values"]["reason"]["reason_input"] == {
        "type": "plain_text_input",
        "value": "too risky",
    }


def test_bolt_accepts_the_signed_bodies_and_routes_them(slack: FakeSlackApi) -> None:
    from slack_bolt import App
    from slack_bolt.request import BoltRequest

    secret = "s3cret"
    app = App(client=client(slack), signing_secret=secret)  # auth.test goes to the fake
    seen: list[str] = []  # appended before ack(): dispatch returns once a listener acks

    @app.command("/okeguard")
    def command(ack: Any, command: dict[str, Any]) -> None:
        seen.append(f"command:{command['text']}")
        ack()

    @app.action("approve")
    def approve(ack: Any, body: dict[str, Any]) -> None:
        seen.append(f"action:{body['actions'][0]['value']}")
        ack()

    @app.view("reject")
    def reject(ack: Any, view: dict[str, Any]) -> None:
        seen.append(f"view:{view['state']['values']['reason']['reason_input']['value']}")
        ack()

    for body in (
        slash_command_body(text="scan prod"),
        block_action_body("approve", "plan-1"),
        view_submission_body("reject", "plan-1", {"reason": {"reason_input": "too risky"}}),
    ):
        headers: dict[str, Any] = sign_request(body, secret)
        response = app.dispatch(BoltRequest(body=body.decode(), headers=headers))
        assert response.status == 200
    bad = slash_command_body()
    forged: dict[str, Any] = sign_request(bad, "wrong")
    unsigned = app.dispatch(BoltRequest(body=bad.decode(), headers=forged))
    assert unsigned.status == 401
    assert seen == ["command:scan prod", "action:plan-1", "view:too risky"]
