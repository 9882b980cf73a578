"""The hash chain on SQLite and PostgreSQL: appends, atomicity, and tampering with raw SQL."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from sqlalchemy import select, text

from okeguard.audit.chain import append_event, chain_length, verify_chain
from okeguard.audit.models import AuditEvent, RemediationRequest
from okeguard.audit.records import GENESIS_HASH, canonical_json, event_hash
from okeguard.audit.stores import create_request
from tests.integration.database import Database


def _append(database: Database, count: int) -> None:
    with database.sessions.begin() as session:
        for n in range(count):
            append_event(session, "alice", "test.event", ("thing", n), {"n": n, "note": "ünï"})


def _sql(database: Database, statement: str, **params: Any) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(statement), params)


def _row(database: Database, event_id: int) -> dict[str, Any]:
    with database.engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE id = :id"), {"id": event_id})
        return dict(row.mappings().one())


def _verify(database: Database) -> Any:
    with database.sessions() as session:
        return verify_chain(session)


def test_appended_events_link_and_verify(database: Database) -> None:
    _append(database, 5)
    with database.sessions() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        assert [e.id for e in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        assert events[0].at.tzinfo is not None
        assert events[2].payload == canonical_json({"note": "ünï", "n": 2})
        assert verify_chain(session) is None
        assert chain_length(session) == 5


def test_a_rolled_back_change_leaves_neither_row_nor_event(database: Database) -> None:
    with pytest.raises(RuntimeError), database.sessions.begin() as session:
        create_request(session, plan={"ops": []}, requester="alice")
        raise RuntimeError("abort")
    with database.sessions() as session:
        assert session.scalars(select(RemediationRequest)).first() is None
        assert chain_length(session) == 0
    _append(database, 1)
    assert _verify(database) is None


def test_concurrent_appenders_never_fork_the_chain(database: Database) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(5):
                with database.sessions.begin() as session:
                    append_event(session, f"w{n}", "test.concurrent", ("w", n), {"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.sessions() as session:
        assert chain_length(session) == 30
        assert verify_chain(session) is None


def test_an_edited_row_is_named(database: Database) -> None:
    _append(database, 5)
    _sql(database, "UPDATE audit_events SET actor = 'mallory' WHERE id = 3")
    broken = _verify(database)
    assert broken is not None and broken.event_id == 3 and "edited" in broken.problem


def test_an_edited_payload_is_named(database: Database) -> None:
    _append(database, 5)
    _sql(database, "UPDATE audit_events SET payload = :p WHERE id = 4", p='{"n":99}')
    broken = _verify(database)
    assert broken is not None and broken.event_id == 4


def test_a_deleted_row_is_named(database: Database) -> None:
    _append(database, 5)
    _sql(database, "DELETE FROM audit_events WHERE id = 2")
    broken = _verify(database)
    assert broken is not None and broken.event_id == 3 and "row 2 is missing" in broken.problem


def test_a_forged_row_inserted_in_the_middle_is_named(database: Database) -> None:
    _append(database, 5)
    # Make room at id 3 (in two steps: PostgreSQL checks the primary key row by row).
    _sql(database, "UPDATE audit_events SET id = id + 1000 WHERE id >= 3")
    _sql(database, "UPDATE audit_events SET id = id - 999 WHERE id >= 1000")
    prev = _row(database, 2)
    forged = {
        "id": 3,
        "at": "2026-11-20T12:00:00.000000+00:00",
        "actor": "mallory",
        "action": "test.event",
        "subject_type": "thing",
        "subject_id": "x",
        "payload": {},
    }
    # The forger can even compute a valid hash for their own row; the next link still breaks.
    _sql(
        database,
        "INSERT INTO audit_events (id, at, actor, action, subject_type, subject_id, payload,"
        " prev_hash, hash) VALUES (3, :at, 'mallory', 'test.event', 'thing', 'x', '{}',"
        " :prev, :hash)",
        at=prev["at"],
        prev=prev["hash"],
        hash=event_hash(prev["hash"], {**forged, "at": _iso(prev["at"])}),
    )
    broken = _verify(database)
    assert broken is not None and broken.event_id == 4 and "prev_hash" in broken.problem


def _iso(value: Any) -> str:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).isoformat(timespec="microseconds"))


def test_a_row_appended_by_sql_with_a_made_up_link_is_named(database: Database) -> None:
    _append(database, 3)
    last = _row(database, 3)
    _sql(
        database,
        "INSERT INTO audit_events (id, at, actor, action, subject_type, subject_id, payload,"
        " prev_hash, hash) VALUES (4, :at, 'mallory', 'x', 'x', 'x', '{}', :prev, :hash)",
        at=last["at"],
        prev="f" * 64,
        hash="e" * 64,
    )
    broken = _verify(database)
    assert broken is not None and broken.event_id == 4


def test_a_row_inserted_with_an_unused_id_is_named(database: Database) -> None:
    _append(database, 3)
    last = _row(database, 3)
    _sql(
        database,
        "INSERT INTO audit_events (id, at, actor, action, subject_type, subject_id, payload,"
        " prev_hash, hash) VALUES (7, :at, 'mallory', 'x', 'x', 'x', '{}', :prev, :hash)",
        at=last["at"],
        prev=last["hash"],
        hash="e" * 64,
    )
    broken = _verify(database)
    assert broken is not None and broken.event_id == 7 and "row 4 is missing" in broken.problem


def test_reordered_rows_are_named(database: Database) -> None:
    _append(database, 5)
    _sql(database, "UPDATE audit_events SET id = -2 WHERE id = 2")
    _sql(database, "UPDATE audit_events SET id = 2 WHERE id = 3")
    _sql(database, "UPDATE audit_events SET id = 3 WHERE id = -2")
    broken = _verify(database)
    assert broken is not None and broken.event_id == 2 and "prev_hash" in broken.problem
