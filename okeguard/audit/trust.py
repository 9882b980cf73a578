"""Everything ``okeguard audit verify`` checks, as one report: the chain (hashes, links and, with
the audit key, MACs), the anchors kept outside the database, and the state tables against the
chain. Also says plainly what the checks could *not* establish (an unkeyed chain, no anchor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from okeguard.audit.anchors import Anchor, check_anchors
from okeguard.audit.chain import ChainReport, check_chain
from okeguard.audit.crosscheck import Mismatch, crosscheck
from okeguard.audit.keys import ENV_KEY, ENV_PREVIOUS, KeyRing, audit_keys
from okeguard.audit.models import ExceptionRule, RemediationRequest


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class TrailReport:
    """The verdict of :func:`verify_trail`: problems (empty when all is well), what was
    confirmed, and notes on what the checks could not cover."""

    chain: ChainReport
    key_id: str | None
    anchors: tuple[Anchor, ...]
    anchor_problems: tuple[str, ...]
    mismatches: tuple[Mismatch, ...]
    requests: int
    exceptions: int

    @property
    def problems(self) -> list[str]:
        """One line per problem: the chain's first break, each anchor, each mismatch."""
        broken = self.chain.describe()
        return (
            ([broken] if broken else [])
            + list(self.anchor_problems)
            + [str(m) for m in self.mismatches]
        )

    @property
    def ok(self) -> bool:
        return not self.problems

    def confirmed(self) -> list[str]:
        """What verified, one ``OK: …`` line each (the first is the chain's)."""
        lines = [f"OK: audit chain intact ({_plural(self.chain.length, 'event')})"]
        if self.key_id is not None:
            lines.append(f"OK: every row's MAC verifies under the audit key (key id {self.key_id})")
        if self.anchors:
            newest = max(self.anchors, key=lambda a: a.id)
            lines.append(
                f"OK: {_plural(len(self.anchors), 'anchor')} match (newest {newest.short})"
            )
        if self.requests or self.exceptions:
            lines.append(
                f"OK: {_plural(self.requests, 'remediation request')} and "
                f"{_plural(self.exceptions, 'exception')} agree with the audit chain"
            )
        return lines

    def limits(self) -> list[tuple[str, str]]:
        """What these checks could not establish, as (``warning`` or ``note``, one line)."""
        head = f"{self.chain.head_id}:{self.chain.head_hash[:8]}…"
        newest = max((a.id for a in self.anchors), default=None)
        notes = []
        if self.key_id is None:
            covered = (
                f"the anchors vouch for rows up to {newest} only"
                if newest is not None
                else "compare with an anchor (--head ID:HASH or --anchors FILE)"
            )
            notes.append(
                (
                    "warning",
                    f"no audit key ({ENV_KEY} is not set), so the chain was verified unkeyed: "
                    "hashes and links hold, but anyone with write access to the database could "
                    f"rebuild the whole chain undetected; set the key, and {covered}",
                )
            )
        elif newest is None:
            notes.append(
                (
                    "note",
                    "no anchor given: the audit key cannot show that the newest rows were "
                    f"deleted; the chain ends at {head}: compare with an anchor kept elsewhere "
                    "(--head ID:HASH or --anchors FILE)",
                )
            )
        if self.chain.macs_previous:
            notes.append(
                (
                    "note",
                    f"{_plural(self.chain.macs_previous, 'row')} verify only under "
                    f"{ENV_PREVIOUS}: run 'okeguard audit seal --rekey' before retiring it",
                )
            )
        return notes


def verify_trail(
    session: Session,
    *,
    keys: KeyRing | None = None,
    anchors: Sequence[Anchor] = (),
    cross: bool = True,
) -> TrailReport:
    """Verify the chain (with ``keys``, default this process's), check ``anchors`` and, with
    ``cross``, the state tables against the chain. Reads only."""
    keys = audit_keys() if keys is None else keys
    chain = check_chain(session, keys)
    requests = exceptions = 0
    mismatches: list[Mismatch] = []
    if cross:
        mismatches = crosscheck(session)
        requests = session.scalar(select(func.count()).select_from(RemediationRequest)) or 0
        exceptions = session.scalar(select(func.count()).select_from(ExceptionRule)) or 0
    return TrailReport(
        chain=chain,
        key_id=keys.current.key_id if keys.current is not None else None,
        anchors=tuple(anchors),
        anchor_problems=tuple(check_anchors(session, list(anchors))),
        mismatches=tuple(mismatches),
        requests=requests,
        exceptions=exceptions,
    )
