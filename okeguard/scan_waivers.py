"""The waivers a scan applies (:func:`scan_waivers`): the audit database's exceptions and an
ignore file's entries, gathered before the scan so that a bad file or database fails fast.

What a waiver is and how it is applied is :mod:`okeguard.waivers`; the ignore file is
:mod:`okeguard.ignore_file`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from okeguard.ignore_file import discover_ignore_file, load_ignore_file
from okeguard.waivers import Waiver, configured_database_url, exceptions_in_force

if TYPE_CHECKING:
    from okeguard.config import Config
    from okeguard.scanning import ScanReport


@dataclass(frozen=True)
class ScanWaivers:
    """The waivers a scan applies, and where they came from (for a line on stderr)."""

    waivers: list[Waiver]
    sources: list[str]

    def summary(self, before: ScanReport, after: ScanReport) -> str:
        """``waivers: 2 from .okeguard-ignore.yaml, 3 exceptions from the audit database;
        4 findings exempt by them``."""
        waived = after.count_by_status()["exempt"] - before.count_by_status()["exempt"]
        return f"waivers: {', '.join(self.sources)}; {waived} finding(s) exempt by them"


def scan_waivers(
    config: Config,
    *,
    ignore_file: str | None = None,
    scanned: Sequence[str] = (),
    discover: bool = True,
    now: datetime | None = None,
) -> ScanWaivers:
    """The waivers for a scan: the audit database's exceptions when one is configured (none
    while it does not exist yet: it is never created here), then those of ``ignore_file``, else
    of the one :func:`~okeguard.ignore_file.discover_ignore_file` finds for the ``scanned``
    paths (when ``discover``). A finding matched by several is exempt by the first. Raises a
    one-line ``ConfigError`` for a bad file and ``DatabaseError`` for a configured database
    that cannot be reached."""
    waivers: list[Waiver] = []
    sources: list[str] = []
    url = configured_database_url(config)
    if url is not None:
        exceptions = exceptions_in_force(url, now)
        if exceptions is None:  # not created yet (scan --record creates it): nothing excepted
            from okeguard.audit.db import describe

            sources.append(f"no audit database at {describe(url)} yet")
        else:
            waivers.extend(exceptions)
            sources.append(f"{len(exceptions)} exception(s) from the audit database")
    path = ignore_file or (discover_ignore_file(scanned) if discover else None)
    if path is not None:
        listed = load_ignore_file(path, now=now)
        waivers.extend(listed)
        sources.append(f"{len(listed)} from {path}")
    return ScanWaivers(waivers, sources)
