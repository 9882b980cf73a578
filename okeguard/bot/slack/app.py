"""The Bolt app: ``/okeguard``, the buttons and modals, once-only delivery, error reporting.

HTTP mode verifies every request's signature and timestamp (Bolt's ``RequestVerification``,
with ``SLACK_SIGNING_SECRET``); Socket Mode needs no inbound exposure at all. A delivery Slack
retries (the same event id, the same click, the same submission) is processed once: its key is
stored in ``slack_deliveries`` before the listener runs, and a second insert fails.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from okeguard.audit.models import SlackDelivery

if TYPE_CHECKING:
    from slack_bolt import App

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


def build_app(
    ctx: BotContext,
    *,
    signing_secret: str | None = None,
    token_verification: bool = True,
) -> App:
    """The Bolt app of the bot, using ``ctx.client`` for every Web API call."""
    from slack_bolt import App, BoltResponse

    from okeguard.bot.slack import actions, commands

    app = App(
        client=ctx.client,
        signing_secret=signing_secret,
        request_verification_enabled=signing_secret is not None,
        token_verification_enabled=token_verification,
        ssl_check_enabled=True,
        process_before_response=False,
    )

    @app.middleware
    def once(body: dict[str, Any], next: Any) -> Any:
        key = delivery_key(body)
        if key is None:
            return next()
        try:
            with ctx.sessions.begin() as session:
                session.add(SlackDelivery(key=key[:200], received_at=ctx.now()))
        except IntegrityError:
            log.info("delivery %s seen before: acknowledged, not processed again", key)
            return BoltResponse(status=200, body="")
        return next()

    @app.error
    def report(error: Exception, body: dict[str, Any]) -> None:
        ctx.metrics.slack_errors.labels("listener").inc()
        log.error(
            "Slack listener failed (%s): %s",
            body.get("type") or body.get("command"),
            type(error).__name__,
        )

    commands.register(app, ctx)
    actions.register(app, ctx)
    return app
