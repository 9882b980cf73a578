"""Shared pieces of the fake Slack Web API: identities, the recorded call, the stored messages,
ephemerals, views and uploads, faults, and Slack's reply shapes."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BOT_TOKEN = "xoxb-fake-bot-token"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
APP_ID = "A0FAKEAPP"
TEAM_ID = "T0FAKETEAM"
TEAM_DOMAIN = "fake-team"
TS_BASE = 1732700000  # the seconds of the first ts handed out

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40000

# Parameters slack_sdk sends as JSON strings in form bodies (and as JSON values in JSON bodies).
JSON_PARAMS = frozenset({"blocks", "attachments", "view", "files", "metadata", "user_auth_blocks"})


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received: the Web API method (``"upload"`` for a POST of file bytes
    to an upload URL, ``"response_url"`` for a POST to a response URL), its parameters (query,
    form and JSON body merged; JSON-string params such as ``blocks`` decoded), the request
    headers without ``Authorization``, the arrival time (``time.time()``), and what was
    answered (HTTP status and the JSON body; ``None`` when the connection was dropped)."""

    method: str
    params: Mapping[str, Any]
    headers: Mapping[str, str]
    at: float
    status: int
    response: Any


@dataclass
class Message:
    """A message in a channel, as it stands now (``history`` holds earlier versions)."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)  # file ids shared with this message
    params: dict[str, Any] = field(default_factory=dict)  # of the last post or update
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier {text, blocks, …}
    deleted: bool = False
    bot: bool = True  # posted by the app's bot user (so answered with ``bot_id``/``app_id``)
    edited_ts: str | None = None

    @property
    def edits(self) -> int:
        return len(self.history)

    def to_json(self, team_id: str) -> dict[str, Any]:
        """The message as Slack returns it (``message`` of chat.postMessage / chat.update)."""
        out: dict[str, Any] = {
            "type": "message",
            "text": self.text or "",
            "user": self.user,
            "ts": self.ts,
            "team": team_id,
        }
        if self.bot:
            out.update({"bot_id": BOT_ID, "app_id": APP_ID})
        if self.blocks is not None:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments is not None:
            out["attachments"] = copy.deepcopy(self.attachments)
        if self.metadata is not None:
            out["metadata"] = copy.deepcopy(self.metadata)
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.history:
            out["edited"] = {"user": self.user, "ts": self.edited_ts or self.ts}
        return out


@dataclass(frozen=True)
class Ephemeral:
    """A chat.postEphemeral (or an ephemeral response-URL reply) to ``user`` in ``channel``."""

    channel: str
    user: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    message_ts: str


@dataclass
class View:
    """A modal (views.open / views.push) or a Home tab (views.publish), as it stands now."""

    id: str
    view: dict[str, Any]  # the full view object as answered (with ``hash``, ``state``…)
    kind: str  # "modal" or "home"
    trigger_id: str | None = None
    user_id: str | None = None  # Home tab owner
    pushed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier view objects

    @property
    def hash(self) -> str:
        return str(self.view["hash"])


@dataclass
class Upload:
    """A file of the external upload flow (files.getUploadURLExternal → POST bytes →
    files.completeUploadExternal)."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    snippet_type: str | None = None
    content: bytes | None = None  # None until the bytes are posted to the upload URL
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    message_ts: str | None = None  # the share message, once completed into a channel
    completed: bool = False
    created: int = 0


@dataclass
class ResponseUrl:
    """A response URL handed to a test (``api.new_response_url``), bound to a message or not."""

    id: str
    channel: str | None
    message_ts: str | None
    user: str | None
    posts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Fault:
    pattern: str  # fnmatch pattern over method names
    kind: str  # "error" | "ratelimit" | "drop"
    error: str = "internal_error"
    status: int = 200
    retry_after: int = 1
    remaining: int | None = 1  # None: until cleared


class SlackError(Exception):
    """Raised inside a method to answer ``{"ok": false, "error": …}``."""

    def __init__(self, error: str, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


def decode_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Decode the JSON-string parameters (``blocks``, ``view``, ``files``…) as Slack does;
    an undecodable one is left as the string (the method then refuses it)."""
    out = dict(params)
    for key in JSON_PARAMS & out.keys():
        value = out[key]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                out[key] = json.loads(value)
    return out


def ts_for(n: int) -> str:
    """The ``n``-th message ts: unique, increasing, Slack-shaped (``"1732700000.000100"``)."""
    micros = n * 100
    return f"{TS_BASE + micros // 1_000_000}.{micros % 1_000_000:06d}"
