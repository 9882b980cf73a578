"""Reading exceptions, and saying what one covers: in words for people (Slack, digests) and as
``key=value`` pairs for tables (the command line)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from okeguard.audit.models import ExceptionRule, ExceptionState
from okeguard.audit.stores import exception_selector


def listed_exceptions(
    session: Session, now: datetime, *, every: bool = False, limit: int | None = None
) -> Sequence[ExceptionRule]:
    """The exceptions in force at ``now`` and those waiting for an approver (not expired), by
    id; with ``every``, all of them (expired and rejected too)."""
    query = select(ExceptionRule).order_by(ExceptionRule.id)
    if not every:
        waiting = (ExceptionRule.state == ExceptionState.PENDING_APPROVAL.value) & (
            ExceptionRule.expires_at > now
        )
        query = query.where(or_(ExceptionRule.active(now), waiting))
    if limit is not None:
        query = query.limit(limit)
    return session.scalars(query).all()


def expiring_exceptions(
    session: Session, now: datetime, within: timedelta
) -> Sequence[ExceptionRule]:
    """The exceptions that expire after ``now`` and within ``within`` of it, soonest first."""
    query = (
        select(ExceptionRule)
        .where(ExceptionRule.expires_at > now, ExceptionRule.expires_at <= now + within)
        .order_by(ExceptionRule.expires_at, ExceptionRule.id)
    )
    return session.scalars(query).all()


def exception_count(session: Session) -> int:
    """How many exceptions are recorded, in any state."""
    return int(session.scalar(select(func.count()).select_from(ExceptionRule)) or 0)


def exception_scope(rule: ExceptionRule) -> str:
    """What an exception covers, for people: ``cluster shop-prod, Deployment shop/web``,
    ``namespace ops``, ``every DaemonSet``, or ``everywhere``."""
    kind, namespace, name = rule.resource_kind, rule.resource_namespace, rule.resource_name
    if name:
        resource = f"{kind} {namespace}/{name}" if namespace else f"{kind or ''} {name}"
    elif namespace:
        resource = f"{kind} in namespace {namespace}" if kind else f"namespace {namespace}"
    else:
        resource = f"every {kind}" if kind else ""
    parts = [f"cluster {rule.cluster}" if rule.cluster else "", resource.strip()]
    return ", ".join(p for p in parts if p) or "everywhere"


def exception_pairs(rule: ExceptionRule) -> str:
    """What an exception covers, for tables: ``cluster=shop-prod namespace=legacy``, or
    ``everything`` (the selector its audit events record, without the empty parts)."""
    parts = [
        f"{key}={value}" for key, value in exception_selector(rule).items() if value is not None
    ]
    return " ".join(parts) or "everything"
