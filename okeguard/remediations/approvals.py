"""Requests and approvals: who asked for which plan, and who approved exactly which hash.

- a request is a plan plus its hash, waiting for approval until it expires;
- an approval names the plan hash the approver saw; a requester cannot approve their own request
  (unless the configuration allows it for that remediation); Approve and Reject move the request
  by compare-and-set, so two clicks act once;
- every refusal is audited (``remediation.refused``) with who and why.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import RemediationRequest, RequestState
from okeguard.audit.stores import create_request, transition
from okeguard.audit.types import utcnow
from okeguard.config import RemediationConfig
from okeguard.errors import OkeguardError
from okeguard.remediations.plan import Plan, short_hash

S = RequestState
SUBJECT = "remediation_request"


class Refused(OkeguardError):
    """The workflow refused an action (self-approval, expired, changed target…); audited."""


def refuse(
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


def load_request(session: Session, request_id: int) -> RemediationRequest:
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


def has_expired(request: RemediationRequest, now: datetime) -> bool:
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
    authorised: Callable[[str, RemediationRequest], bool | str] | None = None,
    self_approval: bool = False,
    now: datetime | None = None,
) -> RemediationRequest:
    """Approve or reject a pending request, by compare-and-set. Raises :class:`Refused`.

    ``authorised(approver, request)`` returns True to allow, or False or the reason to refuse.
    ``self_approval`` is for ``okeguard fix --apply`` with ``cli_requires_approval`` off, where
    the OS user applying is, knowingly and on record, their own approver.
    """
    now = now or utcnow()
    what = "approve" if approve else "reject"
    with sessions.begin() as session:
        request = load_request(session, request_id)
        state, requester = request.state, request.requester
        remediation = str(request.plan.get("remediation"))
        stored_hash = request.plan_hash
        timed_out = has_expired(request, now)
        allowed = True if authorised is None else authorised(approver, request)
    if state != S.PENDING_APPROVAL.value:
        raise refuse(sessions, request_id, approver, what, f"it is {state}, not pending approval")
    if timed_out:
        with sessions.begin() as session:
            transition(
                session,
                request_id,
                S.PENDING_APPROVAL,
                S.EXPIRED,
                approver,
                reason="approval window passed",
            )
        raise refuse(sessions, request_id, approver, what, "it expired before it was approved")
    if allowed is not True:
        why = allowed if isinstance(allowed, str) and allowed else None
        raise refuse(
            sessions, request_id, approver, what, why or f"{approver} may not approve remediations"
        )
    own = approver == requester and not self_approval
    if approve and own and remediation not in settings.allow_self_approval:
        raise refuse(
            sessions, request_id, approver, what, "a requester cannot approve their own request"
        )
    if approve:
        problem = hash_problem(plan_hash, stored_hash)
        if problem:
            raise refuse(sessions, request_id, approver, what, problem)
    new = S.APPROVED if approve else S.REJECTED
    # The approval event names the hash approved: apply checks the stored plan against it.
    named = {"plan_hash": stored_hash} if approve else {}
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
            **named,
        )
    if not won:
        raise refuse(sessions, request_id, approver, what, "someone else decided it first")
    with sessions() as session:
        request = load_request(session, request_id)
        session.expunge(request)
    return request


FULL_HASH = re.compile(r"[0-9a-f]{64}")


def hash_problem(named: str | None, stored: str) -> str | None:
    """Why ``named`` does not bind an approval to the plan hashed ``stored`` (None: it does).

    The approver must name the whole SHA-256, exactly: no prefix, no empty value.
    """
    if not named:
        return "an approval must name the plan hash it approves (all 64 hex digits)"
    value = named.strip().lower()
    if not FULL_HASH.fullmatch(value):
        shown = named if len(named) <= 70 else named[:67] + "..."
        return f"'{shown}' is not a full plan hash (64 hex digits)"
    if not hmac.compare_digest(value, stored):
        return f"the plan hash {short_hash(value)}… is not this request's ({short_hash(stored)}…)"
    return None


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
