"""What an audit event's hash covers: the canonical JSON of its record.

A record is the event's id, time, actor, action, subject and payload (:func:`event_record`); its
hash is SHA-256 over the previous event's hash followed by that JSON (:func:`event_hash`).
Verification builds the record from a stored row, parsing the stored payload. A bulk append
builds the same text around the payload's own canonical JSON (:func:`record_json`), without
parsing it and encoding it again, where that gives the same text (:func:`string_keys`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple, Protocol

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, compact separators and no ASCII escaping (hashed as UTF-8)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class EventRow(Protocol):
    """An audit event as stored: an :class:`AuditEvent`, or a row of its columns."""

    @property
    def id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject_type(self) -> str: ...
    @property
    def subject_id(self) -> str: ...
    @property
    def payload(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def mac(self) -> str | None: ...


def event_record(event: EventRow) -> dict[str, Any]:
    """The hashed content of an event, as a JSON-ready dict (payload parsed)."""
    return {
        "id": event.id,
        "at": timestamp(event.at),
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


def hash_text(prev_hash: str, record_json: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(record_json.encode("utf-8"))
    return digest.hexdigest()


class RecordFields(NamedTuple):
    """What an event's hashed record holds, its payload as canonical JSON."""

    event_id: int
    stamp: str
    actor: str
    action: str
    subject_type: str
    subject_id: str
    text_payload: str


def parsed_record_json(fields: RecordFields) -> str:
    """``canonical_json`` of the event's record as :func:`event_record` builds it (the payload
    parsed from its JSON)."""
    record = {
        "id": fields.event_id,
        "at": fields.stamp,
        "actor": fields.actor,
        "action": fields.action,
        "subject_type": fields.subject_type,
        "subject_id": fields.subject_id,
        "payload": json.loads(fields.text_payload),
    }
    return canonical_json(record)


def record_json(fields: RecordFields) -> str:
    """:func:`parsed_record_json` without parsing the payload and encoding it again: the same
    text when every key in the payload is a string (:func:`string_keys`), since the payload's
    canonical JSON then reads back to itself."""
    event_id = fields.event_id
    return "".join(
        (
            '{"action":',
            json_string(fields.action),
            ',"actor":',
            json_string(fields.actor),
            ',"at":',
            json_string(fields.stamp),
            ',"id":',
            str(event_id) if type(event_id) is int else canonical_json(event_id),
            ',"payload":',
            fields.text_payload,
            ',"subject_id":',
            json_string(fields.subject_id),
            ',"subject_type":',
            json_string(fields.subject_type),
            "}",
        )
    )


def json_string(value: Any) -> str:
    """``canonical_json(value)``, fast for a string (json's own encoder for strings)."""
    return encode_basestring(value) if isinstance(value, str) else canonical_json(value)


_SCALARS = frozenset((str, int, float, bool, type(None)))


def string_keys(value: Any) -> bool:
    """True when every mapping in ``value`` (nested in mappings and lists) has only str keys."""
    if type(value) is dict or isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SCALARS and not string_keys(item)):
                return False
    elif isinstance(value, (list, tuple)):
        return all(type(item) in _SCALARS or string_keys(item) for item in value)
    return True
