"""The append-only, hash-chained audit trail.

Each event's hash is SHA-256 over the previous event's hash followed by the canonical JSON of the
event itself (id, time, actor, action, subject, payload). Editing, deleting, inserting or
reordering rows therefore breaks either a hash or a link, and :func:`verify_chain` names the
first row where it breaks. Appends take a lock first so concurrent writers never fork the chain.

With an audit key (``keys.py``) each row also stores ``mac = HMAC-SHA256(key, hash)``: a row
forged, or a whole chain rebuilt, by someone who can write to the database but has not the key
then fails verification. Without a key only hashes and links are checked, which a rebuilt chain
passes; and neither shows that the newest rows were deleted: anchors (``anchors.py``) do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

from okeguard.audit.bulk import bulk_insert
from okeguard.audit.keys import AuditKeyError, KeyRing, MacCheck, audit_keys
from okeguard.audit.models import AuditEvent
from okeguard.audit.records import (
    GENESIS_HASH,
    EventRow,
    RecordFields,
    canonical_json,
    event_hash,
    event_record,
    hash_text,
    parsed_record_json,
    record_json,
    string_keys,
    timestamp,
)
from okeguard.audit.types import utcnow

# Arbitrary constant naming the PostgreSQL advisory lock that serialises appends.
AUDIT_LOCK_KEY = 0x6F6B6567_75617264 & 0x7FFFFFFFFFFFFFFF

Subject = tuple[str, str | int]


def lock_chain(session: Session) -> None:
    """Take the chain's write lock for the rest of the session's transaction."""
    # SQLite: the engine starts every transaction with BEGIN IMMEDIATE (see db.make_engine), so
    # this transaction already holds the only write lock. PostgreSQL: a transaction-scoped
    # advisory lock, released by the commit or rollback.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


def _locked_head(session: Session, keys: KeyRing) -> tuple[int, str]:
    """Lock the chain and read its head (id, hash); refuse to extend a keyed chain unkeyed."""
    lock_chain(session)
    head = session.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.mac)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if head is None:
        return 0, GENESIS_HASH
    if head[2] is not None and not keys.keyed:
        # Fail closed: an unkeyed row would break the keyed chain's verification.
        raise AuditKeyError(
            "the audit chain is keyed (its newest row has a MAC) but this process has no audit "
            "key: set OKEGUARD_AUDIT_KEY or OKEGUARD_AUDIT_KEY_FILE"
        )
    return int(head[0]), str(head[1])


def append_event(
    session: Session,
    actor: str,
    action: str,
    subject: Subject,
    payload: Mapping[str, Any],
    *,
    at: datetime | None = None,
    keys: KeyRing | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the session's current transaction; return it.

    Does not commit: the caller commits the change and its event together, so neither exists
    without the other. ``payload`` must be JSON-serialisable and must never hold a secret value.
    The row is MACed under ``keys`` (default: this process's :func:`audit_keys`) when keyed.
    """
    keys = audit_keys() if keys is None else keys
    prev_id, prev_hash = _locked_head(session, keys)
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
    event.mac = keys.sign(event.hash)
    session.add(event)
    session.flush()
    return event


EventSpec = tuple[str, str, Subject, Mapping[str, Any]]  # actor, action, subject, payload


def append_events(
    session: Session,
    events: Sequence[EventSpec],
    *,
    at: datetime | None = None,
    keys: KeyRing | None = None,
) -> int:
    """Append many events at once (one lock, one head read, one bulk INSERT); return how many.

    The result is exactly the chain that calling :func:`append_event` once per event would
    build (MACs included); recording a scan of tens of thousands of findings uses this. Does
    not commit.
    """
    if not events:
        return 0
    keys = audit_keys() if keys is None else keys
    session.flush()
    prev_id, prev_hash = _locked_head(session, keys)
    when = (at or utcnow()).astimezone(UTC)
    stamp = timestamp(when)
    rows = []
    for actor, action, (subject_type, subject_id), payload in events:
        prev_id += 1
        text_payload = canonical_json(dict(payload))
        fields = RecordFields(
            prev_id, stamp, actor, action, subject_type, str(subject_id), text_payload
        )
        record = record_json(fields) if string_keys(payload) else parsed_record_json(fields)
        digest = hash_text(prev_hash, record)
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
                "mac": keys.sign(digest),
            }
        )
        prev_hash = digest
    bulk_insert(session, cast(Table, AuditEvent.__table__), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first row where the chain does not verify, and what is wrong with it."""

    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit event {self.event_id}: {self.problem}"


MAC_MISSING = "MAC missing: row written without the audit key, or forged"
MAC_WRONG = (
    "MAC does not match: row forged, its MAC copied from another row, or written under a key "
    "that is not configured"
)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What verifying the whole chain found.

    ``broken`` is the first bad row (hash, link or, when keyed, MAC). Hashes and links are
    checked up to the first break; MACs are counted over the rows that link up.
    """

    length: int
    head_id: int  # the newest row's id; 0 for an empty chain
    head_hash: str  # the newest row's hash; GENESIS_HASH for an empty chain
    keyed: bool
    broken: ChainBreak | None
    link_break: ChainBreak | None = None  # the first hash or link problem, MACs aside
    macs_missing: int = 0
    macs_wrong: int = 0
    macs_previous: int = 0  # rows whose MAC verifies under the previous key only
    # every row without a MAC comes before the first row with one: rows older than the key
    unkeyed_prefix: bool = False

    @property
    def ok(self) -> bool:
        return self.broken is None

    def describe(self) -> str | None:
        """The problem as one line (with how many rows share a MAC problem); None when OK."""
        if self.broken is None:
            return None
        counts = []
        if self.macs_missing > 1 or (self.macs_missing and self.macs_wrong):
            counts.append(f"{self.macs_missing} rows have no MAC")
        if self.macs_wrong > 1 or (self.macs_wrong and self.macs_missing):
            counts.append(f"{self.macs_wrong} rows have a wrong MAC")
        line = f"audit chain broken: {self.broken}"
        if counts:
            line += f" ({', '.join(counts)})"
        if self.unkeyed_prefix and not self.macs_wrong and self.broken.problem == MAC_MISSING:
            line += (
                "; if the rows without a MAC were written before the audit key was set, check "
                "them and attest them with 'okeguard audit seal'"
            )
        return line


def check_chain(session: Session, keys: KeyRing | None = None) -> ChainReport:
    """Recompute every hash and link in id order, and every MAC when keyed; return a report.

    Per row: its id follows the previous one (a gap means a deleted row, a jump an inserted
    one), its ``prev_hash`` equals the previous row's hash (reordered or inserted rows break
    this), its stored hash matches its content (an edited row) and, with a key (default: this
    process's :func:`audit_keys`), its MAC is the key's MAC of its hash (a forged row, a
    rebuilt chain, a MAC copied from another row). Deleting the newest rows shows in none of
    these: compare the head with an anchor kept elsewhere (``anchors.py``).
    """
    keys = audit_keys() if keys is None else keys
    expected_id, prev_hash = 1, GENESIS_HASH
    head_id, head_hash = 0, GENESIS_HASH
    length, broken, mac_break = 0, None, None
    missing = wrong = previous = 0
    last_missing = first_macked = 0
    # Columns, not ORM objects (a third of the time), streamed: memory stays flat at any length.
    # Reads only: in a read-only session (``db.session_factory``) it never blocks an appender.
    columns = [getattr(AuditEvent, c.key) for c in AuditEvent.__table__.columns]
    rows: Any = session.execute(
        select(*columns).order_by(AuditEvent.id).execution_options(yield_per=2000)
    )
    for event in rows:
        length += 1
        head_id, head_hash = event.id, event.hash
        if broken is not None:
            continue  # counting only: nothing after a broken link can be trusted
        broken = _link_problem(event, expected_id, prev_hash)
        if broken is not None:
            continue
        if keys.keyed:
            verdict = keys.check(event.hash, event.mac)
            if verdict is MacCheck.MISSING:
                missing += 1
                last_missing = event.id
                mac_break = mac_break or ChainBreak(event.id, MAC_MISSING)
            else:
                first_macked = first_macked or event.id
            if verdict is MacCheck.WRONG:
                wrong += 1
                mac_break = mac_break or ChainBreak(event.id, MAC_WRONG)
            elif verdict is MacCheck.PREVIOUS:
                previous += 1
        expected_id, prev_hash = event.id + 1, event.hash
    first = min(
        (b for b in (broken, mac_break) if b is not None),
        key=lambda b: b.event_id,
        default=None,
    )
    return ChainReport(
        length=length,
        head_id=head_id,
        head_hash=head_hash,
        keyed=keys.keyed,
        broken=first,
        link_break=broken,
        macs_missing=missing,
        macs_wrong=wrong,
        macs_previous=previous,
        unkeyed_prefix=missing > 0 and (first_macked == 0 or last_missing < first_macked),
    )


def _link_problem(event: EventRow, expected_id: int, prev_hash: str) -> ChainBreak | None:
    if event.id != expected_id:
        what = "missing (deleted?)" if event.id > expected_id else "duplicated"
        return ChainBreak(event.id, f"expected id {expected_id} here: row {expected_id} is {what}")
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
    return None


def verify_chain(session: Session, keys: KeyRing | None = None) -> ChainBreak | None:
    """The first bad row of the chain (see :func:`check_chain`), or None if every row verifies."""
    return check_chain(session, keys).broken


def chain_length(session: Session) -> int:
    """How many events the chain holds."""
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def chain_head(session: Session) -> AuditEvent | None:
    """The newest event, whose hash stands for the whole chain."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).first()
