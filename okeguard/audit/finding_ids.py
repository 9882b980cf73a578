"""Finding ids as people type them, and the one rule that reads them, without a database.

A finding id is either a prefix of its fingerprint, at least :data:`MIN_PREFIX` characters (the
ID column of ``okeguard scan`` and ``okeguard findings list`` shows 12; fingerprints are
lower-case hex, so a prefix is compared in lower case and anything else matches nothing), or
``CHECK:NAMESPACE/NAME`` (also ``CHECK:NAME`` for any namespace or a cluster-scoped object, and
``CHECK:KIND/NAMESPACE/NAME``). ``okeguard fix`` matches the findings of a scan with it, and
``okeguard.audit.queries`` the recorded ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from okeguard.errors import UsageError

MIN_PREFIX = 6


class FindingRefError(UsageError):
    """Text that is not a finding id (a fingerprint prefix too short to name one)."""


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
