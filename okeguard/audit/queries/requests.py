"""Reading remediation requests: those waiting for approval, lists by state, and the Slack
messages that show a request for approval."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from okeguard.audit.models import RemediationRequest, RequestState, SlackMessage


def waiting_for_approval(now: datetime) -> ColumnElement[bool]:
    """SQL: the request waits for approval and has not expired at ``now``."""
    return and_(
        RemediationRequest.state == RequestState.PENDING_APPROVAL.value,
        or_(RemediationRequest.expires_at.is_(None), RemediationRequest.expires_at > now),
    )


def pending_requests(session: Session, now: datetime) -> Sequence[RemediationRequest]:
    """The requests waiting for approval at ``now`` (expired ones left out), oldest first."""
    query = (
        select(RemediationRequest)
        .where(waiting_for_approval(now))
        .order_by(RemediationRequest.created_at, RemediationRequest.id)
    )
    return session.scalars(query).all()


def pending_request_count(session: Session) -> int:
    """How many requests are in ``pending-approval`` (including any past their expiry that
    nobody has marked expired yet)."""
    query = (
        select(func.count())
        .select_from(RemediationRequest)
        .where(RemediationRequest.state == RequestState.PENDING_APPROVAL.value)
    )
    return int(session.scalar(query) or 0)


def remediation_requests(
    session: Session, states: Iterable[str] = ()
) -> Sequence[RemediationRequest]:
    """Remediation requests, newest first; only those in ``states`` when given."""
    query = select(RemediationRequest).order_by(RemediationRequest.id.desc())
    wanted = list(states)
    if wanted:
        query = query.where(RemediationRequest.state.in_(wanted))
    return session.scalars(query).all()


def approval_messages(session: Session, request_id: int) -> list[tuple[str, str]]:
    """(channel, ts) of each Slack message asking to approve request ``request_id``, in the
    order posted; ts is "" while the message is being posted."""
    query = (
        select(SlackMessage.channel, SlackMessage.ts)
        .where(SlackMessage.request_id == request_id, SlackMessage.kind == "approval")
        .order_by(SlackMessage.id)
    )
    return [(channel, ts) for channel, ts in session.execute(query)]
