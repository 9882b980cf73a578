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

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from okeguard.bot.slack.delivery import delivery_key, interaction_id, log_interaction
from okeguard.bot.slack.outage import NOTICES, answer_database_down, database_unreachable
from okeguard.bot.slack.work import BOLT_KEY
from okeguard.logs import request_context

if TYPE_CHECKING:
    from slack_bolt import App, BoltResponse

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)


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
