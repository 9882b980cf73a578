"""The remediation workflow: request, approve (``approvals``), apply, roll back, reconcile.

The command line and the Slack bot call these functions; they hold every rule:

- applying re-reads the live cluster, re-derives the finding, re-plans and compares the hash with
  the approved one: any difference supersedes the request and nothing is written;
- every step of a run, and every refusal, is audited;
- a run owns its request through a lease (``lease``): only the owner writes, and a run that
  lost its lease stops at once and says so (:class:`RunTakenOver`);
- the stored plan is hashed again before it runs: it must be the hash that was approved, as the
  approval event in the audit chain records it;
- reconciling settles what a crash left ``applying``, once the crashed run's lease ran out.
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
from okeguard.audit.stores import plan_hash, transition
from okeguard.audit.types import utcnow
from okeguard.errors import OkeguardError
from okeguard.remediations.approvals import (
    SUBJECT,
    Refused,
    approved_request_for,
    decide,
    has_expired,
    load_request,
    refuse,
    request_fix,
)
from okeguard.remediations.engine import (
    Backends,
    all_in_effect,
    execute_plan,
    revert_steps,
    verify_steps,
)
from okeguard.remediations.lease import LeaseLost, RunLease, claim, new_owner, release
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan, short_hash
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.steps import Outcome, incomplete_reason, steps_from_events

S = RequestState
__all__ = [
    "ApplyResult",
    "Refused",
    "RunTakenOver",
    "apply_request",
    "approved_request_for",
    "decide",
    "reconcile",
    "request_events",
    "request_fix",
    "rollback_request",
]


@dataclass
class ApplyResult:
    request_id: int
    state: str
    reason: str | None
    plan_hash: str


class RunTakenOver(OkeguardError):
    """This run lost its request to another process (its lease ran out): it stopped writing."""


def _emitter(
    sessions: sessionmaker[Session], actor: str, request_id: int
) -> Callable[[str, Mapping[str, Any]], None]:
    def emit(action: str, payload: Mapping[str, Any]) -> None:
        with sessions.begin() as session:
            append_event(session, actor, action, (SUBJECT, request_id), payload)

    return emit


def _taken_over(
    sessions: sessionmaker[Session], request_id: int, actor: str, owner: str, doing: str
) -> RunTakenOver:
    """Record that this run stopped because it lost its lease, and say what the request is now."""
    with sessions.begin() as session:
        request = load_request(session, request_id)
        state, holder = request.state, request.owner
        append_event(
            session,
            actor,
            "remediation.run-stopped",
            (SUBJECT, request_id),
            {"owner": owner, "now_owned_by": holder, "state": state, "while": doing},
        )
    return RunTakenOver(
        f"request {request_id}: another process took this {doing} over after its lease ran out "
        f"(the request is now {state}); this process stopped and wrote nothing more"
    )


def _approval_hash(session: Session, request_id: int) -> str | None:
    """The plan hash named by the request's approval, as the audit chain records it."""
    approved = [
        e["payload"]
        for e in request_events(session, request_id)
        if e["action"] == f"remediation.{S.APPROVED.value}"
    ]
    if not approved:
        return None
    named = approved[-1].get("plan_hash")
    return named if isinstance(named, str) else None


def replan(live: LiveCluster, plan: Plan) -> Plan:
    """The plan the same finding gets from the cluster's live state now (PlanError if none)."""
    from okeguard.remediations.plan import PlanError

    inventory = live.read()
    for finding in live.findings(inventory, (plan.check_id,)):
        if finding.fingerprint == plan.finding:
            return plan_finding(finding, inventory, live.effective_config.remediation, plan.variant)
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
    """Apply an approved request exactly as approved, verify it, roll back on failure.

    Refused (:class:`Refused`, audited) unless the stored plan still hashes to the hash its
    approval named, and the live cluster still gives that same plan. The run owns the request
    through a lease; :class:`RunTakenOver` if another process took it over meanwhile.
    """
    from okeguard.remediations.plan import PlanError

    now = now or utcnow()
    with sessions() as session:
        request = load_request(session, request_id)
        state, approved_hash, stored = request.state, request.plan_hash, dict(request.plan)
        timed_out = has_expired(request, now)
        named = _approval_hash(session, request_id)
    if state != S.APPROVED.value:
        raise refuse(sessions, request_id, actor, "apply", f"it is {state}, not approved")
    if timed_out:
        with sessions.begin() as session:
            transition(
                session,
                request_id,
                S.APPROVED,
                S.EXPIRED,
                actor,
                reason="approval expired before apply",
            )
        raise refuse(sessions, request_id, actor, "apply", "its approval expired")
    approved = Plan.from_dict(stored)
    if not plan_hash(stored) == approved_hash == named == approved.hash:
        why = (
            "the stored plan is not the plan that was approved (it hashes to "
            f"{short_hash(plan_hash(stored))}, the approval named "
            f"{short_hash(named) if named else 'no hash'}): the database was changed; "
            "nothing was written"
        )
        with sessions.begin() as session:
            transition(session, request_id, S.APPROVED, S.SUPERSEDED, actor, reason=why)
        raise refuse(sessions, request_id, actor, "apply", why)
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
        raise refuse(sessions, request_id, actor, "apply", why)
    settings = live.config.remediation
    owner = new_owner()
    with sessions.begin() as session:
        won = transition(
            session,
            request_id,
            S.APPROVED,
            S.APPLYING,
            actor,
            owner=owner,
            lease_until=utcnow() + timedelta(seconds=settings.lease_seconds),
        )
    if not won:
        raise refuse(sessions, request_id, actor, "apply", "it is already being applied")
    backends = backends or live.backends()
    backends.request_id, backends.plan_hash = request_id, approved_hash
    with RunLease(sessions, request_id, owner, settings.lease_seconds, actor) as lease:
        backends.guard = lease.check
        try:
            outcome = execute_plan(approved, backends, lease.emit, crash_after=crash_after)
        except LeaseLost:
            raise _taken_over(sessions, request_id, actor, owner, "run") from None
        _finish(sessions, request_id, actor, S.APPLYING, outcome, owner)
    return ApplyResult(request_id, outcome.state, outcome.reason, approved_hash)


def _finish(
    sessions: sessionmaker[Session],
    request_id: int,
    actor: str,
    expected: RequestState,
    outcome: Outcome,
    owner: str,
    *,
    doing: str = "run",
) -> None:
    """Move the request to the outcome's state, only while this run still owns it."""
    fields: dict[str, Any] = {"owner": None, "lease_until": None}
    if outcome.reason:
        fields["reason"] = outcome.reason
    if outcome.state == S.APPLIED.value:
        fields["applied_at"] = utcnow()
    with sessions.begin() as session:
        won = transition(
            session,
            request_id,
            expected,
            RequestState(outcome.state),
            actor,
            held_by=owner,
            **fields,
        )
    if not won:
        raise _taken_over(sessions, request_id, actor, owner, doing)


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
    """Undo an applied request, newest step first; each undo is guarded against later changes.

    The rollback owns the request through a lease, so two rollbacks never run at once.
    """
    with sessions() as session:
        request = load_request(session, request_id)
        state, approved_hash, stored = request.state, request.plan_hash, dict(request.plan)
    if state != S.APPLIED.value:
        raise refuse(
            sessions,
            request_id,
            actor,
            "rollback",
            f"it is {state}; only an applied request can be rolled back",
        )
    plan = Plan.from_dict(stored)
    settings = live.config.remediation
    owner = new_owner()
    with sessions.begin() as session:
        won = claim(session, request_id, [S.APPLIED], owner, settings.lease_seconds)
    if not won:
        raise refuse(sessions, request_id, actor, "rollback", "another run holds it right now")
    with sessions() as session:
        events = request_events(session, request_id)
    steps = steps_from_events(plan, events)
    final = [s.index + 1 for s in steps if not s.op.reversible]
    if final:
        with sessions.begin() as session:
            release(session, request_id, owner)
        raise refuse(
            sessions,
            request_id,
            actor,
            "rollback",
            f"step {final[0]} cannot be undone (it deleted or replaced something for good)",
        )
    backends = backends or live.backends()
    backends.request_id, backends.plan_hash = request_id, approved_hash
    with RunLease(sessions, request_id, owner, settings.lease_seconds, actor) as lease:
        backends.guard = lease.check
        try:
            lease.emit("remediation.rollback-started", {"steps": [s.index for s in steps]})
            not_undone = revert_steps(steps, backends, lease.emit)
        except LeaseLost:
            raise _taken_over(sessions, request_id, actor, owner, "rollback") from None
        reason = f"rollback on request by {actor}"
        outcome = (
            Outcome(S.FAILED.value, incomplete_reason(reason, not_undone))
            if not_undone
            else Outcome(S.ROLLED_BACK.value, reason)
        )
        _finish(sessions, request_id, actor, S.APPLIED, outcome, owner, doing="rollback")
    return ApplyResult(request_id, outcome.state, outcome.reason, approved_hash)


def reconcile(
    sessions: sessionmaker[Session],
    actor: str,
    live_for: Callable[[str], LiveCluster],
    *,
    now: datetime | None = None,
    lease_seconds: float = 30.0,
) -> list[ApplyResult]:
    """Settle what a crash left behind, and expire requests whose time ran out.

    Only requests whose run's lease has run out are touched, and each is claimed first (a
    request whose owner is alive is reported and left alone). A run cut short is compared with
    the live state: when every step took effect it is verified, and marked ``applied`` only once
    that verification passed; otherwise every step that took effect is reverted, newest first,
    and the request ends ``rolled-back`` (``failed`` if something could not be undone, named in
    its reason). A ``failed`` request whose incomplete rollback was recorded is settled: it is
    left for a person, not undone again at every reconcile.
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
        # a run cut short, a failed run with steps still in effect, and a rollback cut short
        # (applied, still owned); each is claimed below only once its lease has run out
        open_runs = session.scalars(
            select(RemediationRequest)
            .where(
                RemediationRequest.state.in_([S.APPLYING.value, S.FAILED.value])
                | (
                    (RemediationRequest.state == S.APPLIED.value)
                    & RemediationRequest.owner.is_not(None)
                )
            )
            .order_by(RemediationRequest.id)
        ).all()
        runs = [(r.id, r.state, r.plan_hash, dict(r.plan)) for r in open_runs]
    for request_id, state in expiring:
        with sessions.begin() as session:
            won = transition(
                session,
                request_id,
                state,
                S.EXPIRED,
                actor,
                reason="expired unapproved or unapplied",
            )
        if won:
            results.append(ApplyResult(request_id, S.EXPIRED.value, "expired", ""))
    for request_id, state, approved_hash, stored in runs:
        plan = Plan.from_dict(stored)
        owner = new_owner()
        with sessions.begin() as session:
            won = claim(session, request_id, [state], owner, lease_seconds, now=now)
        if not won:
            if state == S.APPLYING.value:
                held = "its run is still alive (its lease holds); left alone"
                results.append(ApplyResult(request_id, state, held, approved_hash))
            continue
        with RunLease(sessions, request_id, owner, lease_seconds, actor) as lease:
            try:
                result = _settle(
                    sessions, request_id, state, plan, approved_hash, actor, live_for, lease
                )
            except LeaseLost:
                raise _taken_over(sessions, request_id, actor, owner, "reconcile") from None
        if result is not None:
            results.append(result)
    return results


def _settle(
    sessions: sessionmaker[Session],
    request_id: int,
    state: str,
    plan: Plan,
    approved_hash: str,
    actor: str,
    live_for: Callable[[str], LiveCluster],
    lease: RunLease,
) -> ApplyResult | None:
    """Reconcile one claimed request (see :func:`reconcile`); None when there was nothing to do."""
    with sessions() as session:
        events = request_events(session, request_id)
        steps = steps_from_events(plan, events)
    if state == S.FAILED.value and any(
        e["action"] == "remediation.rollback-incomplete" for e in events
    ):
        # Already settled: what is left in effect was named and waits for a person. Undoing it
        # again at every start would repeat the same refusal (and could undo a hand-made fix).
        with sessions.begin() as session:
            release(session, request_id, lease.owner)
        return None
    if state != S.APPLYING.value and not steps:
        # failed before writing anything, or a rollback that finished undoing: nothing in effect
        with sessions.begin() as session:
            if state == S.APPLIED.value:
                reason = "its rollback was interrupted after undoing every step"
                transition(
                    session,
                    request_id,
                    state,
                    S.ROLLED_BACK,
                    actor,
                    held_by=lease.owner,
                    owner=None,
                    lease_until=None,
                    reason=reason,
                )
                return ApplyResult(request_id, S.ROLLED_BACK.value, reason, approved_hash)
            release(session, request_id, lease.owner)
        return None
    backends = live_for(plan.cluster).backends()
    backends.request_id, backends.plan_hash = request_id, approved_hash
    backends.guard = lease.check
    emit = lease.emit
    emit("remediation.reconcile-started", {"from": state, "steps": [s.index for s in steps]})
    where: dict[str, Any] = {"phase": "check"}
    with backends.retries_recorded(emit, where):
        finished = state == S.APPLYING.value and all_in_effect(plan, steps, backends)
    if finished:
        # Interrupted after its last write: finish the run instead of undoing it, but only once
        # the same verification the run would have done has passed.
        try:
            with backends.retries_recorded(emit, where):
                verify_steps(steps, backends, where)
        except OkeguardError as exc:
            emit("remediation.verify-failed", {"error": str(exc)})
        else:
            emit("remediation.verified", {"steps": len(steps)})
            reason = "interrupted after its last step; verified and settled as applied"
            outcome = Outcome(S.APPLIED.value, reason)
            _finish(
                sessions, request_id, actor, S.APPLYING, outcome, lease.owner, doing="reconcile"
            )
            return ApplyResult(request_id, S.APPLIED.value, reason, approved_hash)
    not_undone = revert_steps(steps, backends, emit, only_in_effect=True)
    if not_undone:
        reason = incomplete_reason("reconciled after an interruption", not_undone)
        if state == S.FAILED.value:
            with sessions.begin() as session:
                release(session, request_id, lease.owner)
        else:
            outcome = Outcome(S.FAILED.value, reason)
            _finish(
                sessions,
                request_id,
                actor,
                RequestState(state),
                outcome,
                lease.owner,
                doing="reconcile",
            )
        return ApplyResult(request_id, S.FAILED.value, reason, approved_hash)
    last = max((s.index for s in steps), default=-1)
    reason = f"interrupted (last step started: {last + 1}); reconciled by rolling back"
    outcome = Outcome(S.ROLLED_BACK.value, reason)
    _finish(
        sessions, request_id, actor, RequestState(state), outcome, lease.owner, doing="reconcile"
    )
    return ApplyResult(request_id, S.ROLLED_BACK.value, reason, approved_hash)
