"""Sealing: MAC the rows of the audit chain that have none, on a person's explicit, audited say.

Rows written before the audit key was set (or by a process without it) carry no MAC, and a
keyed verification fails on them. Sealing MACs them under the current key and appends an
``audit.sealed`` event saying how many rows, from which id to which. It attests the chain *as
it is at that moment*: whatever those rows say is vouched for from then on, so check them
first (``okeguard audit verify --head …`` against an anchor taken before the key was set).

Nothing ever seals by itself: an attacker who strips MACs from rows they forged would only have
to wait for an automatic seal. With ``rekey`` the rows still MACed under the previous key
(after a rotation) are MACed again under the current one, so the previous key can be retired.
A chain with a broken link, or with a MAC no configured key made, is never sealed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from okeguard.audit.chain import append_event, check_chain, lock_chain
from okeguard.audit.keys import AuditKey, KeyRing, MacCheck, audit_keys, require_key
from okeguard.audit.models import AuditEvent
from okeguard.errors import OkeguardError

SEALED_ACTION = "audit.sealed"
MAX_RANGES = 100  # in the event's payload; the count and the first and last id are always there


class SealRefused(OkeguardError):
    """The chain is broken or holds a MAC no configured key made: sealing would vouch for it."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class SealResult:
    """What a seal did (or, for a dry run, would do)."""

    sealed: int  # rows that had no MAC
    rekeyed: int  # rows MACed under the previous key, now under the current one
    ranges: tuple[tuple[int, int], ...] = field(default=())  # the ids changed, as (first, last)
    key_id: str = ""
    event_id: int | None = None  # the audit.sealed event; None for a dry run or no change

    @property
    def changed(self) -> int:
        return self.sealed + self.rekeyed

    @property
    def first_id(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    @property
    def last_id(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None


def id_ranges(ids: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted ids as runs of consecutive ids: ``[1, 2, 3, 7]`` -> ``((1, 3), (7, 7))``."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return tuple(runs)


Row = tuple[int, str]  # id, hash


def _to_seal(session: Session, keys: KeyRing, rekey: bool) -> tuple[list[Row], list[Row]]:
    """The rows without a MAC, and (with ``rekey``) those MACed under the previous key."""
    missing: list[Row] = []
    previous: list[Row] = []
    rows = session.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.mac)
        .order_by(AuditEvent.id)
        .execution_options(yield_per=5000)
    )
    for event_id, digest, mac in rows:
        verdict = keys.check(digest, mac)
        if verdict is MacCheck.MISSING:
            missing.append((event_id, digest))
        elif rekey and verdict is MacCheck.PREVIOUS:
            previous.append((event_id, digest))
    return missing, previous


def _write_macs(session: Session, key: AuditKey, rows: Sequence[Row]) -> None:
    values = [{"id": event_id, "mac": key.mac(digest)} for event_id, digest in rows]
    for start in range(0, len(values), 5000):
        session.execute(update(AuditEvent), values[start : start + 5000])


def seal_chain(
    session: Session,
    actor: str,
    *,
    keys: KeyRing | None = None,
    rekey: bool = False,
    dry_run: bool = False,
) -> SealResult:
    """MAC every row that has none (and, with ``rekey``, every row under the previous key) under
    the current key, then append the ``audit.sealed`` event; in the caller's transaction.

    Raises AuditKeyError without a key and :class:`SealRefused` when the chain has a broken link
    or a wrong MAC. Nothing changes (and no event is written) for a dry run or when every row
    already has the current key's MAC.
    """
    keys = audit_keys() if keys is None else keys
    key = require_key(keys)
    lock_chain(session)
    report = check_chain(session, keys)
    if report.link_break is not None:
        raise SealRefused(f"not sealing a broken chain: {report.link_break}; restore it first")
    if report.macs_wrong:
        raise SealRefused(
            f"not sealing: {report.macs_wrong} row(s) carry a MAC that no configured key made "
            f"(first: {report.broken}); investigate them, or set the key that made them as "
            "OKEGUARD_AUDIT_KEY_PREVIOUS"
        )
    missing, previous = _to_seal(session, keys, rekey)
    result = SealResult(
        sealed=len(missing),
        rekeyed=len(previous),
        ranges=id_ranges(event_id for event_id, _ in [*missing, *previous]),
        key_id=key.key_id,
    )
    if dry_run or not result.changed:
        return result
    _write_macs(session, key, [*missing, *previous])
    event = append_event(
        session,
        actor,
        SEALED_ACTION,
        ("audit_chain", report.head_id),
        {
            "sealed": result.sealed,
            "rekeyed": result.rekeyed,
            "first_id": result.first_id,
            "last_id": result.last_id,
            "ranges": [list(r) for r in result.ranges[:MAX_RANGES]],
            "ranges_truncated": len(result.ranges) > MAX_RANGES,
            "head": {"id": report.head_id, "hash": report.head_hash},
            "key_id": key.key_id,
        },
        keys=keys,
    )
    return SealResult(
        sealed=result.sealed,
        rekeyed=result.rekeyed,
        ranges=result.ranges,
        key_id=result.key_id,
        event_id=event.id,
    )
