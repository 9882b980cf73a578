"""Exceptions under the same governance as fixes: bounded, and fleet-wide ones approved.

- every exception expires, at most ``exceptions.max_days`` from now;
- one whose selector leaves both the cluster and the resource name open (``*``) waives a
  check across the fleet: it waits in ``pending-approval`` until an approver (the same rule as
  fixes, :mod:`okeguard.approval_policy`, in scope of every cluster) other than its author
  approves it — unless an approver records it, when it is active at once;
- approve and reject move it by compare-and-set, so two approvals act once;
- every refusal is audited (``exception.refused``) with who, what and why, and raised as
  :class:`ExceptionRefused` carrying a one-line message.

The Slack bot and the command line both call these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from okeguard.approval_policy import (
    EVERY_CLUSTER,
    ApprovalRules,
    Members,
    Person,
    approval_refusal,
    no_groups,
)
from okeguard.audit.chain import append_event
from okeguard.audit.models import ExceptionRule, ExceptionState
from okeguard.audit.stores import add_exception, decide_exception, remove_exception
from okeguard.audit.types import utcnow
from okeguard.config import ExceptionsConfig
from okeguard.errors import OkeguardError
from okeguard.waivers import Waiver as Waiver  # defined there, with the ignore file's waivers
from okeguard.waivers import selector_part as _part

MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)  # what an expiry too large to compute becomes


class ExceptionRefused(OkeguardError):
    """An exception change was refused (too long, not an approver, their own…); audited."""


def refuse(
    sessions: sessionmaker[Session],
    actor: str,
    attempted: str,
    reason: str,
    exception_id: int | None = None,
) -> ExceptionRefused:
    """Audit a refusal (``exception.refused``) and return the error to raise."""
    subject = ("exception", str(exception_id)[:40] if exception_id is not None else "new")
    with sessions.begin() as session:
        append_event(
            session, actor, "exception.refused", subject, {"attempted": attempted, "reason": reason}
        )
    return ExceptionRefused(reason)


def latest_expiry(settings: ExceptionsConfig, now: datetime) -> datetime:
    """The last instant an exception made at ``now`` may run to: the end (UTC) of the day
    ``exceptions.max_days`` from now."""
    return datetime.combine((now + timedelta(days=settings.max_days)).date(), time.max, UTC)


def expiry_problem(
    expires_at: datetime | None, settings: ExceptionsConfig, now: datetime
) -> str | None:
    """Why ``expires_at`` is not an acceptable expiry (None: it is)."""
    limit = f"at most {settings.max_days} days (exceptions.max_days)"
    if expires_at is None:
        return f"an exception must expire, {limit}"
    if expires_at <= now:
        return "the expiry is in the past"
    latest = latest_expiry(settings, now)
    if expires_at > latest:
        return f"an exception lasts {limit}: choose an expiry by {latest:%Y-%m-%d}"
    return None


def add_governed(
    sessions: sessionmaker[Session],
    waiver: Waiver,
    person: Person,
    rules: ApprovalRules,
    settings: ExceptionsConfig,
    *,
    members: Members = no_groups,
    now: datetime | None = None,
) -> ExceptionRule:
    """Record ``waiver`` for ``person``: active, or ``pending-approval`` when it is fleet-wide
    and they are not an approver of every cluster. Raises :class:`ExceptionRefused`."""
    now = now or utcnow()
    problem = expiry_problem(waiver.expires_at, settings, now)
    if problem:
        raise refuse(sessions, person.actor, "add", problem)
    state, approved_by = ExceptionState.ACTIVE, None
    if waiver.fleet_wide:
        if approval_refusal(person, rules, cluster=EVERY_CLUSTER, members=members) is None:
            approved_by = person.actor  # an approver's own waiver needs no second approver
        else:
            state = ExceptionState.PENDING_APPROVAL
    with sessions.begin() as session:
        rule = add_exception(
            session,
            check_id=waiver.check_id,
            reason=waiver.reason,
            author=person.actor,
            cluster=_part(waiver.cluster),
            kind=_part(waiver.kind),
            namespace=_part(waiver.namespace),
            name=_part(waiver.name),
            expires_at=waiver.expires_at,
            state=state,
            approved_by=approved_by,
        )
        session.flush()
        session.refresh(rule)
        session.expunge(rule)
    return rule


def _load(
    sessions: sessionmaker[Session], exception_id: int, actor: str, what: str
) -> ExceptionRule:
    if not 1 <= exception_id <= MAX_ID:
        raise refuse(sessions, actor, what, f"no exception {exception_id}", exception_id)
    with sessions() as session:
        rule = session.get(ExceptionRule, exception_id)
        if rule is not None:
            session.expunge(rule)
    if rule is None:  # refused once the read is over: SQLite writes wait for open reads
        raise refuse(sessions, actor, what, f"no exception {exception_id}", exception_id)
    return rule


def decide_governed(
    sessions: sessionmaker[Session],
    exception_id: int,
    person: Person,
    rules: ApprovalRules,
    *,
    approve: bool,
    reason: str | None = None,
    members: Members = no_groups,
    now: datetime | None = None,
) -> ExceptionRule:
    """Approve or reject a pending exception as ``person`` (an approver in scope of its
    cluster, or of every cluster when it names none; not its author, to approve).
    Raises :class:`ExceptionRefused`."""
    now = now or utcnow()
    what = "approve" if approve else "reject"
    rule = _load(sessions, exception_id, person.actor, what)
    if rule.state != ExceptionState.PENDING_APPROVAL.value:
        problem: str | None = f"exception {exception_id} is {rule.state}, not pending approval"
    elif rule.expires_at is not None and rule.expires_at <= now:
        problem = f"exception {exception_id} expired before it was approved"
    else:
        problem = approval_refusal(
            person,
            rules,
            cluster=rule.cluster or EVERY_CLUSTER,
            requester=rule.author if approve else None,
            members=members,
        )
    if problem:
        raise refuse(sessions, person.actor, what, problem, exception_id)
    with sessions.begin() as session:
        won = decide_exception(session, exception_id, person.actor, approve=approve, reason=reason)
    if not won:
        raise refuse(sessions, person.actor, what, "someone else decided it first", exception_id)
    return _load(sessions, exception_id, person.actor, what)


def remove_governed(
    sessions: sessionmaker[Session], exception_id: int, person: Person
) -> ExceptionRule:
    """Remove an exception (anyone allowed to change exceptions may: it only tightens).
    Raises :class:`ExceptionRefused` when there is no such exception."""
    if not 1 <= exception_id <= MAX_ID:
        raise refuse(sessions, person.actor, "remove", f"no exception {exception_id}", exception_id)
    with sessions.begin() as session:
        rule = remove_exception(session, exception_id, person.actor)
        if rule is not None:
            session.expunge(rule)
    if rule is None:
        raise refuse(sessions, person.actor, "remove", f"no exception {exception_id}", exception_id)
    return rule
