"""What every run of a request shares: its result, its end, and the audit events it left.

A run (apply, rollback, reconcile) owns its request through a lease; :func:`finish_run` moves
the request to the run's final state only while the run still owns it, and :func:`taken_over`
records that a run stopped because another process took its request over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import AuditEvent, RequestState
from okeguard.audit.stores import transition
from okeguard.audit.types import utcnow
from okeguard.errors import OkeguardError
from okeguard.remediations.approvals import SUBJECT, load_request
from okeguard.remediations.steps import Outcome


@dataclass
class ApplyResult:
    request_id: int
    state: str
    reason: str | None
    plan_hash: str


class RunTakenOver(OkeguardError):
    """This run lost its request to another process (its lease ran out): it stopped writing."""


def taken_over(
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


def finish_run(
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
    if outcome.state == RequestState.APPLIED.value:
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
        raise taken_over(sessions, request_id, actor, owner, doing)


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
