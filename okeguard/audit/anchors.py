"""Anchors: the chain's head (``ID:HASH``) kept outside the database, and checks against them.

A chain, keyed or not, cannot show that its newest rows were deleted: the shorter chain still
verifies. Nor can an unkeyed chain show that it was rebuilt from scratch. An anchor, a row id
and its hash copied somewhere the database's writers cannot reach (a Slack digest, the log
pipeline, a ticket), shows both: the row must still exist and still have that hash.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from okeguard.audit.chain import append_event
from okeguard.audit.models import AuditEvent
from okeguard.audit.records import GENESIS_HASH
from okeguard.errors import UsageError

log = logging.getLogger(__name__)
_ANCHOR = re.compile(r"^(\d{1,18}):([0-9a-fA-F]{64})$")
ANCHORED_ACTION = "audit.anchored"


@dataclass(frozen=True, slots=True)
class Anchor:
    """A row id and the hash that row had when the anchor was taken."""

    id: int
    hash: str

    def __str__(self) -> str:
        return f"{self.id}:{self.hash}"

    @property
    def short(self) -> str:
        """``1234:3f9c1a2b…``: enough for people to recognise it, not to check it."""
        return f"{self.id}:{self.hash[:8]}…"

    def as_dict(self) -> dict[str, int | str]:
        return {"id": self.id, "hash": self.hash, "anchor": str(self)}


def parse_anchor(text: str, *, where: str = "--head") -> Anchor:
    """``ID:HASH`` (the full 64 hex digits) as an Anchor; a UsageError naming ``where``."""
    match = _ANCHOR.match(text.strip())
    if match is None:
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:37] + "..."
        raise UsageError(
            f"{where}: '{shown}' is not an anchor (expected ID:HASH with the full 64-hex-digit "
            "hash, as printed by 'okeguard audit head')"
        )
    return Anchor(int(match.group(1)), match.group(2).lower())


def read_anchors(path: str) -> list[Anchor]:
    """The anchors of a file: one ``ID:HASH`` a line; blank lines and ``#`` comments skipped."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"--anchors {path}: cannot read it ({why})") from None
    anchors = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if content:
            anchors.append(parse_anchor(content, where=f"--anchors {path} line {number}"))
    return anchors


def head_anchor(session: Session) -> Anchor:
    """The chain's head as an anchor (``0:000…`` for an empty chain)."""
    row = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return Anchor(int(row[0]), str(row[1])) if row is not None else Anchor(0, GENESIS_HASH)


def check_anchors(session: Session, anchors: list[Anchor]) -> list[str]:
    """One line per anchor the chain no longer matches: its row is gone, or has another hash.

    Reads only the anchored rows and the head, however long the chain.
    """
    if not anchors:
        return []
    head = head_anchor(session)
    ids = sorted({a.id for a in anchors if a.id > 0})
    stored: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        query = select(AuditEvent.id, AuditEvent.hash).where(
            AuditEvent.id.in_(ids[start : start + 500])
        )
        stored.update((int(i), str(h)) for i, h in session.execute(query))
    problems = []
    for anchor in sorted(set(anchors), key=lambda a: (a.id, a.hash)):
        if anchor.id == 0:
            if anchor.hash != GENESIS_HASH:
                problems.append(f"anchor {anchor.short}: row 0 is the genesis, its hash is 0…0")
            continue
        found = stored.get(anchor.id)
        if found is None and anchor.id > head.id:
            ends = f"ends at {head.id}" if head.id else "is empty"
            problems.append(
                f"the chain {ends} but anchor {anchor.short} was recorded: rows deleted"
            )
        elif found is None:
            problems.append(f"anchor {anchor.short}: row {anchor.id} is missing: rows deleted")
        elif found != anchor.hash:
            problems.append(
                f"anchor {anchor.short}: row {anchor.id} now has hash {found[:8]}…: the chain "
                "was rebuilt or the row edited"
            )
    return problems


def record_anchor(
    session: Session,
    anchor: Anchor,
    actor: str,
    published_to: str,
    *,
    at: datetime | None = None,
) -> None:
    """Append an ``audit.anchored`` event (the anchored id and hash, and where it went) and log
    the anchor as one structured ``audit.anchor`` line; in the caller's transaction."""
    append_event(
        session,
        actor,
        ANCHORED_ACTION,
        ("audit_event", anchor.id),
        {"id": anchor.id, "hash": anchor.hash, "published_to": published_to},
        at=at,
    )
    log.info(
        "audit.anchor %s published to %s",
        anchor,
        published_to,
        extra={
            "event": "audit.anchor",
            "id": anchor.id,
            "hash": anchor.hash,
            "published_to": published_to,
        },
    )
