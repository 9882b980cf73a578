"""Reading the audit trail: what happened to findings (and to the remediation requests made for
them), and the events of a period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from okeguard.audit.models import AuditEvent, RemediationRequest


def finding_history(
    session: Session, fingerprints: Sequence[str], *, limit: int = 40
) -> list[AuditEvent]:
    """The newest ``limit`` audit events about the findings ``fingerprints`` and about the
    remediation requests made for them, oldest first."""
    if not fingerprints:
        return []
    requests = session.scalars(
        select(RemediationRequest.id).where(
            RemediationRequest.finding_fingerprint.in_(fingerprints)
        )
    ).all()
    about = and_(AuditEvent.subject_type == "finding", AuditEvent.subject_id.in_(fingerprints))
    if requests:
        about = or_(
            about,
            and_(
                AuditEvent.subject_type == "remediation_request",
                AuditEvent.subject_id.in_([str(i) for i in requests]),
            ),
        )
    query = select(AuditEvent).where(about).order_by(AuditEvent.id.desc()).limit(limit)
    return list(reversed(session.scalars(query).all()))


def audit_events(session: Session, since: datetime | None = None) -> list[AuditEvent]:
    """Every audit event in chain order (from ``since`` on, when given)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query))
