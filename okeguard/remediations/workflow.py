"""The remediation workflow: request, approve, apply, roll back, reconcile.

The command line and the Slack bot call these functions; they hold every rule:

- a request is a plan plus its hash, waiting for approval until it expires;
- an approval names the plan hash the approver saw; a requester cannot approve their own request
  (unless the configuration allows it for that remediation); Approve and Reject move the request
  by compare-and-set, so two clicks act once;
- applying re-reads the live cluster, re-derives the finding, re-plans and compares the hash with
  the approved one: any difference supersedes the request and nothing is written;
- every refusal is audited (``remediation.refused``), as is every step of a run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import AuditEvent, RemediationRequest, RequestState
from okeguard.audit.stores import create_request, transition
from okeguard.audit.types import utcnow
from okeguard.config import RemediationConfig
from okeguard.errors import OkeguardError
from okeguard.remediations.engine import (
    Backends,
    Outcome,
    all_in_effect,
    execute_plan,
    revert_steps,
    steps_from_events,
    verify_steps,
)
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan, short_hash
from okeguard.remediations.planners import load_actions, plan_finding

S = RequestState
SUBJECT = "remediation_request"


class Refused(OkeguardError):
    """The workflow refused an action (self-approval, expired, changed target…); audited."""


@dataclass
class ApplyResult:
    request_id: int
    state: str
    reason: str | None
    plan_hash: str


def _refuse(
    sessions: sessionmaker[Session], request_id: int, actor: str, what: str, reason: str
) -> Refused:
    with sessions.begin() as session:
        append_event(
            session,
            actor,
            "remediation.refused",
            (SUBJECT, request_id),
            {"attempted": what, "reason": reason},
        )
    return Refused(f"request {request_id}: {reason}")


def _load(session: Session, request_id: int) -> RemediationRequest:
    request = session.get(RemediationRequest, request_id)
    if request is None:
        raise Refused(f"no remediation request {request_id} (see `okeguard remediations list`)")
    return request


def request_fix(
    sessions: sessionmaker[Session],
    plan: Plan,
    requester: str,
    settings: RemediationConfig,
    *,
    now: datetime | None = None,
) -> RemediationRequest:
    """Record a request for ``plan`` and put it up for approval (expiring after the TTL)."""
    now = now or utcnow()
    expires = now + timedelta(hours=settings.approval_ttl_hours)
    with sessions.begin() as session:
        request = create_request(
            session,
            plan=plan.to_dict(),
            requester=requester,
            finding_fingerprint=plan.finding,
            expires_at=expires,
        )
        transition(session, request.id, S.PROPOSED, S.PENDING_APPROVAL, requester)
        session.flush()
        session.refresh(request)
        session.expunge(request)
    return request


def _expired(request: RemediationRequest, now: datetime) -> bool:
    return request.expires_at is not None and request.expires_at <= now


def decide(
    sessions: sessionmaker[Session],
    request_id: int,
    approver: str,
    settings: RemediationConfig,
    *,
    approve: bool,
    plan_hash: str | None = None,
    reason: str | None = None,
    authorised: Callable[[str, RemediationRequest], bool] | None = None,
    self_approval: bool = False,
    now: datetime | None = None,
) -> RemediationRequest:
    """Approve or reject a pending request, by compare-and-set. Raises :class:`Refused`.

    ``self_approval`` is for ``okeguard fix --apply`` with ``cli_requires_approval`` off, where
    the OS user applying is, knowingly and on record, their own approver.
    """
    now = now or utcnow()
    what = "approve" if approve else "reject"
    with sessions.begin() as session:
        request = _load(session, request_id)
        state, requester = request.state, request.requester
        remediation = str(request.plan.get("remediation"))
        stored_hash = request.plan_hash
        expired = _expired(request, now)
        allowed = authorised is None or authorised(approver, request)
    if state != S.PENDING_APPROVAL.value:
        raise _refuse(sessions, request_id, approver, what, f"it is {state}, not pending approval")
    if expired:
        with sessions.begin() as session:
            transition(
                session,
                request_id,
                S.PENDING_APPROVAL,
                S.EXPIRED,
                approver,
                reason="approval window passed",
            )
        raise _refuse(sessions, request_id, approver, what, "it expired before it was approved")
    if not allowed:
        raise _refuse(
            sessions, request_id, approver, what, f"{approver} may not approve remediations"
        )
    own = approver == requester and not self_approval
    if approve and own and remediation not in settings.allow_self_approval:
        raise _refuse(
            sessions, request_id, approver, what, "a requester cannot approve their own request"
        )
    if approve and plan_hash is not None and not stored_hash.startswith(plan_hash.lower()):
        raise _refuse(
            sessions,
            request_id,
            approver,
            what,
            f"the plan hash {plan_hash} is not this request's ({short_hash(stored_hash)})",
        )
    new = S.APPROVED if approve else S.REJECTED
    with sessions.begin() as session:
        won = transition(
            session,
            request_id,
            S.PENDING_APPROVAL,
            new,
            approver,
            approver=approver,
            decided_at=now,
            reason=reason,
        )
    if not won:
        raise _refuse(sessions, request_id, approver, what, "someone else decided it first")
    with sessions() as session:
        request = _load(session, request_id)
        session.expunge(request)
    return request


def approved_request_for(sessions: sessionmaker[Session], plan: Plan) -> int | None:
    """The newest approved, unexpired request whose plan hash is ``plan``'s, if any."""
    with sessions() as session:
        found = session.scalars(
            select(RemediationRequest.id)
            .where(
                RemediationRequest.plan_hash == plan.hash,
                RemediationRequest.state == S.APPROVED.value,
                RemediationRequest.expires_at > utcnow(),
            )
            .order_by(RemediationRequest.id.desc())
        ).first()
    return found


def _emitter(
    sessions: sessionmaker[Session], actor: str, request_id: int
) -> Callable[[str, Mapping[str, Any]], None]:
    def emit(action: str, payload: Mapping[str, Any]) -> None:
        with sessions.begin() as session:
            append_event(session, actor, action, (SUBJECT, request_id), payload)

    return emit


def replan(live: LiveCluster, plan: Plan) -> Plan:
    """The plan the same finding gets from the cluster's live state now (PlanError if none)."""
    from okeguard.remediations.plan import PlanError

    inventory = live.read()
    for finding in live.findings(inventory, (plan.check_id,)):
        if finding.fingerprint == plan.finding:
            return plan_finding(finding, inventory, live.config.remediation, plan.variant)
    raise PlanError(
        f"the finding {short_hash(plan.finding)} ({plan.check_id}) is no longer present"
    )


def apply_request(
    sessions: sessionmaker[Session],
    request_id: int,
    actor: str,
    live: LiveCluster,
    *,
    backends: Backends | None = None,
    crash_after: int | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Apply an approved request exactly as approved, verify it, roll back on failure."""
    from okeguard.remediations.plan import PlanError

    now = now or utcnow()
    with sessions() as session:
        request = _load(session, request_id)
        state, approved_hash, stored = request.state, request.plan_hash, dict(request.plan)
        expired = _expired(request, now)
    if state != S.APPROVED.value:
        raise _refuse(sessions, request_id, actor, "apply", f"it is {state}, not approved")
    if expired:
        with sessions.begin() as session:
            transition(
                session,
                request_id,
                S.APPROVED,
                S.EXPIRED,
                actor,
                reason="approval expired before apply",
            )
        raise _refuse(sessions, request_id, actor, "apply", "its approval expired")
    approved = Plan.from_dict(stored)
    load_actions(approved)
    try:
        fresh = replan(live, approved)
    except PlanError as exc:
        fresh, why = None, str(exc)
    with sessions.begin() as session:
        append_event(
            session,
            actor,
            "remediation.replanned",
            (SUBJECT, request_id),
            {
                "approved": approved_hash,
                "live": fresh.hash if fresh is not None else None,
                "matches": fresh is not None and fresh.hash == approved_hash,
            },
        )
    if fresh is None or fresh.hash != approved_hash:
        if fresh is not None:
            why = (
                f"the target changed since approval: the plan is now {short_hash(fresh.hash)}, "
                f"{short_hash(approved_hash)} was approved; request the fix again"
            )
        with sessions.begin() as session:
            transition(session, request_id, S.APPROVED, S.SUPERSEDED, actor, reason=why)
        raise _refuse(sessions, request_id, actor, "apply", why)
    with sessions.begin() as session:
        won = transition(session, request_id, S.APPROVED, S.APPLYING, actor)
    if not won:
        raise _refuse(sessions, request_id, actor, "apply", "it is already being applied")
    backends = backends or live.backends()
    backends.request_id, backends.plan_hash = request_id, approved_hash
    outcome = execute_plan(
        approved, backends, _emitter(sessions, actor, request_id), crash_after=crash_after
    )
    _finish(sessions, request_id, actor, S.APPLYING, outcome)
    return ApplyResult(request_id, outcome.state, outcome.reason, approved_hash)


def _finish(
    sessions: sessionmaker[Session],
    request_id: int,
    actor: str,
    expected: RequestState,
    outcome: Outcome,
) -> None:
    fields: dict[str, Any] = {}
    if outcome.reason:
        fields["reason"] = outcome.reason
    if outcome.state == S.APPLIED.value:
        fields["applied_at"] = utcnow()
    with sessions.begin() as session:
        transition(session, request_id, expected, RequestState(outcome.state), actor, **fields)


def request_events(session: Session, request_id: int) -> list[dict[str, Any]]:
    """The audit events of a request, oldest first (``action`` and parsed ``payload``)."""
    rows = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.subject_type == SUBJECT, AuditEvent.subject_id == str(request_id))
        .order_by(AuditEvent.id)
    )
    return [
        {"action": e.action, "payload": json.loads(e.payload), "actor": e.actor, "at": e.at}
        for e in rows
    ]


def rollback_request(
    sessions: sessionmaker[Session],
    request_id: int,
    actor: str,
    live: LiveCluster,
    *,
    backends: Backends | None = None,
) -> ApplyResult:
    """Undo an applied request, newest step first; each undo is guarded against later changes."""
    with sessions() as session:
        request = _load(session, request_id)
        state, plan_hash, stored = request.state, request.plan_hash, dict(request.plan)
        events = request_events(session, request_id)
    if state != S.APPLIED.value:
        raise _refuse(
            sessions,
            request_id,
            actor,
            "rollback",
            f"it is {state}; only an applied request can be rolled back",
        )
    plan = Plan.from_dict(stored)
    load_actions(plan)
    steps = steps_from_events(plan, events)
    final = [s.index + 1 for s in steps if not s.op.reversible]
    if final:
        raise _refuse(
            sessions,
            request_id,
            actor,
            "rollback",
            f"step {final[0]} cannot be undone (it deleted or replaced something for good)",
        )
    backends = backends or live.backends()
    backends.request_id, backends.plan_hash = request_id, plan_hash
    emit = _emitter(sessions, actor, request_id)
    emit("remediation.rollback-started", {"steps": [s.index for s in steps]})
    problems = revert_steps(steps, backends, emit)
    outcome = Outcome(
        "failed" if problems else "rolled-back",
        f"rollback on request by {actor}"
        + (f"; incomplete: {'; '.join(problems)}" if problems else ""),
    )
    _finish(sessions, request_id, actor, S.APPLIED, outcome)
    return ApplyResult(request_id, outcome.state, outcome.reason, plan_hash)


def reconcile(
    sessions: sessionmaker[Session],
    actor: str,
    live_for: Callable[[str], LiveCluster],
    *,
    backends_for: Callable[[LiveCluster], Backends] | None = None,
    now: datetime | None = None,
) -> list[ApplyResult]:
    """Settle what a crash left behind, and expire requests whose time ran out.

    A request still ``applying`` (or ``failed`` with steps not undone) is compared with the live
    state: every step that took effect is reverted, newest first, and the request ends
    ``rolled-back`` (``failed`` if something could not be undone, named in its reason).
    """
    now = now or utcnow()
    results: list[ApplyResult] = []
    with sessions() as session:
        stale = session.scalars(
            select(RemediationRequest).where(
                RemediationRequest.state.in_([S.PENDING_APPROVAL.value, S.APPROVED.value]),
                RemediationRequest.expires_at <= now,
            )
        ).all()
        expiring = [(r.id, r.state) for r in stale]
        open_runs = session.scalars(
            select(RemediationRequest)
            .where(RemediationRequest.state.in_([S.APPLYING.value, S.FAILED.value]))
            .order_by(RemediationRequest.id)
        ).all()
        runs = [
            (r.id, r.state, r.plan_hash, dict(r.plan), request_events(session, r.id))
            for r in open_runs
        ]
    for request_id, state in expiring:
        with sessions.begin() as session:
            transition(
                session,
                request_id,
                state,
                S.EXPIRED,
                actor,
                reason="expired unapproved or unapplied",
            )
        results.append(ApplyResult(request_id, S.EXPIRED.value, "expired", ""))
    for request_id, state, plan_hash, stored, events in runs:
        plan = Plan.from_dict(stored)
        load_actions(plan)
        steps = steps_from_events(plan, events)
        if state == S.FAILED.value and not steps:
            continue  # failed before writing anything, or already settled
        live = live_for(plan.cluster)
        backends = backend_factory(live, backends_for)
        backends.request_id, backends.plan_hash = request_id, plan_hash
        emit = _emitter(sessions, actor, request_id)
        emit("remediation.reconcile-started", {"from": state, "steps": [s.index for s in steps]})
        if state == S.APPLYING.value and all_in_effect(plan, steps, backends):
            # Interrupted after its last write: finish the run instead of undoing it.
            try:
                verify_steps(steps, backends)
            except OkeguardError as exc:
                emit("remediation.verify-failed", {"error": str(exc)})
            else:
                emit("remediation.verified", {"steps": len(steps)})
                reason = "interrupted after its last step; verified and settled as applied"
                _finish(sessions, request_id, actor, S.APPLYING, Outcome(S.APPLIED.value, reason))
                results.append(ApplyResult(request_id, S.APPLIED.value, reason, plan_hash))
                continue
        problems = revert_steps(steps, backends, emit, only_in_effect=True)
        if problems:
            reason = f"reconciled after an interruption; could not undo: {'; '.join(problems)}"
            if state == S.APPLYING.value:
                with sessions.begin() as session:
                    transition(session, request_id, S.APPLYING, S.FAILED, actor, reason=reason)
            results.append(ApplyResult(request_id, S.FAILED.value, reason, plan_hash))
            continue
        last = max((s.index for s in steps), default=-1)
        reason = f"interrupted (last step started: {last + 1}); reconciled by rolling back"
        with sessions.begin() as session:
            transition(session, request_id, state, S.ROLLED_BACK, actor, reason=reason)
        results.append(ApplyResult(request_id, S.ROLLED_BACK.value, reason, plan_hash))
    return results


def backend_factory(
    live: LiveCluster, backends_for: Callable[[LiveCluster], Backends] | None
) -> Backends:
    return backends_for(live) if backends_for is not None else live.backends()
