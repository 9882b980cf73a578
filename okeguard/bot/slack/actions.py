"""Buttons and modals: preview, request, approve, reject, snooze, accept risk.

Each listener acknowledges at once (Bolt's ``ack``) and does its work in a lazy listener. Every
rule is in ``okeguard.remediations`` (approvals, apply) and ``okeguard.audit`` (statuses,
exceptions); here Slack users are authorised (``people.Authorizer``) and answered.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

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
        try:
            blocks.parse_accept_risk(view["state"]["values"], today=ctx.now().date())
        except blocks.AcceptRiskError as exc:
            ack(response_action="errors", errors={exc.field: exc.problem})
            return
        ack()

    def accept_submitted(body: dict[str, Any], view: dict[str, Any]) -> None:
        from okeguard.audit.stores import add_exception, set_finding_status

        user = body["user"]["id"]
        fingerprint, _, channel = str(view["private_metadata"]).partition("|")
        reason, expires = blocks.parse_accept_risk(view["state"]["values"], today=ctx.now().date())
        until = datetime.combine(expires, time(0), tzinfo=UTC)
        record = finding_record(ctx, fingerprint)
        actor = actor_of(user)
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

    def approve(body: dict[str, Any]) -> None:
        user, channel = _where(body)
        request_id, _, plan_hash = _value(body).partition(":")
        decide_in_slack(ctx, int(request_id), user, channel, approve=True, plan_hash=plan_hash)

    def reject(body: dict[str, Any]) -> None:
        user, channel = _where(body)
        decide_in_slack(ctx, int(_value(body)), user, channel, approve=False, plan_hash=None)

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
    ts = post(ctx, target, message)
    with ctx.sessions.begin() as session:
        session.add(SlackMessage(kind="approval", request_id=request.id, channel=target, ts=ts))
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


def _approval_messages(ctx: BotContext, request_id: int) -> list[tuple[str, str]]:
    with ctx.sessions() as session:
        rows = session.scalars(
            select(SlackMessage).where(
                SlackMessage.request_id == request_id, SlackMessage.kind == "approval"
            )
        ).all()
        return [(r.channel, r.ts) for r in rows]


def decide_in_slack(
    ctx: BotContext,
    request_id: int,
    user: str,
    channel: str,
    *,
    approve: bool,
    plan_hash: str | None,
) -> None:
    """Approve (then apply) or reject a request for a Slack user, updating its messages."""
    from okeguard.remediations.approvals import Refused, decide
    from okeguard.remediations.plan import Plan
    from okeguard.remediations.workflow import apply_request, request_events

    actor = actor_of(user)

    def authorised(who: str, request: RemediationRequest) -> bool:
        try:
            return ctx.authorizer.may_approve(user)
        except Exception as exc:  # Slack could not tell us: fail closed
            log.warning("could not read the approvers' groups: %s", type(exc).__name__)
            return False

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
    messages = _approval_messages(ctx, request_id)
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
    with ctx.sessions() as session:
        events = [e["action"] for e in request_events(session, request_id)]
    steps = [e.removeprefix("remediation.") for e in events if ".step." in e or "verif" in e]
    for where, ts in messages:
        post(ctx, where, blocks.apply_result(state, reason, request_id, steps), thread_ts=ts)
        update(
            ctx,
            where,
            ts,
            blocks.approval_decided(request_id, plan, state=state, actor=user, reason=reason),
        )
