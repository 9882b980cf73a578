"""Requests as Slack sends them to an app in HTTP mode: the v0 signature headers and the
bodies of slash commands, block actions and view submissions (form-encoded; interactivity as a
``payload=`` JSON field, which slack_bolt parses)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tests.fakes.slack.model import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID

USER_ID = "U0FAKEUSER"
USER_NAME = "alice"
CHANNEL_ID = "C0FAKECHAN"
CHANNEL_NAME = "oke-security"
TRIGGER_ID = "1732700000123.1234567890.0123456789abcdef0123456789abcdef"
RESPONSE_URL = f"https://hooks.slack.com/commands/{TEAM_ID}/1/fake"
VERIFICATION_TOKEN = "fake-verification-token"  # the deprecated ``token`` field


def sign_request(body: bytes, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body`` as Slack computes
    them: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed by the signing secret
    (``timestamp`` defaults to now; Slack apps refuse ones older than 5 minutes)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(
    command: str = "/okeguard",
    text: str = "",
    *,
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    response_url: str = RESPONSE_URL,
    trigger_id: str = TRIGGER_ID,
    api_app_id: str = APP_ID,
) -> bytes:
    """The form-encoded body of a slash command invocation."""
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    ).encode()


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _payload_body(payload: Mapping[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_action_payload(
    action_id: str,
    value: str | None = None,
    *,
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    message_ts: str = "1732700000.000100",
    trigger_id: str = TRIGGER_ID,
    block_id: str = "actions",
    action_type: str = "button",
    text: str = "Button",
    message: Mapping[str, Any] | None = None,
    view: Mapping[str, Any] | None = None,
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    team_id: str = TEAM_ID,
    response_url: str = f"https://hooks.slack.com/actions/{TEAM_ID}/1/fake",
    selected_option: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload: a click on a button (or another element, by
    ``action_type``) in a message, or in ``view`` (a modal/Home tab) when given."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": action_type,
        "action_ts": f"{int(time.time())}.000000",
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
        if value is not None:
            action["value"] = value
    elif selected_option is not None:
        action["selected_option"] = dict(selected_option)
    elif value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": _state(state_values)},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "V0FAKEVIEW")}
        payload["view"] = dict(view)
        return payload
    payload["container"] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    payload["channel"] = {"id": channel_id, "name": channel_name}
    payload["message"] = dict(
        message
        or {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": message_ts,
            "text": "",
            "blocks": [],
        }
    )
    payload["response_url"] = response_url
    return payload


def block_action_body(action_id: str, value: str | None = None, **fields: Any) -> bytes:
    """The form-encoded body (``payload=`` JSON) of :func:`block_action_payload`."""
    return _payload_body(block_action_payload(action_id, value, **fields))


def _state(values: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``{block_id: {action_id: element state}}``; a bare string is a plain_text_input value."""
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in (values or {}).items():
        out[block_id] = {
            action_id: (
                {"type": "plain_text_input", "value": state}
                if isinstance(state, str) or state is None
                else dict(state)
            )
            for action_id, state in actions.items()
        }
    return out


def view_submission_payload(
    callback_id: str,
    private_metadata: str = "",
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    team_id: str = TEAM_ID,
    view_id: str = "V0FAKEVIEW",
    view_hash: str = "1732700000.fakehash",
    blocks: list[dict[str, Any]] | None = None,
    title: str = "okeguard",
    trigger_id: str = TRIGGER_ID,
    response_urls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``view_submission`` payload: the user pressed Submit on the modal ``callback_id``.
    ``state_values`` is ``{block_id: {action_id: state}}`` (a bare string stands for a
    ``plain_text_input`` value)."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": blocks or [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": _state(state_values)},
            "hash": view_hash,
            "title": {"type": "plain_text", "text": title, "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": {"type": "plain_text", "text": "Cancel", "emoji": True},
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": BOT_ID,
        },
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_submission_body(
    callback_id: str,
    private_metadata: str = "",
    state_values: Mapping[str, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> bytes:
    """The form-encoded body (``payload=`` JSON) of :func:`view_submission_payload`."""
    return _payload_body(
        view_submission_payload(callback_id, private_metadata, state_values, **fields)
    )
