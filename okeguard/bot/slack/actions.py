"""Buttons and modals: preview, request, approve, reject, snooze, accept risk.

Each listener acknowledges at once (Bolt's ``ack``) and does its work in a lazy listener. Every
rule is in ``okeguard.remediations`` (approvals, apply) and ``okeguard.audit`` (statuses,
exceptions); here Slack users are authorised (``people.Authorizer``) and answered.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update as update_rows

from okeguard.audit import queries
from okeguard.audit.models import RemediationRequest, SlackMessage
from okeguard.bot.slack import blocks
from okeguard.bot.slack.app import once
from okeguard.bot.slack.people import actor_of
from okeguard.bot.slack.replies import ephemeral, post, refuse, update, upload
from okeguard.bot.slack.work import BotError, finding_record, plan_live
from okeguard.errors import OkeguardError

if TYPE_CHECKING:
    from slack_bolt import App

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)
SNOOZE = timedelta(days=7)


def _ack(ack: Any) -> None:
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


def register(app: App, ctx: BotContext) -> None:
    """Wire the buttons and modals of ``blocks`` to their handlers."""

    def preview(body: dict[str, Any], client: Any) -> None:
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

    def request(body: dict[str, Any]) -> None:
        user, channel = _where(body)
        request_fix_for(ctx, _value(body), user, channel)

    def snooze(body: dict[str, Any]) -> None:
        from okeguard.audit.stores import set_finding_status

        user, channel = _where(body)
        fingerprint = _value(body)
        if not _requester(ctx, user, channel, "snooze", fingerprint):
            return
        until = ctx.now() + SNOOZE
        with ctx.sessions.begin() as session:
            found = set_finding_status(
                session, fingerprint, "snoozed", actor_of(user), "snoozed in Slack", until=until
            )
        if not found:
            refuse(
                ctx,
                channel=channel,
                user=user,
                action="snooze",
                reason=f"no recorded finding {fingerprint[:12]}",
            )
            return
        ephemeral(
            ctx,
            channel,
            user,
            blocks.refusal(f":zzz: Snoozed {fingerprint[:12]} until {until:%Y-%m-%d %H:%M} UTC."),
        )

    def accept(body: dict[str, Any], client: Any) -> None:
        user, channel = _where(body)
        fingerprint = _value(body)
        if not _requester(ctx, user, channel, "accept-risk", fingerprint):
            return
        try:
            record = finding_record(ctx, fingerprint)
        except BotError as exc:
            refuse(ctx, channel=channel, user=user, action="accept-risk", reason=str(exc))
            return
        label = f"{record.check_id} on {record.resource_kind} {record.resource_namespace or ''}/{record.resource_name}"
        view = blocks.accept_risk_modal(
            f"{record.fingerprint}|{channel}", label, today=ctx.now().date()
        )
        client.views_open(trigger_id=body["trigger_id"], view=view.to_dict())

    def accept_submitted_ack(ack: Any, view: dict[str, Any]) -> None:
        from okeguard.exception_governance import latest_expiry

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

    def accept_submitted(body: dict[str, Any], view: dict[str, Any]) -> None:
        from okeguard.audit.stores import add_exception, set_finding_status
        from okeguard.exception_governance import expiry_problem
        from okeguard.exception_governance import refuse as refuse_exception

        user = body["user"]["id"]
        fingerprint, _, channel = str(view["private_metadata"]).partition("|")
        try:
            reason, expires = blocks.parse_accept_risk(
                view["state"]["values"], today=ctx.now().date()
            )
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
            ephemeral(
                ctx,
                channel,
                user,
                blocks.refusal(
                    f":white_check_mark: Risk accepted until {expires.isoformat()} (exception #{rule_id})."
                ),
            )

    def decision(body: dict[str, Any], *, approve: bool) -> None:
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

    def approve(body: dict[str, Any]) -> None:
        decision(body, approve=True)

    def reject(body: dict[str, Any]) -> None:
        decision(body, approve=False)

    lazy = once(ctx)
    app.action(blocks.ACTION_PREVIEW)(ack=_ack, lazy=[lazy(preview)])
    app.action(blocks.ACTION_REQUEST)(ack=_ack, lazy=[lazy(request)])
    app.action(blocks.ACTION_SNOOZE)(ack=_ack, lazy=[lazy(snooze)])
    app.action(blocks.ACTION_ACCEPT)(ack=_ack, lazy=[lazy(accept)])
    app.action(blocks.ACTION_APPROVE)(ack=_ack, lazy=[lazy(approve)])
    app.action(blocks.ACTION_REJECT)(ack=_ack, lazy=[lazy(reject)])
    app.view(blocks.CALLBACK_ACCEPT_RISK)(ack=accept_submitted_ack, lazy=[lazy(accept_submitted)])


def _requester(ctx: BotContext, user: str, channel: str, action: str, fingerprint: str) -> bool:
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

    if not _requester(ctx, user, channel, "request", fingerprint):
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
            blocks.refusal(f"Request #{request.id} is waiting for approval in <#{target}>."),
        )
    return request.id


def _show_final_state(ctx: BotContext, request_id: int, user: str) -> None:
    """After a refusal that ended the request (it expired), say so on its approval messages."""
    from okeguard.remediations.plan import Plan

    with ctx.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        if request is None or request.state not in ("expired", "superseded"):
            return
        state, reason, plan = request.state, request.reason, Plan.from_dict(request.plan)
    for where, ts in _approval_messages(ctx, request_id):
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
        _show_final_state(ctx, request_id, user)
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
