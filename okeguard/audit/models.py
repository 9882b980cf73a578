"""The audit database: scans, findings, exceptions, remediation requests and the audit events.

SQLAlchemy 2.x typed models. Alembic (``okeguard/migrations``) owns the schema; a change here
needs a new migration, and ``tests/integration/test_migrations.py`` fails on drift.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    or_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from okeguard.audit.types import UTCDateTime, utcnow

# Stable constraint names, so migrations can refer to (and drop) them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class FindingStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    EXEMPT = "exempt"
    ACCEPTED_RISK = "accepted-risk"
    SNOOZED = "snoozed"


class RequestState(StrEnum):
    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending-approval"
    APPROVED = "approved"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Scan(Base):
    """One run of the checks: who or what started it, over which sources, and whether it finished."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_by: Mapped[str] = mapped_column(String(200))
    sources: Mapped[dict[str, Any]]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    complete: Mapped[bool] = mapped_column(Boolean, default=False)


class FindingRecord(Base):
    """A finding over time, keyed by its stable fingerprint (one row however often it is seen)."""

    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint(_one_of("status", FindingStatus), name="status"),
        Index(None, "cluster", "status"),
        # Room for in-page (HOT) updates of last_seen on PostgreSQL: see migration 0002.
        {"postgresql_with": {"fillfactor": 50}},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    check_id: Mapped[str] = mapped_column(String(100))
    cluster: Mapped[str] = mapped_column(String(200))
    resource_kind: Mapped[str] = mapped_column(String(100))
    resource_namespace: Mapped[str | None] = mapped_column(String(253))
    resource_name: Mapped[str] = mapped_column(String(253))
    resource_container: Mapped[str | None] = mapped_column(String(253))
    resource_ocid: Mapped[str | None] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=FindingStatus.OPEN.value)
    message: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    last_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"))
    # snoozed / accepted-risk until then; a recorded scan after it reopens the finding
    status_until: Mapped[datetime | None]


class ExceptionState(StrEnum):
    ACTIVE = "active"
    PENDING_APPROVAL = "pending-approval"
    REJECTED = "rejected"


class ExceptionRule(Base):
    """An exception: a check id plus a resource selector (``None`` parts match anything).

    It applies only while ``active`` (one that needs an approver waits in ``pending-approval``)
    and stops applying by itself once ``expires_at`` has passed: see :meth:`active`.
    """

    __tablename__ = "exceptions"
    __table_args__ = (CheckConstraint(_one_of("state", ExceptionState), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    check_id: Mapped[str] = mapped_column(String(100), index=True)
    cluster: Mapped[str | None] = mapped_column(String(200))
    resource_kind: Mapped[str | None] = mapped_column(String(100))
    resource_namespace: Mapped[str | None] = mapped_column(String(253))
    resource_name: Mapped[str | None] = mapped_column(String(253))
    reason: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(
        String(20), default=ExceptionState.ACTIVE.value, server_default=ExceptionState.ACTIVE.value
    )
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None]

    @classmethod
    def active(cls, now: datetime) -> ColumnElement[bool]:
        """A WHERE clause for the exceptions in force at ``now``: active, and no expiry or later."""
        return and_(
            cls.state == ExceptionState.ACTIVE.value,
            or_(cls.expires_at.is_(None), cls.expires_at > now),
        )


class RemediationRequest(Base):
    """A remediation plan on its way through approval; ``state`` moves by compare-and-set only."""

    __tablename__ = "remediation_requests"
    __table_args__ = (CheckConstraint(_one_of("state", RequestState), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(20), default=RequestState.PROPOSED.value)
    plan: Mapped[dict[str, Any]]
    plan_hash: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(String(200))
    approver: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # The process running, reconciling or rolling back this request, and until when its lease
    # holds: another process may take the request over only after that (compare-and-set).
    owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]


class AuditEvent(Base):
    """One link of the hash chain. Rows are only ever appended, by :func:`append_event`.

    ``id`` is assigned by the appender (previous id + 1) rather than by a sequence, so ids are
    contiguous and a deleted row shows as a gap; it is part of the hashed record.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON text, exactly as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of ``hash`` under the audit key (kept outside the database), when one is set
    mac: Mapped[str | None] = mapped_column(String(64))


class ClusterPosture(Base):
    """One cluster's posture as one recorded scan saw it: the trend chart and score changes."""

    __tablename__ = "cluster_posture"
    __table_args__ = (Index(None, "cluster", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    cluster: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    critical: Mapped[int] = mapped_column(Integer, default=0)
    high: Mapped[int] = mapped_column(Integer, default=0)
    medium: Mapped[int] = mapped_column(Integer, default=0)
    low: Mapped[int] = mapped_column(Integer, default=0)
    info: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[int] = mapped_column(Integer)
    complete: Mapped[bool] = mapped_column(Boolean, default=True)


class SlackMessage(Base):
    """A message the bot posted and may update later (``chat.update``): scan posts, approval
    requests. ``kind`` says which; ``request_id`` ties approval messages to their request."""

    __tablename__ = "slack_messages"
    __table_args__ = (Index(None, "request_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("remediation_requests.id"))
    channel: Mapped[str] = mapped_column(String(50))
    ts: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlackDelivery(Base):
    """A Slack delivery already handled (its key: an event id, or the action's trigger/ts), so a
    retried delivery of the same event is processed once."""

    __tablename__ = "slack_deliveries"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DigestRecord(Base):
    """A digest sent to a channel, with the scores it reported (the next digest's baseline)."""

    __tablename__ = "digests"
    __table_args__ = (Index(None, "channel", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(50))
    sent_at: Mapped[datetime]
    scores: Mapped[dict[str, Any]]  # cluster -> score
