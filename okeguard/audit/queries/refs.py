"""Finding ids as people type them, and the one rule that resolves them.

A finding id is either a prefix of its fingerprint, at least :data:`MIN_PREFIX` characters (the
ID column of ``okeguard scan`` and ``okeguard findings list`` shows 12; fingerprints are
lower-case hex, so a prefix is compared in lower case and anything else matches nothing), or
``CHECK:NAMESPACE/NAME`` (also ``CHECK:NAME`` for any namespace or a cluster-scoped object, and
``CHECK:KIND/NAMESPACE/NAME``). The command line and the Slack bot both resolve ids with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from okeguard.audit.models import FindingRecord
from okeguard.errors import OkeguardError, UsageError

MIN_PREFIX = 6


class FindingRefError(UsageError):
    """Text that is not a finding id (a fingerprint prefix too short to name one)."""


class FindingNotFound(OkeguardError):
    """No recorded finding has this id."""


class FindingAmbiguous(OkeguardError):
    """Several recorded findings have this id; more of it is needed."""


@dataclass(frozen=True)
class FindingRef:
    """A parsed finding id: ``prefix`` (lower case) or ``check_id`` with ``where``."""

    text: str
    prefix: str | None = None
    check_id: str | None = None
    where: str | None = None

    def matches(
        self,
        *,
        fingerprint: str,
        check_id: str,
        kind: str,
        namespace: str | None,
        name: str,
    ) -> bool:
        """Whether a finding with these identity fields is the one this id names."""
        if self.prefix is not None:
            return fingerprint.startswith(self.prefix)
        names = {name, f"{namespace}/{name}", f"{kind}/{namespace}/{name}"}
        return check_id == self.check_id and self.where in names


def parse_finding_ref(text: str) -> FindingRef:
    """``text`` as a finding id; :class:`FindingRefError` for a fingerprint prefix shorter than
    :data:`MIN_PREFIX` characters."""
    text = text.strip()
    if ":" in text:
        check_id, _, where = text.partition(":")
        return FindingRef(text, check_id=check_id, where=where)
    if len(text) < MIN_PREFIX:
        raise FindingRefError(
            f"finding '{text}': give at least {MIN_PREFIX} characters of its fingerprint"
        )
    return FindingRef(text, prefix=text.lower())


def findings_by_ref(
    session: Session, ref: FindingRef, *, limit: int = 500
) -> Sequence[FindingRecord]:
    """The recorded findings (any status) that ``ref`` names, at most ``limit``, by id."""
    query = select(FindingRecord).order_by(FindingRecord.id)
    if ref.prefix is not None:
        query = query.where(FindingRecord.fingerprint.startswith(ref.prefix, autoescape=True))
        return session.scalars(query.limit(limit)).all()
    where = ref.where or ""
    # the name is ``where`` less none, one or two leading parts; the rule itself is matches()
    names = {where, where.split("/", 1)[-1], where.split("/", 2)[-1]}
    query = query.where(
        FindingRecord.check_id == ref.check_id, FindingRecord.resource_name.in_(names)
    )
    found = [
        row
        for row in session.scalars(query)
        if ref.matches(
            fingerprint=row.fingerprint,
            check_id=row.check_id,
            kind=row.resource_kind,
            namespace=row.resource_namespace,
            name=row.resource_name,
        )
    ]
    return found[:limit]


def resolve_finding(session: Session, text: str) -> FindingRecord:
    """The one recorded finding (any status) that the id ``text`` names.

    Raises :class:`FindingRefError` (not an id), :class:`FindingNotFound` or
    :class:`FindingAmbiguous`, each with a one-line message."""
    found = findings_by_ref(session, parse_finding_ref(text), limit=2)
    if not found:
        raise FindingNotFound(f"no recorded finding {text}")
    if len(found) > 1:
        raise FindingAmbiguous(f"{text} matches several findings: give more of it")
    return found[0]
