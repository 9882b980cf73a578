"""The append-only, hash-chained audit trail.

Each event's hash is SHA-256 over the previous event's hash followed by the canonical JSON of the
event itself (id, time, actor, action, subject, payload). Editing, deleting, inserting or
reordering rows therefore breaks either a hash or a link, and :func:`verify_chain` names the
first row where it breaks. Appends take a lock first so concurrent writers never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from okeguard.audit.models import AuditEvent
from okeguard.audit.types import utcnow

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the PostgreSQL advisory lock that serialises appends.
AUDIT_LOCK_KEY = 0x6F6B6567_75617264 & 0x7FFFFFFFFFFFFFFF

Subject = tuple[str, str | int]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, compact separators and no ASCII escaping (hashed as UTF-8)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def event_record(event: AuditEvent) -> dict[str, Any]:
    """The hashed content of an event, as a JSON-ready dict (payload parsed)."""
    return {
        "id": event.id,
        "at": _timestamp(event.at),
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "payload": json.loads(event.payload),
    }


def event_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over ``prev_hash`` followed by the canonical JSON of ``record``."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_json(record).encode("utf-8"))
    return digest.hexdigest()


def _lock_chain(session: Session) -> None:
    # SQLite: the engine starts every transaction with BEGIN IMMEDIATE (see db.make_engine), so
    # this transaction already holds the only write lock. PostgreSQL: a transaction-scoped
    # advisory lock, released by the commit or rollback.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def append_event(
    session: Session,
    actor: str,
    action: str,
    subject: Subject,
    payload: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the session's current transaction; return it.

    Does not commit: the caller commits the change and its event together, so neither exists
    without the other. ``payload`` must be JSON-serialisable and must never hold a secret value.
    """
    _lock_chain(session)
    head = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    prev_id, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
    subject_type, subject_id = subject
    event = AuditEvent(
        id=prev_id + 1,
        at=(at or utcnow()).astimezone(UTC),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        payload=canonical_json(dict(payload)),
        prev_hash=prev_hash,
    )
    event.hash = event_hash(prev_hash, event_record(event))
    session.add(event)
    session.flush()
    return event


EventSpec = tuple[str, str, Subject, Mapping[str, Any]]  # actor, action, subject, payload


def append_events(
    session: Session, events: Sequence[EventSpec], *, at: datetime | None = None
) -> int:
    """Append many events at once (one lock, one head read, one bulk INSERT); return how many.

    The result is exactly the chain that calling :func:`append_event` once per event would
    build; recording a scan of tens of thousands of findings uses this. Does not commit.
    """
    if not events:
        return 0
    session.flush()
    _lock_chain(session)
    head = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    prev_id, prev_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
    when = (at or utcnow()).astimezone(UTC)
    stamp = _timestamp(when)
    rows = []
    for actor, action, (subject_type, subject_id), payload in events:
        prev_id += 1
        text_payload = canonical_json(dict(payload))
        record = {
            "id": prev_id,
            "at": stamp,
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "payload": json.loads(text_payload),
        }
        digest = event_hash(prev_hash, record)
        rows.append(
            {
                "id": prev_id,
                "at": when,
                "actor": actor,
                "action": action,
                "subject_type": subject_type,
                "subject_id": str(subject_id),
                "payload": text_payload,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        prev_hash = digest
    for start in range(0, len(rows), 5000):
        session.execute(insert(AuditEvent), rows[start : start + 5000])
    return len(rows)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first row where the chain does not verify, and what is wrong with it."""

    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit event {self.event_id}: {self.problem}"


def verify_chain(session: Session) -> ChainBreak | None:
    """Recompute every hash and link in id order; the first bad row, or None if all verify.

    Checks, per row: its id follows the previous one (a gap means a deleted row, a jump an
    inserted one), its ``prev_hash`` equals the previous row's hash (reordered or inserted rows
    break this), and its stored hash matches its content (an edited row). Deleting the newest
    rows cannot be seen from the chain alone; compare :func:`chain_head` with a copy kept
    elsewhere for that.
    """
    expected_id, prev_hash = 1, GENESIS_HASH
    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=1000)
    )
    for event in rows:
        if event.id != expected_id:
            what = "missing (deleted?)" if event.id > expected_id else "duplicated"
            return ChainBreak(
                event.id, f"expected id {expected_id} here: row {expected_id} is {what}"
            )
        if event.prev_hash != prev_hash:
            return ChainBreak(
                event.id,
                f"prev_hash does not match the hash of row {event.id - 1} "
                "(rows inserted, deleted or reordered)",
            )
        try:
            actual = event_hash(prev_hash, event_record(event))
        except ValueError:
            return ChainBreak(event.id, "payload is not valid JSON (row edited)")
        if actual != event.hash:
            return ChainBreak(event.id, "hash does not match the row's content (row edited)")
        expected_id, prev_hash = event.id + 1, event.hash
    return None


def chain_length(session: Session) -> int:
    """How many events the chain holds."""
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def chain_head(session: Session) -> AuditEvent | None:
    """The newest event, whose hash stands for the whole chain."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).first()
