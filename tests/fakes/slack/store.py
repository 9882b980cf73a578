"""The fake Slack's state: ``FakeSlackApi`` (identities, channels, users, user groups,
messages, ephemerals, views, uploads, response URLs, faults and recorded calls) and
``running_fake_slack_api``."""

from __future__ import annotations

import copy
import fnmatch
import itertools
import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakes.serving import ServesHttp
from tests.fakes.slack.handler import _Handler, _Server
from tests.fakes.slack.model import (
    BOT_TOKEN,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TS_BASE,
    Ephemeral,
    Message,
    RecordedCall,
    ResponseUrl,
    SlackError,
    Upload,
    View,
    _Fault,
    ts_for,
)
from tests.fakes.slack.socket_mode import APP_TOKEN, SocketModeApi, SocketModeServer


@dataclass
class FakeSlackApi(SocketModeApi, ServesHttp):
    """The fake's state; point ``slack_sdk.WebClient(token=api.bot_token,
    base_url=api.base_url)`` at it (Socket Mode: ``SocketModeClient(app_token=api.app_token,
    web_client=…)``; see ``tests.fakes.slack.socket_mode``)."""

    bot_token: str = BOT_TOKEN
    app_token: str = APP_TOKEN  # app-level (xapp-…): apps.connections.open only
    bot_user_id: str = BOT_USER_ID
    team_id: str = TEAM_ID
    team_name: str = "Fake Team"
    team_domain: str = TEAM_DOMAIN
    bot_name: str = "okeguard"
    extra_tokens: set[str] = field(default_factory=set)  # other tokens accepted (a user token…)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # conversations.info shape
    strict_channels: bool = False  # unknown channels: channel_not_found (else made on first use)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # users.info shape
    strict_users: bool = False  # unknown users: user_not_found / user_not_in_channel
    usergroups: dict[str, dict[str, Any]] = field(default_factory=dict)  # with ``users``
    views: dict[str, View] = field(default_factory=dict)  # by view id
    files: dict[str, Upload] = field(default_factory=dict)  # every upload begun, by file id
    response_urls: dict[str, ResponseUrl] = field(default_factory=dict)
    expired_triggers: set[str] = field(default_factory=set)
    channel_min_interval: float | None = None  # enforce pacing: faster posts get 429
    requests: list[RecordedCall] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)  # method pattern -> seconds
    late_answers: dict[str, float] = field(default_factory=dict)  # acted on, answered late
    _messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    _ephemerals: list[Ephemeral] = field(default_factory=list)
    _post_times: dict[str, list[float]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _socket_server: SocketModeServer | None = None  # started on first use
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ts_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _id_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.users.setdefault(
            self.bot_user_id,
            _user_json(self.bot_user_id, self.bot_name, self.team_id, is_bot=True),
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeSlackApi:
        self._serve(_Server, _Handler)
        return self

    def stop(self) -> None:
        self._stop_socket_mode()
        super().stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``WebClient(base_url=…)`` needs (``{url}/api/``)."""
        return f"{self.url}/api/"

    @property
    def valid_tokens(self) -> set[str]:
        return {self.bot_token, *self.extra_tokens}

    # -- seeding ---------------------------------------------------------------------------
    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_private: bool = False,
        is_member: bool = True,
        is_archived: bool = False,
    ) -> dict[str, Any]:
        """Add a channel (``is_member=False``: posting answers ``not_in_channel``)."""
        with self._lock:
            doc = {
                "id": channel_id,
                "name": name or channel_id.lower(),
                "is_channel": not is_private,
                "is_group": False,
                "is_im": False,
                "is_private": is_private,
                "is_archived": is_archived,
                "is_member": is_member,
                "created": TS_BASE,
                "context_team_id": self.team_id,
            }
            self.channels[channel_id] = doc
            return doc

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        *,
        real_name: str | None = None,
        email: str | None = None,
        is_admin: bool = False,
        tz: str = "Europe/Berlin",
        deleted: bool = False,
    ) -> dict[str, Any]:
        with self._lock:
            doc = _user_json(
                user_id,
                name or user_id.lower(),
                self.team_id,
                real_name=real_name,
                email=email,
                is_admin=is_admin,
                tz=tz,
                deleted=deleted,
            )
            self.users[user_id] = doc
            return doc

    def add_usergroup(
        self,
        usergroup_id: str,
        users: Iterable[str],
        *,
        handle: str | None = None,
        disabled: bool = False,
    ) -> dict[str, Any]:
        """Add a user group (``S…``) with its members (``disabled``: deleted, as Slack keeps
        them: listed only with ``include_disabled``)."""
        with self._lock:
            members = list(users)
            doc = {
                "id": usergroup_id,
                "team_id": self.team_id,
                "is_usergroup": True,
                "name": handle or usergroup_id.lower(),
                "handle": handle or usergroup_id.lower(),
                "date_delete": TS_BASE if disabled else 0,
                "users": members,
                "user_count": len(members),
            }
            self.usergroups[usergroup_id] = doc
            return doc

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0FAKEHUMAN",
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """Seed a message someone else posted (the bot cannot update or delete it); its ts."""
        with self._lock:
            message = Message(channel, self._next_ts(), text, blocks, thread_ts, user, bot=False)
            self._messages[(channel, message.ts)] = message
            return message.ts

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        message_ts: str | None = None,
        user: str | None = None,
    ) -> str:
        """A response URL on this fake (for payload builders): POSTs to it are recorded in
        ``response_urls[id].posts`` and act on ``channel``/``message_ts`` as Slack would."""
        with self._lock:
            hook = ResponseUrl(self._next_id("R"), channel, message_ts, user)
            self.response_urls[hook.id] = hook
            return f"{self.url}/response/{hook.id}"

    # -- faults ----------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        error: str = "internal_error",
        *,
        status: int = 200,
        times: int | None = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` (an fnmatch pattern; None: until cleared)
        answer ``{"ok": false, "error": error}`` with HTTP ``status``."""
        with self._lock:
            self.faults.append(_Fault(method, "error", error, status, remaining=times))

    def rate_limit(self, method: str, times: int | None = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``method`` answer 429 ``ratelimited`` with
        ``Retry-After: retry_after``."""
        with self._lock:
            self.faults.append(
                _Fault(method, "ratelimit", "ratelimited", 429, retry_after, remaining=times)
            )

    def drop(self, method: str, times: int | None = 1) -> None:
        """The next ``times`` calls of ``method`` get no answer: the connection is closed."""
        with self._lock:
            self.faults.append(_Fault(method, "drop", remaining=times))

    def delay(self, method: str, seconds: float, *, after_acting: bool = False) -> None:
        """Every call of ``method`` (a pattern) waits ``seconds`` before it is answered; with
        ``after_acting``, the call takes effect at once (a message is posted, say) and only the
        answer is late, as over a slow network."""
        with self._lock:
            (self.late_answers if after_acting else self.delays)[method] = seconds

    def enforce_channel_pacing(self, min_interval: float | None = 1.0) -> None:
        """Answer 429 to a chat.postMessage sooner than ``min_interval`` s after the last
        accepted post to that channel, as Slack's ~1 message/s/channel limit does (None: off)."""
        with self._lock:
            self.channel_min_interval = min_interval

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.delays.clear()
            self.late_answers.clear()
            self.channel_min_interval = None

    def expire_trigger(self, trigger_id: str) -> None:
        """views.open/views.push with this trigger answer ``expired_trigger_id``."""
        with self._lock:
            self.expired_triggers.add(trigger_id)

    # -- assertions ------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """The recorded calls, of ``method`` (an fnmatch pattern) or all, oldest first."""
        with self._lock:
            return [c for c in self.requests if method is None or fnmatch.fnmatch(c.method, method)]

    def messages(
        self, channel: str | None = None, *, include_deleted: bool = False
    ) -> list[Message]:
        """The messages as they stand now (updates applied), of ``channel`` or all, by ts."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in sorted(self._messages.values(), key=lambda m: _ts_key(m.ts))
                if (channel is None or m.channel == channel) and (include_deleted or not m.deleted)
            ]

    def message(self, channel: str, ts: str) -> Message:
        """One message as it stands now (KeyError when never posted)."""
        with self._lock:
            return copy.deepcopy(self._messages[(channel, ts)])

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The replies in a thread (not the parent), by ts."""
        return [m for m in self.messages(channel) if m.thread_ts == thread_ts and m.ts != thread_ts]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[Ephemeral]:
        with self._lock:
            return [
                e
                for e in self._ephemerals
                if (channel is None or e.channel == channel) and (user is None or e.user == user)
            ]

    def posts_to(self, channel: str) -> list[float]:
        """The times (``time.time()``) of the accepted chat.postMessage calls to ``channel``."""
        with self._lock:
            return list(self._post_times.get(channel, []))

    @property
    def uploads(self) -> list[Upload]:
        """The completed uploads, in order."""
        with self._lock:
            return [copy.deepcopy(f) for f in self.files.values() if f.completed]

    def modals(self) -> list[View]:
        with self._lock:
            return [copy.deepcopy(v) for v in self.views.values() if v.kind == "modal"]

    def home_view(self, user_id: str) -> View | None:
        with self._lock:
            return next(
                (
                    copy.deepcopy(v)
                    for v in self.views.values()
                    if v.kind == "home" and v.user_id == user_id
                ),
                None,
            )

    # -- used by the handler and methods (lock held) ----------------------------------------
    def _next_ts(self) -> str:
        return ts_for(next(self._ts_counter))

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._id_counter):08d}"

    def _next_hash(self) -> str:
        return f"{TS_BASE}.{next(self._id_counter):08d}"

    def _channel(self, channel_id: str) -> dict[str, Any]:
        found = self.channels.get(channel_id)
        if found is None:
            if self.strict_channels:
                raise SlackError("channel_not_found")
            found = self.add_channel(channel_id)
        return found

    def _postable(self, channel_id: str) -> None:
        doc = self._channel(channel_id)
        if doc.get("is_archived"):
            raise SlackError("is_archived")
        if not doc.get("is_member", True):
            raise SlackError("not_in_channel")

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self.faults:
            if fnmatch.fnmatch(method, fault.pattern):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _delay_for(self, method: str, *, late: bool = False) -> float:
        with self._lock:
            delays = self.late_answers if late else self.delays
            return max((s for p, s in delays.items() if fnmatch.fnmatch(method, p)), default=0.0)

    def _pacing_wait(self, channel: str) -> int:
        """Seconds to wait before the next post to ``channel`` may go (0: now)."""
        if self.channel_min_interval is None or not self._post_times.get(channel):
            return 0
        left = self._post_times[channel][-1] + self.channel_min_interval - time.time()
        return max(0, math.ceil(left))


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _user_json(
    user_id: str,
    name: str,
    team_id: str,
    *,
    real_name: str | None = None,
    email: str | None = None,
    is_admin: bool = False,
    tz: str = "Europe/Berlin",
    deleted: bool = False,
    is_bot: bool = False,
) -> dict[str, Any]:
    profile: dict[str, Any] = {"real_name": real_name or name, "display_name": name}
    if email:
        profile["email"] = email
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "real_name": real_name or name,
        "deleted": deleted,
        "is_admin": is_admin,
        "is_owner": False,
        "is_bot": is_bot,
        "tz": tz,
        "tz_label": tz,
        "tz_offset": 3600 if tz == "Europe/Berlin" else 0,
        "profile": profile,
    }


@contextmanager
def running_fake_slack_api(**settings: Any) -> Iterator[FakeSlackApi]:
    """A started fake (``settings``: any ``FakeSlackApi`` field), stopped on exit."""
    api = FakeSlackApi(**settings).start()
    try:
        yield api
    finally:
        api.stop()
