"""Reconciling: settling what a crash left behind, and expiring requests whose time ran out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.models import RemediationRequest, RequestState
from okeguard.audit.stores import transition
from okeguard.audit.types import utcnow
from okeguard.errors import OkeguardError
from okeguard.remediations.engine import all_in_effect, revert_steps, verify_steps
from okeguard.remediations.lease import LeaseLost, RunLease, claim, new_owner, release
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.runs import ApplyResult, finish_run, request_events, taken_over
from okeguard.remediations.steps import Outcome, incomplete_reason, steps_from_events

S = RequestState


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
                raise taken_over(sessions, request_id, actor, owner, "reconcile") from None
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
            finish_run(
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
            finish_run(
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
    finish_run(
        sessions, request_id, actor, RequestState(state), outcome, lease.owner, doing="reconcile"
    )
    return ApplyResult(request_id, S.ROLLED_BACK.value, reason, approved_hash)
