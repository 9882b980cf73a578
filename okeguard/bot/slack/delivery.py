"""Each delivery of a Slack interaction handled once, whichever replica got it.

A delivery Slack retries (the same event id, the same click, the same submission) has one key
(:func:`delivery_key`); the work behind the acknowledgement first claims the key in
``slack_deliveries`` (:func:`claim`), where a second claim (from a retry that reached another
replica) fails. :func:`once` wraps a lazy listener in that claim, the interaction's request id
and the database-outage notice. The listener modules (``commands``, ``actions``) import this,
and the app (``app.py``) imports them.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from okeguard.audit import queries
from okeguard.audit.models import RemediationRequest, SlackDelivery
from okeguard.bot.slack.outage import NOTICES, database_unreachable, tell
from okeguard.bot.slack.work import bot_context
from okeguard.logs import new_request_id, request_context

if TYPE_CHECKING:
    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """What identifies one delivery, whatever Slack retries; None for requests not deduplicated."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    kind = body.get("type")
    if kind == "block_actions" and body.get("actions"):
        # every interaction gets its own trigger id; action_ts is only as fine as Slack makes it
        action = body["actions"][0]
        unique = body.get("trigger_id") or action.get("action_ts")
        return f"action:{body.get('user', {}).get('id')}:{action.get('action_id')}:{unique}"
    if kind == "view_submission" and body.get("view"):
        view = body["view"]
        return f"view:{view.get('id')}:{view.get('hash')}"
    if body.get("command") and body.get("trigger_id"):
        return f"command:{body['trigger_id']}"
    return None


def interaction_id(body: dict[str, Any]) -> str:
    """The request id of one Slack interaction: derived from its delivery key, so the
    acknowledgement and the lazy listener (another thread) log the same id; random otherwise."""
    key = delivery_key(body)
    if key is None:
        return new_request_id()
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def log_interaction(body: dict[str, Any]) -> None:
    """One INFO line per interaction: the subcommand, the button or the form; never its text."""
    if body.get("command"):
        words = str(body.get("text") or "").split()
        subcommand = words[0].lower() if words else "help"
        log.info(
            "slash command %s %s from %s",
            body["command"],
            subcommand,
            body.get("user_id"),
            extra={"subcommand": subcommand, "user": body.get("user_id")},
        )
    elif body.get("type") == "block_actions" and body.get("actions"):
        action, user = body["actions"][0].get("action_id"), (body.get("user") or {}).get("id")
        log.info("button %s from %s", action, user, extra={"action": action, "user": user})
    elif body.get("type") == "view_submission":
        form = (body.get("view") or {}).get("callback_id")
        user = (body.get("user") or {}).get("id")
        log.info("form %s submitted by %s", form, user, extra={"form": form, "user": user})


def _log_outcome(ctx: BotContext, body: dict[str, Any], since: datetime) -> None:
    """After a lazy listener: the outcome of a remediation decision, or of a digest command."""
    if body.get("command") and str(body.get("text") or "").split()[:1] == ["digest"]:
        channel = str(body.get("channel_id"))
        with ctx.sessions() as session:
            sent = queries.digest_sent_since(session, channel, since)
        if sent is not None:
            log.info("digest #%d sent to %s", sent, channel, extra={"digest": sent})
        return
    action = (body.get("actions") or [{}])[0]
    if action.get("action_id") in ("okeguard.approve", "okeguard.reject"):
        decision = "approve" if action["action_id"] == "okeguard.approve" else "reject"
        request_id = str(action.get("value") or "").partition(":")[0]
        if not request_id.isdigit():
            return
        with ctx.sessions() as session:
            request = session.get(RemediationRequest, int(request_id))
            state = request.state if request is not None else "unknown"
        user = (body.get("user") or {}).get("id")
        log.info(
            "remediation request #%s: %s by %s, now %s",
            request_id,
            decision,
            user,
            state,
            extra={"remediation": int(request_id), "decision": decision, "state": state},
        )


def claim(ctx: BotContext, body: dict[str, Any], part: str = "work") -> bool:
    """Record ``part`` of the delivery of ``body`` as handled; False when it was already.

    One delivery has distinct parts (the work behind the acknowledgement; a write made while
    acknowledging), each claimed once."""
    key = delivery_key(body)
    if key is None:
        return True
    key = f"{part}:{key}"
    try:
        with ctx.sessions.begin() as session:
            session.add(SlackDelivery(key=key[:200], received_at=ctx.now()))
    except IntegrityError:
        log.info("delivery %s was handled before: not processed again", key)
        return False
    return True


def once(listener: Callable[..., None]) -> Callable[..., None]:
    """Decorate a lazy listener so it runs once per delivery, whichever replica got it.

    The listener takes Bolt's ``context`` among its arguments (the bot's context is in it)."""
    if "context" not in inspect.signature(listener).parameters:
        raise TypeError(f"{listener.__name__} must take Bolt's 'context' argument")

    @functools.wraps(listener)  # Bolt reads the listener's argument names through this
    def run(**kwargs: Any) -> None:
        ctx, body = bot_context(kwargs["context"]), kwargs["body"]
        # lazy listeners run in Bolt's thread pool: carry the interaction's request id over
        with request_context(interaction_id(body)):
            try:
                if claim(ctx, body):
                    started = ctx.now()
                    listener(**kwargs)
                    _log_outcome(ctx, body, started)
            except Exception as exc:
                if not database_unreachable(exc):
                    raise
                key = delivery_key(body)
                if key is None or not NOTICES.told_in_acknowledgement(key):
                    tell(ctx, body, exc)

    return run
