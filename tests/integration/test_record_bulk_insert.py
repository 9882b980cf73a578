"""New findings are inserted below SQLAlchemy's work per row (``COPY`` on PostgreSQL, the
driver's executemany on SQLite): the rows stored must be the ones SQLAlchemy would store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Text, cast, insert, select

from okeguard.audit.chain import append_event, append_events, check_chain
from okeguard.audit.keys import AuditKey, KeyRing
from okeguard.audit.models import AuditEvent, FindingRecord, Scan
from okeguard.audit.recording import _insert_findings
from okeguard.audit.records import canonical_json
from tests.integration.database import Database

# Not UTC, and with microseconds: both must come out as SQLAlchemy's UTCDateTime stores them.
WHEN = datetime(2026, 12, 5, 10, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2)))


def _rows(prefix: str, scan_id: int, count: int = 300) -> list[dict[str, Any]]:
    return [
        {
            "fingerprint": f"{prefix}{i:031d}",
            "check_id": "k8s.run-as-root",
            "cluster": "prod",
            "resource_kind": "Deployment",
            "resource_namespace": None if i % 7 == 0 else f"ns-{i % 5}",
            "resource_name": f"app-{i}",
            "resource_container": None if i % 3 else "main",
            "resource_ocid": None,
            "severity": "high",
            "status": "open" if i % 2 else "exempt",
            "message": f"line one\ttab 'quoted' \"double\" \\ back-slash, ünïcode {i}\nline two",
            "first_seen": WHEN,
            "last_seen": WHEN + timedelta(seconds=i % 2),
            "last_scan_id": scan_id,
        }
        for i in range(count)
    ]


def _stored(database: Database, prefix: str) -> list[dict[str, Any]]:
    """The rows whose fingerprint starts with ``prefix``, in order, without id and fingerprint."""
    with database.engine.connect() as connection:
        as_stored = cast(FindingRecord.__table__.c.first_seen, Text).label("first_seen_text")
        rows = connection.execute(
            select(FindingRecord.__table__, as_stored)  # the text, not only the parsed value
            .where(FindingRecord.fingerprint.startswith(prefix))
            .order_by(FindingRecord.fingerprint)
        )
        return [
            {k: v for k, v in row._mapping.items() if k not in ("id", "fingerprint")}
            for row in rows
        ]


def test_bulk_inserted_findings_equal_those_sqlalchemy_inserts(database: Database) -> None:
    with database.sessions.begin() as session:
        scan = Scan(started_by="t", sources={}, started_at=WHEN, finished_at=WHEN, complete=True)
        session.add(scan)
        session.flush()
        session.connection().execute(insert(FindingRecord.__table__), _rows("a", scan.id))
        _insert_findings(session, _rows("b", scan.id))
    through_sqlalchemy, bulk = _stored(database, "a"), _stored(database, "b")
    assert len(bulk) == 300
    assert bulk == through_sqlalchemy
    assert bulk[0]["first_seen"] == WHEN.astimezone(UTC)  # read back in UTC


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it(database: Database) -> None:
    with database.sessions() as session, session.begin():
        scan = Scan(started_by="t", sources={}, started_at=WHEN, finished_at=WHEN, complete=True)
        session.add(scan)
        session.flush()
        rows = _rows("c", scan.id, 2)
        rows[1]["first_seen"] = datetime(2026, 1, 1)
        with pytest.raises(ValueError, match="naive datetime"):
            _insert_findings(session, rows)
        session.rollback()


def test_bulk_appended_audit_events_equal_those_appended_one_by_one(database: Database) -> None:
    payloads = [
        {"i": i, "text": "tab\t'q' \"d\" \\ ünï\nline", "nested": {"b": [1, None, 2.5], "a": True}}
        for i in range(4)
    ]
    payloads[3]["numbered"] = {10: "a", 9: "b"}  # keys that read back as strings, sorted anew
    keys = KeyRing(AuditKey("k" * 32))
    with database.sessions.begin() as session:
        for i, payload in enumerate(payloads[:2]):
            append_event(session, "bob", "test.one", ("x", i), payload, at=WHEN, keys=keys)
        append_events(
            session,
            [("bob", "test.one", ("x", i), p) for i, p in enumerate(payloads[2:], 2)],
            at=WHEN,
            keys=keys,
        )
    with database.engine.connect() as connection:
        table = AuditEvent.__table__
        rows = connection.execute(
            select(table.c.id, table.c.payload, cast(table.c.at, Text), table.c.at).order_by(
                table.c.id
            )
        ).all()
    one_by_one, bulk = rows[:2], rows[2:]
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert {(r[2], r[3]) for r in bulk} == {(one_by_one[0][2], one_by_one[0][3])}
    assert [r[1] for r in bulk] == [canonical_json(p) for p in payloads[2:]]
    with database.sessions() as session:
        report = check_chain(session, keys)
    assert report.ok and report.keyed and report.length == 4
