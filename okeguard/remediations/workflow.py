"""The remediation workflow: request, approve (``approvals``), apply, roll back, reconcile.

The command line and the Slack bot call these functions; they hold every rule:

- applying re-reads the live cluster, re-derives the finding, re-plans and compares the hash with
  the approved one: any difference supersedes the request and nothing is written;
- every step of a run, and every refusal, is audited;
- reconciling settles what a crash left ``applying``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import AuditEvent, RemediationRequest, RequestState
from okeguard.audit.stores import transition
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
__all__ = [
    "ApplyResult",
    "Refused",
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
        request = load_request(session, request_id)
        state, approved_hash, stored = request.state, request.plan_hash, dict(request.plan)
        timed_out = has_expired(request, now)
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
        raise refuse(sessions, request_id, actor, "apply", why)
    with sessions.begin() as session:
        won = transition(session, request_id, S.APPROVED, S.APPLYING, actor)
    if not won:
        raise refuse(sessions, request_id, actor, "apply", "it is already being applied")
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
        request = load_request(session, request_id)
        state, plan_hash, stored = request.state, request.plan_hash, dict(request.plan)
        events = request_events(session, request_id)
    if state != S.APPLIED.value:
        raise refuse(
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
        raise refuse(
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
        backends = live.backends()
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
