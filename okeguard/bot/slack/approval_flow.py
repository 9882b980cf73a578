"""Remediation requests in Slack: post one for approval (``request_fix_for``), approve or reject
it (``decide_in_slack``, then apply), and show how it ended on its approval messages.

Every rule is in ``okeguard.remediations`` (approvals, apply); here Slack users are authorised
(``people.Authorizer``), the approval messages are tracked (``slack_messages``) and updated.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import update as update_rows

from okeguard.audit import queries
from okeguard.audit.models import RemediationRequest, SlackMessage
from okeguard.bot.slack import blocks
from okeguard.bot.slack.people import actor_of
from okeguard.bot.slack.replies import ephemeral, post, refuse, update, upload
from okeguard.bot.slack.work import plan_live
from okeguard.errors import OkeguardError

if TYPE_CHECKING:
    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)


def may_request(ctx: BotContext, user: str, channel: str, action: str, fingerprint: str) -> bool:
    """Whether ``user`` may ``action`` findings; if not, the refusal is sent and audited."""
    if ctx.authorizer.may_request(user):
        return True
    refuse(
        ctx,
        channel=channel,
        user=user,
        action=action,
        reason=f"you may not {action} findings (slack.requesters)",
        subject=("finding", fingerprint),
    )
    return False


def request_fix_for(ctx: BotContext, fingerprint: str, user: str, channel: str) -> int | None:
    """Plan the finding live, record the request and post it for approval; None if refused."""
    from okeguard.remediations.approvals import request_fix

    if not may_request(ctx, user, channel, "request", fingerprint):
        return None
    try:
        plan, _ = plan_live(ctx, fingerprint)
    except OkeguardError as exc:
        refuse(
            ctx,
            channel=channel,
            user=user,
            action="request",
            reason=str(exc),
            subject=("finding", fingerprint),
        )
        return None
    request = request_fix(ctx.sessions, plan, actor_of(user), ctx.config.remediation)
    target = ctx.config.slack.approvals_channel or ctx.config.slack.channel or channel
    assert request.expires_at is not None
    message = blocks.approval_request(
        request.id,
        plan,
        requester=user,
        expires_at=request.expires_at,
        approvers_hint=ctx.authorizer.describe_approvers(),
    )
    # Recorded before it is posted (ts not known yet): a click that comes back before the post
    # returns is still bound to this channel, and the clicked message is the one updated.
    with ctx.sessions.begin() as session:
        row = SlackMessage(kind="approval", request_id=request.id, channel=target, ts="")
        session.add(row)
        session.flush()
        row_id = row.id
    ts = post(ctx, target, message)
    with ctx.sessions.begin() as session:
        session.execute(update_rows(SlackMessage).where(SlackMessage.id == row_id).values(ts=ts))
    if message.diff_truncated:
        upload(
            ctx,
            target,
            content=plan.diff,
            filename=f"plan-{plan.hash[:12]}.diff",
            title=f"Full diff of plan {plan.hash[:12]}",
            thread_ts=ts,
        )
    if channel and channel != target:
        ephemeral(
            ctx,
            channel,
            user,
            blocks.notice(
                f"Request #{request.id} is waiting for approval in <#{target}>.",
                icon=":hourglass_flowing_sand:",
            ),
        )
    return request.id


def _show_final_state(
    ctx: BotContext, request_id: int, user: str, clicked: tuple[str, str] | None = None
) -> None:
    """After a refusal that ended the request (it expired), say so on its approval messages."""
    from okeguard.remediations.plan import Plan

    with ctx.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        if request is None or request.state not in ("expired", "superseded"):
            return
        state, reason, plan = request.state, request.reason, Plan.from_dict(request.plan)
    for where, ts in _approval_messages(ctx, request_id, clicked):
        update(
            ctx,
            where,
            ts,
            blocks.approval_decided(request_id, plan, state=state, actor=user, reason=reason),
        )


def _posted(ctx: BotContext, request_id: int) -> list[tuple[str, str]]:
    """(channel, ts) of the request's approval messages; ts is "" while it is being posted."""
    with ctx.sessions() as session:
        return queries.approval_messages(session, request_id)


def _approval_messages(
    ctx: BotContext, request_id: int, clicked: tuple[str, str] | None = None
) -> list[tuple[str, str]]:
    """The request's approval messages (channel, ts) as posted, plus the clicked one if its ts
    was not recorded yet (a click faster than the bot's own bookkeeping)."""
    found = [(channel, ts) for channel, ts in _posted(ctx, request_id) if ts]
    if clicked is not None and clicked[1] and clicked not in found:
        found.append(clicked)
    return found


def _binding_problem(ctx: BotContext, request_id: int, clicked: tuple[str, str]) -> str | None:
    """Why a click on (channel, ts) is not a click on request ``request_id``'s approval message
    (None when it is). A message posted but whose ts is not recorded yet binds by channel."""
    channel, ts = clicked
    posted = _posted(ctx, request_id)
    if ts and ((channel, ts) in posted or (channel, "") in posted):
        return None
    return f"this button is not on request {request_id}'s approval message"


def decide_in_slack(
    ctx: BotContext,
    request_id: int,
    user: str,
    channel: str,
    *,
    approve: bool,
    plan_hash: str | None,
    clicked: tuple[str, str] | None = None,
) -> None:
    """Approve (then apply) or reject a request for a Slack user, updating its messages.

    ``clicked`` is the (channel, ts) of the message whose button was pressed: it must be the
    request's approval message, and it is updated even when the bot has not recorded it yet.
    """
    from okeguard.remediations.approvals import Refused, decide
    from okeguard.remediations.plan import Plan
    from okeguard.remediations.workflow import apply_request

    actor = actor_of(user)

    def authorised(who: str, request: RemediationRequest) -> bool | str:
        # The scopes of the request's cluster and remediation apply; the same person under
        # another name (cli.approvers[].slack_user) counts as the requester. ``decide`` itself
        # refuses the exact requester, with its own message.
        try:
            problem = ctx.authorizer.approval_refusal(
                user,
                cluster=request.plan.get("cluster"),
                remediation=request.plan.get("remediation"),
                requester=request.requester if approve and request.requester != who else None,
                config=ctx.config,
            )
        except Exception as exc:  # Slack could not tell us: fail closed
            log.warning("could not read the approvers' groups: %s", type(exc).__name__)
            return False
        return problem or True

    what = "approve" if approve else "reject"
    if clicked is not None:
        problem = _binding_problem(ctx, request_id, clicked)
        if problem:
            refuse(
                ctx,
                channel=channel,
                user=user,
                action=what,
                reason=f"request {request_id}: {problem}",
                subject=("remediation_request", str(request_id)),
            )
            return
    try:
        request = decide(
            ctx.sessions,
            request_id,
            actor,
            ctx.config.remediation,
            approve=approve,
            plan_hash=plan_hash,
            authorised=authorised,
            reason=None if approve else "rejected in Slack",
        )
    except Refused as exc:
        refuse(
            ctx,
            channel=channel,
            user=user,
            action="approve" if approve else "reject",
            reason=str(exc),
            audited=True,
        )
        _show_final_state(ctx, request_id, user, clicked)
        return
    plan = Plan.from_dict(request.plan)
    messages = _approval_messages(ctx, request_id, clicked)
    state = "approved" if approve else "rejected"
    for where, ts in messages:
        update(
            ctx,
            where,
            ts,
            blocks.approval_decided(
                request_id, plan, state=state, actor=user, reason=request.reason
            ),
        )
    if not approve:
        ctx.metrics.remediations.labels("rejected").inc()
        return
    try:
        result = apply_request(ctx.sessions, request_id, actor, ctx.live_for(plan.cluster))
        state, reason = result.state, result.reason
    except Refused as exc:
        with ctx.sessions() as session:
            current = session.get(RemediationRequest, request_id)
            state = current.state if current is not None else "failed"
        reason = str(exc)
    except OkeguardError as exc:
        state, reason = "failed", str(exc)
    ctx.metrics.remediations.labels(state).inc()
    show_outcome(ctx, request_id, plan, state, reason, actor=user, messages=messages)


def show_outcome(
    ctx: BotContext,
    request_id: int,
    plan: Any,
    state: str,
    reason: str | None,
    *,
    actor: str,
    messages: list[tuple[str, str]] | None = None,
) -> None:
    """Say how a run ended: the result with its steps in each approval message's thread, and
    the message itself updated to the final state."""
    from okeguard.remediations.workflow import request_events

    if messages is None:
        messages = _approval_messages(ctx, request_id)
    with ctx.sessions() as session:
        events = [e["action"] for e in request_events(session, request_id)]
    steps = [e.removeprefix("remediation.") for e in events if ".step." in e or "verif" in e]
    for where, ts in messages:
        post(ctx, where, blocks.apply_result(state, reason, request_id, steps), thread_ts=ts)
        update(
            ctx,
            where,
            ts,
            blocks.approval_decided(request_id, plan, state=state, actor=actor, reason=reason),
        )


def show_reconciled(ctx: BotContext, results: list[Any]) -> None:
    """After start-up reconciliation, tell each settled request's approval thread what happened
    (``results``: ``workflow.ApplyResult``; requests still owned by a live run are skipped)."""
    from okeguard.remediations.plan import Plan

    for result in results:
        if result.state in ("applying", "pending-approval", "approved"):
            continue
        with ctx.sessions() as session:
            request = session.get(RemediationRequest, result.request_id)
            if request is None:
                continue
            plan = Plan.from_dict(request.plan)
        try:
            show_outcome(
                ctx, result.request_id, plan, result.state, result.reason, actor="okeguard"
            )
        except Exception as exc:  # Slack is away: the audit trail has it; say so in the log
            log.warning(
                "could not report request %s in Slack: %s", result.request_id, type(exc).__name__
            )
