"""Exceptions and finding status changes, with their audit events; UTC round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import select

from okeguard.audit.chain import verify_chain
from okeguard.audit.models import AuditEvent, FindingRecord, Scan
from okeguard.audit.stores import active_exceptions, add_exception, set_finding_status
from tests.integration.database import Database

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_expired_exceptions_stop_applying_by_themselves(database: Database) -> None:
    with database.sessions.begin() as session:
        add_exception(
            session,
            check_id="k8s.a",
            reason="vendor chart",
            author="alice",
            namespace="shop",
            expires_at=NOW + timedelta(days=1),
        )
        add_exception(session, check_id="k8s.b", reason="forever", author="alice")
    with database.sessions() as session:
        assert [e.check_id for e in active_exceptions(session, NOW)] == ["k8s.a", "k8s.b"]
        later = NOW + timedelta(days=2)
        assert [e.check_id for e in active_exceptions(session, later)] == ["k8s.b"]
        actions = list(session.scalars(select(AuditEvent.action)))
        assert actions == ["exception.added", "exception.added"]
        assert verify_chain(session) is None


def test_timestamps_come_back_aware_and_in_utc(database: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    started = datetime(2026, 11, 20, 14, 0, 0, 123456, tzinfo=plus_two)
    with database.sessions.begin() as session:
        session.add(Scan(started_by="cli:alice", sources={"demo": True}, started_at=started))
    with database.sessions() as session:
        scan = session.scalars(select(Scan)).one()
        assert scan.started_at == started and scan.started_at.utcoffset() == timedelta(0)
        assert scan.sources == {"demo": True} and scan.complete is False


def test_a_finding_status_change_is_audited(database: Database) -> None:
    with database.sessions.begin() as session:
        session.add(
            FindingRecord(
                fingerprint="a" * 64,
                check_id="k8s.x",
                cluster="c",
                resource_kind="Deployment",
                resource_namespace="shop",
                resource_name="web",
                severity="high",
                message="m",
                first_seen=NOW,
                last_seen=NOW,
            )
        )
    with database.sessions.begin() as session:
        assert set_finding_status(session, "a" * 64, "accepted-risk", "alice", reason="legacy")
        assert not set_finding_status(session, "b" * 64, "resolved", "alice")
    with database.sessions() as session:
        finding = session.scalars(select(FindingRecord)).one()
        assert finding.status == "accepted-risk"
        event = session.scalars(select(AuditEvent)).one()
        assert (event.action, event.subject_id) == ("finding.status", "a" * 64)
