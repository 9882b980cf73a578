"""The Web API methods of the fake Slack: each a function of the fake and the decoded request
parameters that returns Slack's JSON answer (``ok: true`` added by the handler) or raises
``SlackError``. The handler holds the fake's lock while a method runs."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.fakes.slack.model import (
    APP_ID,
    BOT_ID,
    MAX_MESSAGE_BLOCKS,
    MAX_TEXT,
    MAX_VIEW_BLOCKS,
    Ephemeral,
    Message,
    SlackError,
    View,
)

if TYPE_CHECKING:
    from tests.fakes.slack.store import FakeSlackApi

Method = Callable[["FakeSlackApi", dict[str, Any]], dict[str, Any]]
METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Method], Method]:
    def register(fn: Method) -> Method:
        METHODS[name] = fn
        return fn

    return register


def _required(p: dict[str, Any], key: str, error: str = "invalid_arguments") -> str:
    value = p.get(key)
    if value in (None, ""):
        raise SlackError(error)
    return str(value)


def _blocks(p: dict[str, Any], limit: int = MAX_MESSAGE_BLOCKS) -> list[dict[str, Any]] | None:
    """The ``blocks`` parameter checked as Slack does, lightly: a list of at most ``limit``
    objects each with a ``type``."""
    blocks = p.get("blocks")
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if len(blocks) > limit or not all(isinstance(b, dict) and b.get("type") for b in blocks):
        raise SlackError("invalid_blocks")
    return copy.deepcopy(blocks)


def _message_content(p: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None]:
    text = p.get("text")
    blocks = _blocks(p)
    if not text and not blocks and not p.get("attachments"):
        raise SlackError("no_text")
    if text is not None and len(str(text)) > MAX_TEXT:
        raise SlackError("msg_too_long")
    return (None if text is None else str(text)), blocks


def _find(api: FakeSlackApi, channel: str, ts: str) -> Message:
    message = api._messages.get((channel, ts))
    if message is None or message.deleted:
        raise SlackError("message_not_found")
    return message


# -- auth, users, conversations, user groups --------------------------------------------------
@method("auth.test")
def auth_test(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": f"https://{api.team_domain}.slack.com/",
        "team": api.team_name,
        "user": api.bot_name,
        "team_id": api.team_id,
        "user_id": api.bot_user_id,
        "bot_id": BOT_ID,
        "is_enterprise_install": False,
    }


@method("users.info")
def users_info(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    user = api.users.get(_required(p, "user", "user_not_found"))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": copy.deepcopy(user)}


@method("conversations.info")
def conversations_info(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    return {"channel": copy.deepcopy(api._channel(_required(p, "channel", "channel_not_found")))}


@method("usergroups.users.list")
def usergroups_users_list(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    group = api.usergroups.get(_required(p, "usergroup", "no_such_subteam"))
    if group is None or (group.get("date_delete") and p.get("include_disabled") not in ("1", True)):
        raise SlackError("no_such_subteam")
    return {"users": list(group["users"])}


@method("usergroups.list")
def usergroups_list(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    groups = [copy.deepcopy(g) for g in api.usergroups.values()]
    if p.get("include_users") not in ("1", True):
        for g in groups:
            g.pop("users", None)
    return {"usergroups": groups}


# -- chat -------------------------------------------------------------------------------------
@method("chat.postMessage")
def chat_post_message(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    channel = _required(p, "channel", "channel_not_found")
    api._postable(channel)
    text, blocks = _message_content(p)
    thread_ts = p.get("thread_ts") or None
    message = Message(
        channel,
        api._next_ts(),
        text,
        blocks,
        thread_ts=None if thread_ts is None else str(thread_ts),
        user=api.bot_user_id,
        attachments=p.get("attachments"),
        metadata=p.get("metadata"),
        params=copy.deepcopy(p),
    )
    api._messages[(channel, message.ts)] = message
    api._post_times.setdefault(channel, []).append(time.time())
    return {"channel": channel, "ts": message.ts, "message": message.to_json(api.team_id)}


@method("chat.update")
def chat_update(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    channel = _required(p, "channel", "channel_not_found")
    message = _find(api, channel, _required(p, "ts", "message_not_found"))
    if not message.bot:
        raise SlackError("cant_update_message")
    text, blocks = _message_content(p)
    message.history.append(
        {"text": message.text, "blocks": message.blocks, "attachments": message.attachments}
    )
    if text is not None:
        message.text = text
    if "blocks" in p:  # left out: the blocks stay; [] removes them
        message.blocks = blocks
    if "attachments" in p:
        message.attachments = p["attachments"]
    message.params = copy.deepcopy(p)
    message.edited_ts = api._next_ts()
    return {
        "channel": channel,
        "ts": message.ts,
        "text": message.text or "",
        "message": message.to_json(api.team_id),
    }


@method("chat.postEphemeral")
def chat_post_ephemeral(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    channel = _required(p, "channel", "channel_not_found")
    api._postable(channel)
    user = _required(p, "user", "user_not_in_channel")
    if api.strict_users and user not in api.users:
        raise SlackError("user_not_in_channel")
    text, blocks = _message_content(p)
    ts = api._next_ts()
    thread_ts = p.get("thread_ts") or None
    api._ephemerals.append(
        Ephemeral(channel, user, text, blocks, None if thread_ts is None else str(thread_ts), ts)
    )
    return {"message_ts": ts}


@method("chat.delete")
def chat_delete(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    channel = _required(p, "channel", "channel_not_found")
    message = _find(api, channel, _required(p, "ts", "message_not_found"))
    if not message.bot:
        raise SlackError("cant_delete_message")
    message.deleted = True
    return {"channel": channel, "ts": message.ts}


@method("chat.getPermalink")
def chat_get_permalink(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    channel = _required(p, "channel", "channel_not_found")
    api._channel(channel)
    message = _find(api, channel, _required(p, "message_ts", "message_not_found"))
    link = f"https://{api.team_domain}.slack.com/archives/{channel}/p{message.ts.replace('.', '')}"
    if message.thread_ts is not None:
        link += f"?thread_ts={message.thread_ts}&cid={channel}"
    return {"channel": channel, "permalink": link}


# -- views ------------------------------------------------------------------------------------
def _view_object(api: FakeSlackApi, view: Any, view_id: str, root_id: str) -> dict[str, Any]:
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        raise SlackError("invalid_arguments")
    _blocks({"blocks": view.get("blocks", [])}, MAX_VIEW_BLOCKS)
    if view["type"] == "modal" and not view.get("title"):
        raise SlackError("invalid_arguments")
    out: dict[str, Any] = {
        "id": view_id,
        "team_id": api.team_id,
        "type": view["type"],
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "external_id": "",
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": root_id,
        "app_id": APP_ID,
        "app_installed_team_id": api.team_id,
        "bot_id": BOT_ID,
    }
    out.update(copy.deepcopy(view))
    out.update({"id": view_id, "state": {"values": {}}, "hash": api._next_hash()})
    return out


def _trigger(api: FakeSlackApi, p: dict[str, Any]) -> str:
    trigger = p.get("trigger_id") or p.get("interactivity_pointer")
    if not trigger:
        raise SlackError("invalid_arguments")
    if str(trigger) in api.expired_triggers:
        raise SlackError("expired_trigger_id")
    return str(trigger)


@method("views.open")
def views_open(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    trigger = _trigger(api, p)
    view_id = api._next_id("V")
    view = View(view_id, _view_object(api, p.get("view"), view_id, view_id), "modal", trigger)
    api.views[view_id] = view
    return {"view": copy.deepcopy(view.view)}


@method("views.push")
def views_push(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    trigger = _trigger(api, p)
    stack = [v for v in api.views.values() if v.trigger_id == trigger and v.kind == "modal"]
    if len(stack) >= 3:
        raise SlackError("push_limit_reached")
    view_id = api._next_id("V")
    root = stack[0].id if stack else view_id
    obj = _view_object(api, p.get("view"), view_id, root)
    obj["previous_view_id"] = stack[-1].id if stack else None
    api.views[view_id] = View(view_id, obj, "modal", trigger, pushed=True)
    return {"view": copy.deepcopy(obj)}


@method("views.update")
def views_update(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    view_id, external_id = p.get("view_id"), p.get("external_id")
    if not view_id and not external_id:
        raise SlackError("invalid_arguments")
    found = next(
        (
            v
            for v in api.views.values()
            if (view_id and v.id == view_id)
            or (not view_id and external_id and v.view.get("external_id") == external_id)
        ),
        None,
    )
    if found is None:
        raise SlackError("not_found")
    if p.get("hash") and p["hash"] != found.hash:
        raise SlackError("hash_conflict")
    obj = _view_object(api, p.get("view"), found.id, found.view["root_view_id"])
    obj["previous_view_id"] = found.view.get("previous_view_id")
    obj["state"] = found.view.get("state", {"values": {}})
    found.history.append(found.view)
    found.view = obj
    return {"view": copy.deepcopy(obj)}


@method("views.publish")
def views_publish(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    user = _required(p, "user_id")
    if api.strict_users and user not in api.users:
        raise SlackError("user_not_found")
    found = next((v for v in api.views.values() if v.kind == "home" and v.user_id == user), None)
    if found is not None and p.get("hash") and p["hash"] != found.hash:
        raise SlackError("hash_conflict")
    view_id = found.id if found is not None else api._next_id("V")
    obj = _view_object(api, p.get("view"), view_id, view_id)
    if obj["type"] != "home":
        raise SlackError("invalid_arguments")
    if found is None:
        api.views[view_id] = View(view_id, obj, "home", user_id=user)
    else:
        found.history.append(found.view)
        found.view = obj
    return {"view": copy.deepcopy(obj)}


def call(api: FakeSlackApi, name: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Run Web API method ``name``; returns the HTTP status and the JSON answer."""
    fn = METHODS.get(name)
    if fn is None:
        return 200, {"ok": False, "error": "unknown_method", "req_method": name}
    try:
        return 200, {"ok": True, **fn(api, params)}
    except SlackError as e:
        return e.status, {"ok": False, "error": e.error, **e.extra}


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()
