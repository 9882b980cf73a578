"""The remediation workflow: request, approve (``approvals``), apply, roll back, reconcile.

The command line and the Slack bot call these functions; they hold every rule:

- applying re-reads the live cluster, re-derives the finding, re-plans and compares the hash with
  the approved one: any difference supersedes the request and nothing is written;
- every step of a run, and every refusal, is audited;
- a run owns its request through a lease (``lease``): only the owner writes, and a run that
  lost its lease stops at once and says so (:class:`RunTakenOver`);
- the stored plan is hashed again before it runs: it must be the hash that was approved, as the
  approval event in the audit chain records it;
- reconciling settles what a crash left ``applying``, once the crashed run's lease ran out
  (``reconcile.py``; what every run shares is in ``runs.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import RequestState
from okeguard.audit.stores import plan_hash, transition
from okeguard.audit.types import utcnow
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
    execute_plan,
    revert_steps,
)
from okeguard.remediations.lease import LeaseLost, RunLease, claim, new_owner, release
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan, short_hash
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.reconcile import reconcile
from okeguard.remediations.runs import (
    ApplyResult,
    RunTakenOver,
    finish_run,
    request_events,
    taken_over,
)
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
            raise taken_over(sessions, request_id, actor, owner, "run") from None
        finish_run(sessions, request_id, actor, S.APPLYING, outcome, owner)
    return ApplyResult(request_id, outcome.state, outcome.reason, approved_hash)


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
            raise taken_over(sessions, request_id, actor, owner, "rollback") from None
        reason = f"rollback on request by {actor}"
        outcome = (
            Outcome(S.FAILED.value, incomplete_reason(reason, not_undone))
            if not_undone
            else Outcome(S.ROLLED_BACK.value, reason)
        )
        finish_run(sessions, request_id, actor, S.APPLIED, outcome, owner, doing="rollback")
    return ApplyResult(request_id, outcome.state, outcome.reason, approved_hash)
