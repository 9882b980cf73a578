"""Posting, updating and refusing, with the pacing, the metrics and the audit trail applied
the same way from every listener."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from okeguard.audit.chain import append_event

if TYPE_CHECKING:
    from okeguard.bot.slack.blocks import Message
    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)


def post(ctx: BotContext, channel: str, message: Message, *, thread_ts: str | None = None) -> str:
    """Post to a channel (paced); returns the message ts."""
    ctx.pacer.wait(channel)
    try:
        response = ctx.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, **message.payload()
        )
    except Exception:
        ctx.metrics.slack_errors.labels("chat.postMessage").inc()
        raise
    return str(response["ts"])


def update(ctx: BotContext, channel: str, ts: str, message: Message) -> None:
    """Replace a posted message (``chat.update``); a failure is counted and logged, not raised:
    the action it reports has happened and is in the audit trail."""
    try:
        ctx.client.chat_update(channel=channel, ts=ts, **message.payload())
    except Exception as exc:
        ctx.metrics.slack_errors.labels("chat.update").inc()
        log.warning("chat.update of %s/%s failed: %s", channel, ts, type(exc).__name__)


def ephemeral(ctx: BotContext, channel: str, user: str, message: Message) -> None:
    """Tell one user something only they see."""
    try:
        ctx.client.chat_postEphemeral(channel=channel, user=user, **message.payload())
    except Exception as exc:
        ctx.metrics.slack_errors.labels("chat.postEphemeral").inc()
        log.warning("chat.postEphemeral to %s failed: %s", user, type(exc).__name__)


def refuse(
    ctx: BotContext,
    *,
    channel: str,
    user: str,
    action: str,
    reason: str,
    subject: tuple[str, str | int] | None = None,
    audited: bool = False,
) -> None:
    """Refuse ``action`` to ``user``: an ephemeral message, a metric, and (unless the service
    function already wrote one) a ``slack.refused`` audit event."""
    from okeguard.bot.slack.blocks import refusal
    from okeguard.bot.slack.people import actor_of

    ctx.metrics.refusals.labels(action).inc()
    if not audited:
        with ctx.sessions.begin() as session:
            append_event(
                session,
                actor_of(user),
                "slack.refused",
                subject or ("slack_user", user),
                {"action": action, "reason": reason},
            )
    ephemeral(ctx, channel, user, refusal(reason))


def upload(
    ctx: BotContext,
    channel: str,
    *,
    content: bytes | str,
    filename: str,
    title: str,
    comment: str | None = None,
    thread_ts: str | None = None,
) -> None:
    """Upload a file (a long diff, the digest chart) with ``files_upload_v2``."""
    ctx.pacer.wait(channel)
    try:
        ctx.client.files_upload_v2(
            channel=channel,
            content=content,
            filename=filename,
            title=title,
            initial_comment=comment,
            thread_ts=thread_ts,
        )
    except Exception:
        ctx.metrics.slack_errors.labels("files.upload").inc()
        raise
