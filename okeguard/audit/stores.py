"""Changes to findings, exceptions and remediation requests, each with its audit event; and
inserting many rows at once (:func:`bulk_insert`).

Every function here works inside the caller's transaction and never commits: the change and
its audit event are committed (or rolled back) together. Remediation requests move only by
compare-and-set (:func:`transition`), so two simultaneous approvals apply once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from okeguard.audit.chain import append_event
from okeguard.audit.models import (
    ExceptionRule,
    ExceptionState,
    FindingRecord,
    FindingStatus,
    RemediationRequest,
    RequestState,
)
from okeguard.audit.records import canonical_json
from okeguard.audit.types import utcnow
from okeguard.errors import OkeguardError

S = RequestState
# The remediation state machine. Anything not listed here is refused.
ALLOWED_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.PROPOSED: frozenset({S.PENDING_APPROVAL, S.SUPERSEDED, S.EXPIRED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED, S.SUPERSEDED}),
    S.APPROVED: frozenset({S.APPLYING, S.EXPIRED, S.SUPERSEDED}),
    S.APPLYING: frozenset({S.APPLIED, S.FAILED, S.ROLLED_BACK}),
    # rolled back on request; failed when a rollback could not finish (the target changed)
    S.APPLIED: frozenset({S.ROLLED_BACK, S.FAILED}),
    S.FAILED: frozenset({S.ROLLED_BACK}),
    S.ROLLED_BACK: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.SUPERSEDED: frozenset(),
}
# Columns a transition may set besides the state (never plan or plan_hash: what is approved runs).
TRANSITION_FIELDS = frozenset(
    {"approver", "reason", "decided_at", "applied_at", "expires_at", "owner", "lease_until"}
)
# What a transition's audit event carries besides its columns (the hash an approver named).
EVENT_ONLY_FIELDS = frozenset({"plan_hash"})


KEPT_STATUSES = frozenset({FindingStatus.SNOOZED.value, FindingStatus.ACCEPTED_RISK.value})


class TransitionError(OkeguardError):
    """A transition the state machine does not allow, or a field it may not set."""


def plan_hash(plan: dict[str, Any]) -> str:
    """SHA-256 (hex) of the plan's canonical JSON: the value an approval refers to."""
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()


def create_request(
    session: Session,
    *,
    plan: dict[str, Any],
    requester: str,
    finding_fingerprint: str | None = None,
    expires_at: datetime | None = None,
) -> RemediationRequest:
    """Record a proposed remediation (state ``proposed``) and its audit event; return it."""
    request = RemediationRequest(
        finding_fingerprint=finding_fingerprint,
        state=RequestState.PROPOSED.value,
        plan=plan,
        plan_hash=plan_hash(plan),
        requester=requester,
        expires_at=expires_at,
    )
    session.add(request)
    session.flush()
    append_event(
        session,
        requester,
        "remediation.proposed",
        ("remediation_request", request.id),
        {"plan_hash": request.plan_hash, "finding": finding_fingerprint},
    )
    return request


def _check_transition(expected: RequestState, new: RequestState, fields: dict[str, Any]) -> None:
    if new not in ALLOWED_TRANSITIONS[expected]:
        raise TransitionError(f"a remediation request cannot go from {expected} to {new}")
    unknown = set(fields) - TRANSITION_FIELDS - EVENT_ONLY_FIELDS
    if unknown:
        raise TransitionError(f"a transition cannot set {', '.join(sorted(unknown))}")


def transition(
    session: Session,
    request_id: int,
    expected_state: RequestState | str,
    new_state: RequestState | str,
    actor: str,
    *,
    held_by: str | None = None,
    **fields: Any,
) -> bool:
    """Move a request from ``expected_state`` to ``new_state`` if it is still in that state.

    Runs ``UPDATE … WHERE id = :id AND state = :expected`` (``AND owner = :held_by`` when given:
    only the run owning the request may move it): True when this call won (exactly one row
    changed; its audit event is then written in the same transaction), False when the request
    was no longer in ``expected_state`` or no longer owned (nothing is written).
    Raises :class:`TransitionError` for a transition the state machine forbids.
    """
    expected, new = RequestState(expected_state), RequestState(new_state)
    _check_transition(expected, new, fields)
    now = utcnow()
    conditions = [RemediationRequest.id == request_id, RemediationRequest.state == expected.value]
    if held_by is not None:
        conditions.append(RemediationRequest.owner == held_by)
    columns = {k: v for k, v in fields.items() if k not in EVENT_ONLY_FIELDS}
    result = session.execute(
        update(RemediationRequest)
        .where(*conditions)
        .values(state=new.value, updated_at=now, **columns)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    details = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
    append_event(
        session,
        actor,
        f"remediation.{new.value}",
        ("remediation_request", request_id),
        {"from": expected.value, "to": new.value, **details},
        at=now,
    )
    return True


def add_exception(
    session: Session,
    *,
    check_id: str,
    reason: str,
    author: str,
    cluster: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    expires_at: datetime | None = None,
    state: ExceptionState | str = ExceptionState.ACTIVE,
    approved_by: str | None = None,
) -> ExceptionRule:
    """Record an exception for ``check_id`` on the selected resources, with its audit event.

    ``state`` ``pending-approval`` records one that applies only once approved
    (:func:`decide_exception`); ``approved_by`` names who approved one recorded active.
    """
    now = utcnow()
    rule = ExceptionRule(
        check_id=check_id,
        cluster=cluster,
        resource_kind=kind,
        resource_namespace=namespace,
        resource_name=name,
        reason=reason,
        author=author,
        created_at=now,
        expires_at=expires_at,
        state=ExceptionState(state).value,
        approved_by=approved_by,
        approved_at=now if approved_by else None,
    )
    session.add(rule)
    session.flush()
    append_event(
        session,
        author,
        "exception.added",
        ("exception", rule.id),
        {
            "check_id": check_id,
            "selector": exception_selector(rule),
            "reason": reason,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "state": rule.state,
            "approved_by": approved_by,
        },
        at=now,
    )
    return rule


def exception_selector(rule: ExceptionRule) -> dict[str, str | None]:
    """An exception's resource selector, as its audit events record it."""
    return {
        "cluster": rule.cluster,
        "kind": rule.resource_kind,
        "namespace": rule.resource_namespace,
        "name": rule.resource_name,
    }


def decide_exception(
    session: Session,
    exception_id: int,
    actor: str,
    *,
    approve: bool,
    reason: str | None = None,
) -> bool:
    """Approve (``active``) or reject a ``pending-approval`` exception, by compare-and-set.

    Runs ``UPDATE … WHERE id = :id AND state = 'pending-approval'``: True when this call won
    (its ``exception.approved`` / ``exception.rejected`` event is written in the same
    transaction), False when the exception was no longer pending (nothing is written).
    """
    now = utcnow()
    new = ExceptionState.ACTIVE if approve else ExceptionState.REJECTED
    values: dict[str, Any] = {"state": new.value}
    if approve:
        values.update(approved_by=actor, approved_at=now)
    result = session.execute(
        update(ExceptionRule)
        .where(
            ExceptionRule.id == exception_id,
            ExceptionRule.state == ExceptionState.PENDING_APPROVAL.value,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    append_event(
        session,
        actor,
        "exception.approved" if approve else "exception.rejected",
        ("exception", exception_id),
        {"from": ExceptionState.PENDING_APPROVAL.value, "to": new.value, "reason": reason},
        at=now,
    )
    return True


def remove_exception(session: Session, exception_id: int, actor: str) -> ExceptionRule | None:
    """Delete an exception (with its audit event); None if there is no such exception."""
    rule = session.get(ExceptionRule, exception_id)
    if rule is None:
        return None
    session.delete(rule)
    session.flush()
    append_event(
        session,
        actor,
        "exception.removed",
        ("exception", exception_id),
        {
            "check_id": rule.check_id,
            "selector": exception_selector(rule),
            "reason": rule.reason,
            "state": rule.state,
        },
    )
    return rule


def active_exceptions(session: Session, now: datetime | None = None) -> list[ExceptionRule]:
    """The exceptions in force at ``now`` (default: the current time); expired ones drop out."""
    when = now or utcnow()
    query = select(ExceptionRule).where(ExceptionRule.active(when)).order_by(ExceptionRule.id)
    return list(session.scalars(query))


def set_finding_status(
    session: Session,
    fingerprint: str,
    status: FindingStatus | str,
    actor: str,
    reason: str | None = None,
    until: datetime | None = None,
) -> bool:
    """Change a finding's status (with its audit event); False if there is no such finding.

    ``until`` bounds a ``snoozed`` or ``accepted-risk`` status: the first recorded scan after
    it reopens the finding if it is still there."""
    new = FindingStatus(status)
    finding = session.scalars(
        select(FindingRecord).where(FindingRecord.fingerprint == fingerprint)
    ).first()
    if finding is None:
        return False
    old = finding.status
    if old == new.value and finding.status_until == until:
        return True
    finding.status = new.value
    finding.status_until = until if new.value in KEPT_STATUSES else None
    finding.resolved_at = utcnow() if new is FindingStatus.RESOLVED else None
    session.flush()
    append_event(
        session,
        actor,
        "finding.status",
        ("finding", fingerprint),
        {
            "from": old,
            "to": new.value,
            "reason": reason,
            "until": until.isoformat() if until is not None else None,
        },
    )
    return True
