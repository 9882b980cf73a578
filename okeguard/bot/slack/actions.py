"""Buttons and modals: preview, request, approve, reject, snooze, accept risk.

Each listener is acknowledged at once (Bolt's ``ack``) and does its work in a lazy listener,
which finds the bot's context in Bolt's ``context`` (``work.bot_context``). Every rule is in
``okeguard.remediations`` (approvals, apply) and ``okeguard.audit`` (statuses, exceptions);
here Slack users are authorised (``people.Authorizer``) and answered. Requests for approval,
decisions and their messages are in ``approval_flow``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from okeguard.bot.slack import blocks
from okeguard.bot.slack.approval_flow import (
    decide_in_slack,
    may_request,
    request_fix_for,
    show_reconciled,
)
from okeguard.bot.slack.delivery import once
from okeguard.bot.slack.people import actor_of
from okeguard.bot.slack.replies import ephemeral, refuse, upload
from okeguard.bot.slack.work import BotError, bot_context, finding_record, plan_live
from okeguard.errors import OkeguardError

if TYPE_CHECKING:
    from slack_bolt import Ack, App, BoltContext
    from slack_sdk import WebClient

    from okeguard.bot.slack.work import BotContext

__all__ = [
    "decide_in_slack",
    "parse_decision",
    "register",
    "request_fix_for",
    "show_reconciled",  # okeguard serve reports start-up reconciliation with it
]

log = logging.getLogger(__name__)
SNOOZE = timedelta(days=7)


def _ack(ack: Ack) -> None:
    ack()


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """(user id, channel id) of an interaction."""
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )
    return user, str(channel)


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0]["value"])


def _clicked(body: dict[str, Any]) -> tuple[str, str]:
    """(channel, ts) of the message whose button was clicked ("" when not a message)."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts") or ""
    return str(channel), str(ts)


def parse_decision(value: str, *, approve: bool) -> tuple[int, str | None]:
    """(request id, plan hash) from an Approve (``ID:HASH``) or Reject (``ID``) button value.

    Raises ValueError with a one-line reason for anything else. The hash itself is checked
    (all 64 hex digits, the request's) by ``approvals.decide``.
    """
    head, sep, plan_hash = value.partition(":")
    if not head.isdigit() or len(head) > 12 or (approve and not sep) or (not approve and sep):
        raise ValueError(f"the button value '{value[:80]}' is not a request of this bot")
    return int(head), (plan_hash if approve else None)


def preview(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Preview fix: a modal, opened at once (loading) and then showing the plan or the reason."""
    ctx = bot_context(context)
    _, channel = _where(body)
    fingerprint = _value(body)
    opened = client.views_open(
        trigger_id=body["trigger_id"], view=blocks.loading_modal("Planning the fix…").to_dict()
    )
    view_id = opened["view"]["id"]
    try:
        plan, _ = plan_live(ctx, fingerprint)
    except OkeguardError as exc:
        client.views_update(view_id=view_id, view=blocks.error_modal(str(exc)).to_dict())
        return
    view, truncated = blocks.plan_preview_modal(plan, fingerprint=fingerprint)
    client.views_update(view_id=view_id, view=view.to_dict())
    if truncated and channel:
        upload(
            ctx,
            channel,
            content=plan.diff,
            filename=f"plan-{plan.hash[:12]}.diff",
            title=f"Full diff of plan {plan.hash[:12]}",
        )


def request(body: dict[str, Any], context: BoltContext) -> None:
    """Request fix: plan it live and post the request for approval."""
    user, channel = _where(body)
    request_fix_for(bot_context(context), _value(body), user, channel)


def snooze(body: dict[str, Any], context: BoltContext) -> None:
    """Snooze: the finding is left out of posts for :data:`SNOOZE`."""
    from okeguard.audit.stores import set_finding_status

    ctx = bot_context(context)
    user, channel = _where(body)
    fingerprint = _value(body)
    if not may_request(ctx, user, channel, "snooze", fingerprint):
        return
    until = ctx.now() + SNOOZE
    with ctx.sessions.begin() as session:
        found = set_finding_status(
            session, fingerprint, "snoozed", actor_of(user), "snoozed in Slack", until=until
        )
    if not found:
        reason = f"no recorded finding {fingerprint[:12]}"
        refuse(ctx, channel=channel, user=user, action="snooze", reason=reason)
        return
    said = f"Snoozed {fingerprint[:12]} until {until:%Y-%m-%d %H:%M} UTC."
    ephemeral(ctx, channel, user, blocks.notice(said, icon=":zzz:"))


def accept(body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Accept risk: the modal asking why and until when."""
    ctx = bot_context(context)
    user, channel = _where(body)
    fingerprint = _value(body)
    if not may_request(ctx, user, channel, "accept-risk", fingerprint):
        return
    try:
        record = finding_record(ctx, fingerprint)
    except BotError as exc:
        refuse(ctx, channel=channel, user=user, action="accept-risk", reason=str(exc))
        return
    where = f"{record.resource_namespace or ''}/{record.resource_name}"
    label = f"{record.check_id} on {record.resource_kind} {where}"
    view = blocks.accept_risk_modal(
        f"{record.fingerprint}|{channel}", label, today=ctx.now().date()
    )
    client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())


def accept_submitted_ack(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
    """The accept-risk modal submitted: its problems shown in the modal, which stays open."""
    from okeguard.exception_governance import latest_expiry

    ctx = bot_context(context)
    try:
        _, expires = blocks.parse_accept_risk(view["state"]["values"], today=ctx.now().date())
    except blocks.AcceptRiskError as exc:
        ack(response_action="errors", errors={exc.field: exc.problem})
        return
    latest = latest_expiry(ctx.config.exceptions, ctx.now()).date()
    if expires > latest:  # refused (and audited) by accept_submitted too
        days = ctx.config.exceptions.max_days
        problem = f"at most {days} days (exceptions.max_days): choose a day by {latest}"
        ack(response_action="errors", errors={"expires": problem})
        return
    ack()


def accept_submitted(body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
    """The accepted risk recorded: an exception on the one resource, the finding accepted."""
    from okeguard.audit.stores import add_exception, set_finding_status
    from okeguard.exception_governance import expiry_problem
    from okeguard.exception_governance import refuse as refuse_exception

    ctx = bot_context(context)
    user = body["user"]["id"]
    fingerprint, _, channel = str(view["private_metadata"]).partition("|")
    try:
        reason, expires = blocks.parse_accept_risk(view["state"]["values"], today=ctx.now().date())
    except blocks.AcceptRiskError:
        return  # the modal showed the problem (accept_submitted_ack) and stays open
    until = datetime.combine(expires, time(0), tzinfo=UTC)
    actor = actor_of(user)
    # Accepting a risk is an exception on one resource: the longest-expiry rule applies.
    problem = expiry_problem(until, ctx.config.exceptions, ctx.now())
    if problem:
        refuse_exception(ctx.sessions, actor, "accept-risk", problem)
        ctx.metrics.refusals.labels("accept-risk").inc()
        if channel:
            ephemeral(ctx, channel, user, blocks.refusal(problem))
        return
    record = finding_record(ctx, fingerprint)
    with ctx.sessions.begin() as session:
        rule = add_exception(
            session,
            check_id=record.check_id,
            reason=reason,
            author=actor,
            cluster=record.cluster,
            kind=record.resource_kind,
            namespace=record.resource_namespace,
            name=record.resource_name,
            expires_at=until,
        )
        set_finding_status(session, fingerprint, "accepted-risk", actor, reason, until=until)
        rule_id = rule.id
    if channel:
        said = f"Risk accepted until {expires.isoformat()} (exception #{rule_id})."
        ephemeral(ctx, channel, user, blocks.notice(said))


def _decision(ctx: BotContext, body: dict[str, Any], *, approve: bool) -> None:
    user, channel = _where(body)
    what = "approve" if approve else "reject"
    try:
        request_id, plan_hash = parse_decision(_value(body), approve=approve)
    except ValueError as exc:
        refuse(ctx, channel=channel, user=user, action=what, reason=str(exc))
        return
    decide_in_slack(
        ctx,
        request_id,
        user,
        channel,
        approve=approve,
        plan_hash=plan_hash,
        clicked=_clicked(body),
    )


def approve(body: dict[str, Any], context: BoltContext) -> None:
    """Approve (``ID:HASH``): decided, then applied."""
    _decision(bot_context(context), body, approve=True)


def reject(body: dict[str, Any], context: BoltContext) -> None:
    """Reject (``ID``)."""
    _decision(bot_context(context), body, approve=False)


BUTTONS = (
    (blocks.ACTION_PREVIEW, preview),
    (blocks.ACTION_REQUEST, request),
    (blocks.ACTION_SNOOZE, snooze),
    (blocks.ACTION_ACCEPT, accept),
    (blocks.ACTION_APPROVE, approve),
    (blocks.ACTION_REJECT, reject),
)


def register(app: App) -> None:
    """Wire the buttons and modals of ``blocks`` to their listeners."""
    for action_id, listener in BUTTONS:
        app.action(action_id)(ack=_ack, lazy=[once(listener)])
    app.view(blocks.CALLBACK_ACCEPT_RISK)(ack=accept_submitted_ack, lazy=[once(accept_submitted)])
