"""What the bot tells Slack users when its database cannot be reached: one short private
message ("okeguard cannot reach its database"), one log line, never a traceback.

An interaction can fail on the database twice: while it is acknowledged (a quick subcommand
reads it) and in the work behind the acknowledgement (which first claims the delivery). Both run
at once in different threads; :data:`NOTICES` makes sure the person is told once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

if TYPE_CHECKING:
    from slack_bolt import BoltResponse

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)
DATABASE_DOWN = (
    ":warning: okeguard cannot reach its database, so nothing was done. Try again later."
)
ACK_WAIT_SECONDS = 3.0  # Slack's deadline: an acknowledgement is decided by then


def database_unreachable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached (refused, dropped, timed out,
    no connection free in the pool), not that a statement was wrong."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class Notices:
    """Deliveries acknowledged lately, and whether their acknowledgement already told of the
    outage (bounded; thread-safe)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._told: OrderedDict[str, bool] = OrderedDict()
        self._changed = threading.Condition()

    def _set(self, key: str, told: bool) -> None:
        with self._changed:
            self._told[key] = self._told.get(key, False) or told
            self._told.move_to_end(key)
            if len(self._told) > self.size:
                self._told.popitem(last=False)
            self._changed.notify_all()

    def told(self, key: str) -> None:
        """The acknowledgement of ``key`` tells of the outage."""
        self._set(key, True)

    def acknowledged(self, key: str) -> None:
        """``key`` is acknowledged (whatever it said)."""
        self._set(key, False)

    def told_in_acknowledgement(self, key: str, timeout: float = ACK_WAIT_SECONDS) -> bool:
        """Whether the acknowledgement of ``key`` told of the outage; waits for it to be decided."""
        with self._changed:
            self._changed.wait_for(lambda: key in self._told, timeout)
            return self._told.get(key, False)


NOTICES = Notices()


def reply_to(body: dict[str, Any]) -> tuple[str, str] | None:
    """(channel, user) to answer a slash command, a click or a form privately; None when the
    interaction names no channel."""
    if body.get("command"):
        channel, user = body.get("channel_id"), body.get("user_id")
    else:
        user = (body.get("user") or {}).get("id")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        if not channel and body.get("view"):  # our modals carry "<subject>|<channel>"
            channel = str(body["view"].get("private_metadata") or "").rpartition("|")[2]
    return (str(channel), str(user)) if channel and user else None


def _log(ctx: BotContext, body: dict[str, Any], error: BaseException) -> None:
    ctx.metrics.slack_errors.labels("listener").inc()
    cause = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
    log.warning(
        "database unreachable: %s not processed (%s: %s)",
        body.get("command") or body.get("type") or "request",
        type(error).__name__,
        cause,
        extra={"database": "unreachable", "exc_type": type(error).__name__},
    )


def tell(ctx: BotContext, body: dict[str, Any], error: BaseException) -> None:
    """One log line, a metric, and the person who asked told privately (when they can be)."""
    _log(ctx, body, error)
    target = reply_to(body)
    if target is None:
        return
    try:
        ctx.client.chat_postEphemeral(channel=target[0], user=target[1], text=DATABASE_DOWN)
    except Exception as exc:
        ctx.metrics.slack_errors.labels("chat.postEphemeral").inc()
        log.warning("chat.postEphemeral to %s failed: %s", target[1], type(exc).__name__)


def answer_database_down(
    ctx: BotContext,
    body: dict[str, Any],
    key: str | None,
    error: BaseException,
    response: BoltResponse | None,
) -> BoltResponse | None:
    """For Bolt's error handler: the acknowledgement of an interaction whose listener found the
    database unreachable (``key``: its delivery key). A slash command's answer says so (only its
    author sees it), a form shows it on its first input, anything else gets an ephemeral message."""
    from slack_bolt import BoltResponse

    view = body.get("view") or {}
    inputs = [b["block_id"] for b in view.get("blocks") or () if b.get("type") == "input"]
    if response is not None and (body.get("command") or inputs):
        _log(ctx, body, error)
        if key is not None:
            NOTICES.told(key)
        if body.get("command"):
            text = {"response_type": "ephemeral", "text": DATABASE_DOWN}
            return BoltResponse(status=200, body=text)
        errors = {inputs[0]: DATABASE_DOWN}
        return BoltResponse(status=200, body={"response_action": "errors", "errors": errors})
    if key is not None:
        NOTICES.told(key)
    tell(ctx, body, error)
    return BoltResponse(status=200, body="") if response is not None else None
