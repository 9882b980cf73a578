"""Cross-check the state tables against the audit chain: what the rows say must be what the
events say.

A verified chain proves the events were not changed; it proves nothing about the tables next to
it. Someone with write access to the database could set a request to ``approved`` with one
UPDATE, rewrite an approved plan, or insert an exception, all without an event. Every row of
``remediation_requests`` and ``exceptions`` is therefore compared with the events about it:

- a request's stored plan hashes to its ``plan_hash``, which is the hash its
  ``remediation.proposed`` event recorded; its ``state`` is the ``to`` of its newest state
  change; once approved (approved, applying, applied, failed, rolled-back) it has a
  ``remediation.approved`` event, by its ``approver``, naming its plan hash (when the event
  names one); a request the chain proposed still has its row;
- an exception has an ``exception.added`` event with its check id, selector and expiry, and no
  ``exception.removed`` after it; its state and approver are those the chain last gave it; an
  exception the chain added and never removed still has its row.

:func:`crosscheck` only reads; each disagreement is one :class:`Mismatch`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from okeguard.audit.models import AuditEvent, ExceptionRule, RemediationRequest, RequestState
from okeguard.audit.stores import exception_selector, plan_hash

REQUEST, EXCEPTION = "remediation_request", "exception"
S = RequestState
STATES = frozenset(s.value for s in RequestState)
# States a request reaches only through an approval.
APPROVED_STATES = frozenset(
    s.value for s in (S.APPROVED, S.APPLYING, S.APPLIED, S.FAILED, S.ROLLED_BACK)
)
PROPOSED = "remediation.proposed"
APPROVED = f"remediation.{S.APPROVED.value}"
ADDED, REMOVED = "exception.added", "exception.removed"
EXCEPTION_DECISIONS = frozenset({"exception.approved", "exception.rejected"})


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One disagreement between a table row and the audit chain."""

    table: str  # "remediation request" or "exception"
    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"{self.table} {self.row_id}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    action: str
    actor: str
    payload: Mapping[str, Any]


def _short(value: object) -> str:
    return f"{value[:12]}…" if isinstance(value, str) and len(value) > 12 else repr(value)


def _events(session: Session) -> dict[tuple[str, int], list[Event]]:
    """The events about requests and exceptions, oldest first, by (subject type, id)."""
    query = (
        select(
            AuditEvent.id,
            AuditEvent.action,
            AuditEvent.actor,
            AuditEvent.subject_type,
            AuditEvent.subject_id,
            AuditEvent.payload,
        )
        .where(AuditEvent.subject_type.in_((REQUEST, EXCEPTION)))
        .order_by(AuditEvent.id)
        .execution_options(yield_per=5000)
    )
    grouped: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for event_id, action, actor, subject_type, subject_id, text in session.execute(query):
        if not str(subject_id).isdigit():
            continue  # e.g. a refused attempt at a new exception
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {}  # verify_chain reports the edited row
        if not isinstance(payload, dict):
            payload = {}
        grouped[(subject_type, int(subject_id))].append(Event(event_id, action, actor, payload))
    return grouped


def _is_transition(event: Event) -> bool:
    prefix, _, state = event.action.partition(".")
    return (
        prefix == "remediation"
        and state in STATES
        and "from" in event.payload
        and "to" in event.payload
    )


def _request_problems(request: RemediationRequest, events: Sequence[Event]) -> list[str]:
    problems = []
    stored = plan_hash(dict(request.plan or {}))
    if stored != request.plan_hash:
        problems.append(
            f"its stored plan hashes to {_short(stored)} but its plan_hash column says "
            f"{_short(request.plan_hash)} (plan edited in the database)"
        )
    proposals = [e for e in events if e.action == PROPOSED]
    if not proposals:
        problems.append("the chain has no remediation.proposed event for it (row inserted?)")
    else:
        proposed = proposals[-1]
        events = [e for e in events if e.id >= proposed.id]  # an id reused after a rollback
        recorded = proposed.payload.get("plan_hash")
        if recorded != request.plan_hash:
            problems.append(
                f"plan_hash is {_short(request.plan_hash)} but its remediation.proposed event "
                f"(event {proposed.id}) recorded {_short(recorded)}"
            )
    transitions = [e for e in events if _is_transition(e)]
    expected = str(transitions[-1].payload["to"]) if transitions else S.PROPOSED.value
    if request.state != expected:
        where = (
            f"its newest state change (event {transitions[-1].id}) is to {expected}"
            if transitions
            else "the chain has no state change for it (it should be proposed)"
        )
        problems.append(f"state is {request.state} but {where}")
    if request.state in APPROVED_STATES:
        approvals = [e for e in events if e.action == APPROVED and _is_transition(e)]
        if not approvals:
            problems.append(f"state is {request.state} but the chain has no approval event")
        else:
            approval = approvals[-1]
            if request.approver != approval.actor:
                problems.append(
                    f"approver is {request.approver} but the chain's approval "
                    f"(event {approval.id}) was by {approval.actor}"
                )
            named = approval.payload.get("plan_hash")
            if named is not None and named != request.plan_hash:
                problems.append(
                    f"its approval (event {approval.id}) names plan hash {_short(named)} but "
                    f"plan_hash is {_short(request.plan_hash)}"
                )
    return problems


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _exception_problems(rule: ExceptionRule, events: Sequence[Event]) -> list[str]:
    lifecycle = [e for e in events if e.action in (ADDED, REMOVED)]
    if not lifecycle or all(e.action == REMOVED for e in lifecycle):
        return ["the chain has no exception.added event for it (row inserted?)"]
    if lifecycle[-1].action == REMOVED:
        return [f"the chain removed it (event {lifecycle[-1].id}) but the row still exists"]
    added = lifecycle[-1]
    problems = []
    recorded_check = added.payload.get("check_id")
    if recorded_check != rule.check_id:
        problems.append(
            f"check id is {rule.check_id} but its exception.added event (event {added.id}) "
            f"recorded {recorded_check}"
        )
    recorded_selector = added.payload.get("selector")
    if recorded_selector != exception_selector(rule):
        problems.append(
            f"selector is {json.dumps(exception_selector(rule), sort_keys=True)} but its exception.added "
            f"event (event {added.id}) recorded {json.dumps(recorded_selector, sort_keys=True)}"
        )
    if "expires_at" in added.payload and _when(added.payload["expires_at"]) != rule.expires_at:
        shown = rule.expires_at.isoformat() if rule.expires_at else None
        problems.append(
            f"expires_at is {shown} but its exception.added event (event {added.id}) recorded "
            f"{added.payload['expires_at']}"
        )
    # The state and approver the chain gave it: at its addition, then by each decision.
    state = str(added.payload.get("state", "active"))
    approver = added.payload.get("approved_by")
    decided = added
    for event in events:
        if event.id > added.id and event.action in EXCEPTION_DECISIONS:
            state, decided = str(event.payload.get("to", state)), event
            approver = event.actor if event.action == "exception.approved" else approver
    if rule.state != state:
        problems.append(f"state is {rule.state} but the chain says {state} (event {decided.id})")
    elif rule.approved_by != approver:
        problems.append(
            f"approved_by is {rule.approved_by} but the chain says {approver} (event {decided.id})"
        )
    return problems


def _vanished(
    grouped: Mapping[tuple[str, int], list[Event]],
    request_ids: set[int],
    exception_ids: set[int],
) -> list[Mismatch]:
    """Rows the chain says exist that the tables no longer hold."""
    gone = []
    for (kind, row_id), events in sorted(grouped.items()):
        if kind == REQUEST and row_id not in request_ids:
            proposed = next((e for e in events if e.action == PROPOSED), None)
            if proposed is not None:
                gone.append(
                    Mismatch(
                        "remediation request",
                        row_id,
                        f"the chain proposed it (event {proposed.id}) but the table has no "
                        "such row (row deleted)",
                    )
                )
        elif kind == EXCEPTION and row_id not in exception_ids:
            lifecycle = [e for e in events if e.action in (ADDED, REMOVED)]
            if lifecycle and lifecycle[-1].action == ADDED:
                gone.append(
                    Mismatch(
                        "exception",
                        row_id,
                        f"the chain added it (event {lifecycle[-1].id}) and never removed it, "
                        "but the table has no such row (row deleted)",
                    )
                )
    return gone


def crosscheck(session: Session) -> list[Mismatch]:
    """Every disagreement between ``remediation_requests`` / ``exceptions`` and the chain."""
    grouped = _events(session)
    mismatches: list[Mismatch] = []
    requests = session.scalars(select(RemediationRequest).order_by(RemediationRequest.id))
    request_ids: set[int] = set()
    for request in requests:
        request_ids.add(request.id)
        for problem in _request_problems(request, grouped.get((REQUEST, request.id), [])):
            mismatches.append(Mismatch("remediation request", request.id, problem))
    exception_ids: set[int] = set()
    for rule in session.scalars(select(ExceptionRule).order_by(ExceptionRule.id)):
        exception_ids.add(rule.id)
        for problem in _exception_problems(rule, grouped.get((EXCEPTION, rule.id), [])):
            mismatches.append(Mismatch("exception", rule.id, problem))
    return mismatches + _vanished(grouped, request_ids, exception_ids)
