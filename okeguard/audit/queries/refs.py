"""Finding ids resolved against the recorded findings, by the one rule of
:mod:`okeguard.audit.finding_ids` (a fingerprint prefix of at least 6 characters, or
``CHECK:NAMESPACE/NAME``). The command line and the Slack bot both resolve ids with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from okeguard.audit.finding_ids import MIN_PREFIX, FindingRef, FindingRefError, parse_finding_ref
from okeguard.audit.models import FindingRecord
from okeguard.errors import OkeguardError

__all__ = [
    "MIN_PREFIX",
    "FindingAmbiguous",
    "FindingNotFound",
    "FindingRef",
    "FindingRefError",
    "findings_by_ref",
    "parse_finding_ref",
    "resolve_finding",
]


class FindingNotFound(OkeguardError):
    """No recorded finding has this id."""


class FindingAmbiguous(OkeguardError):
    """Several recorded findings have this id; more of it is needed."""


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
