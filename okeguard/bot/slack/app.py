"""The Bolt app: ``/okeguard``, the buttons and modals, once-only delivery, error reporting.

HTTP mode verifies every request's signature and timestamp (Bolt's ``RequestVerification``,
with ``SLACK_SIGNING_SECRET``); Socket Mode needs no inbound exposure at all. A delivery Slack
retries (the same event id, the same click, the same submission) is processed once. Nothing on
the acknowledgement path writes to the database (Slack's 3 s are for the answer): a replica
remembers the keys it saw, and the work behind the acknowledgement first claims the key in
``slack_deliveries``, where a second claim (from a retry that reached another replica) fails.

When the database cannot be reached, whoever clicked or typed is told so, privately, once
(``outage.py``), and the log gets one line, not a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from okeguard.audit import queries
from okeguard.audit.models import RemediationRequest, SlackDelivery
from okeguard.bot.slack.outage import NOTICES, answer_database_down, database_unreachable, tell
from okeguard.bot.slack.work import BOLT_KEY, bot_context
from okeguard.logs import new_request_id, request_context

if TYPE_CHECKING:
    from slack_bolt import App, BoltResponse

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


class RecentKeys:
    """The delivery keys this process saw lately (bounded; thread-safe)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys[key] = None
            if len(self._keys) > self.size:
                self._keys.popitem(last=False)
            return True


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


def build_app(
    ctx: BotContext,
    *,
    signing_secret: str | None = None,
    token_verification: bool = True,
) -> App:
    """The Bolt app of the bot, using ``ctx.client`` for every Web API call."""
    from slack_bolt import App, BoltContext, BoltRequest, BoltResponse

    from okeguard.bot.slack import actions, commands

    class AcknowledgingApp(App):
        def dispatch(self, req: BoltRequest) -> BoltResponse:
            # returns once the acknowledgement is decided (Bolt's next() only sets a flag, so a
            # middleware cannot see that): the work behind it may now ask what it said
            try:
                return super().dispatch(req)
            finally:
                key = delivery_key(req.body) if isinstance(req.body, dict) else None
                if key is not None:
                    NOTICES.acknowledged(key)

    app = AcknowledgingApp(
        client=ctx.client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=token_verification,
        ssl_check_enabled=True,
        process_before_response=False,
    )

    recent = RecentKeys()

    @app.middleware
    def attach(context: BoltContext, next: Any) -> Any:
        context[BOLT_KEY] = ctx  # every listener finds the bot's context here (``bot_context``)
        return next()

    @app.middleware
    def seen_here(body: dict[str, Any], next: Any) -> Any:
        with request_context(interaction_id(body)):
            key = delivery_key(body)
            if key is not None and not recent.first_time(key):
                log.info("delivery %s seen before: acknowledged, not processed again", key)
                return BoltResponse(status=200, body="")
            log_interaction(body)
            return next()

    @app.error
    def report(
        error: Exception, body: dict[str, Any], response: BoltResponse | None
    ) -> BoltResponse | None:
        if database_unreachable(error):
            return answer_database_down(ctx, body, delivery_key(body), error, response)
        ctx.metrics.slack_errors.labels("listener").inc()
        log.error(
            "Slack listener failed (%s): %s",
            body.get("type") or body.get("command"),
            type(error).__name__,
        )
        return None

    commands.register(app)
    actions.register(app)
    return app
