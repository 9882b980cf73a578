"""Waivers applied to a scan report: the exceptions of the audit database and an ignore file.

A :class:`Waiver` is a check id plus a resource selector (a part that is None or ``*`` matches
anything), a reason and an expiry. A scan's waivers (:func:`okeguard.scan_waivers.scan_waivers`)
come from:

* :func:`database_waivers`: the exceptions in force in the audit database (``okeguard
  exceptions add``), exactly those a recorded scan applies, read only when a database is
  configured (:func:`configured_database_url`);
* an ignore file kept in the repository for CI without a database (:mod:`okeguard.ignore_file`).

:func:`apply_waivers` turns the open findings a waiver matches into ``exempt`` (so ``--fail-on``
does not count them); :func:`filter_severity` keeps the findings of the severities asked for.
This module imports no database library unless a database is read: a scan with an ignore file
starts as fast as one without.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from okeguard.checks.model import Finding, Severity, Status
from okeguard.errors import UsageError, one_line

if TYPE_CHECKING:
    from okeguard.config import Config
    from okeguard.scanning import ScanReport

DATABASE_URL_ENV = "OKEGUARD_DATABASE_URL"  # okeguard.audit.db.ENV_URL, without importing it
log = logging.getLogger(__name__)


def is_any(part: str | None) -> bool:
    """True when a selector part selects anything: left out, empty or ``*``."""
    return part is None or part.strip() in ("", "*")


def selector_part(part: str | None) -> str | None:
    """A selector part as stored: None for anything (``*``), else the value itself."""
    return None if is_any(part) else part


@dataclass(frozen=True)
class Waiver:
    """What is excepted: a check, a selector (None or ``*``: any), why, until when.

    ``origin`` says where it was declared (``exception 4``, ``.okeguard-ignore.yaml:12``); an
    exempt finding's reason names it.
    """

    check_id: str
    reason: str
    expires_at: datetime | None
    cluster: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    origin: str | None = None

    @property
    def fleet_wide(self) -> bool:
        """Neither a cluster nor a resource name: it waives the check everywhere."""
        return is_any(self.cluster) and is_any(self.name)

    def matches(self, finding: Finding) -> bool:
        """True when ``finding`` is of this check and inside the selector (as a recorded scan
        matches an exception: each part given must equal the finding's)."""
        resource = finding.resource
        return (
            finding.check_id == self.check_id
            and (is_any(self.cluster) or self.cluster == finding.cluster)
            and (is_any(self.kind) or self.kind == resource.kind)
            and (is_any(self.namespace) or self.namespace == resource.namespace)
            and (is_any(self.name) or self.name == resource.name)
        )

    def expired(self, now: datetime) -> bool:
        """True once its expiry has passed at ``now`` (it then waives nothing)."""
        return self.expires_at is not None and self.expires_at <= now

    def exempt_reason(self) -> str:
        """``exception 4: why`` / ``.okeguard-ignore.yaml:12: why``."""
        return f"{self.origin or 'waiver'}: {self.reason}"


# ---------------------------------------------------------------- the audit database


def configured_database_url(config: Config) -> str | None:
    """The audit database a scan may read exceptions from: ``OKEGUARD_DATABASE_URL`` or the
    configuration's ``database.url``; None when neither is set (the default SQLite file is then
    not used, so a scan never creates one)."""
    return os.environ.get(DATABASE_URL_ENV) or config.database.url


def database_waivers(url: str, now: datetime | None = None) -> list[Waiver]:
    """The exceptions in force at ``now`` in the audit database at ``url`` (active and not
    expired; pending approval ones apply to nothing), read without taking a write lock.

    Raises ``DatabaseError`` in one line when the database does not exist (it is never created
    here), has no schema or cannot be reached.
    """
    waivers = exceptions_in_force(url, now)
    if waivers is None:
        from okeguard.audit.db import DatabaseError, describe

        raise DatabaseError(
            f"no audit database at {describe(url)} to read exceptions from "
            "(run 'okeguard db upgrade', or unset OKEGUARD_DATABASE_URL / database.url)"
        )
    return waivers


def exceptions_in_force(url: str, now: datetime | None) -> list[Waiver] | None:
    """The exceptions in force, or None when there is no database (or schema) at ``url``."""
    from sqlalchemy.exc import SQLAlchemyError

    from okeguard.audit.db import make_engine, session_factory, unreachable
    from okeguard.audit.schema import current_revision
    from okeguard.audit.stores import active_exceptions

    if current_revision(url) is None:  # asks without creating a SQLite file
        return None
    engine = make_engine(url)
    try:
        with session_factory(engine, read_only=True)() as session:
            rules = active_exceptions(session, now)
    except SQLAlchemyError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()
    return [
        Waiver(
            rule.check_id,
            rule.reason,
            rule.expires_at,
            cluster=rule.cluster,
            kind=rule.resource_kind,
            namespace=rule.resource_namespace,
            name=rule.resource_name,
            origin=f"exception {rule.id}",
        )
        for rule in rules
    ]


# ---------------------------------------------------------------- applying them to a report


def apply_waivers(report: ScanReport, waivers: Sequence[Waiver], now: datetime) -> ScanReport:
    """``report`` with every open finding a waiver matches made ``exempt``, its
    ``exempt_reason`` naming the first such waiver (in the order given). Expired waivers are
    left out with a warning; findings already exempt (an annotation) or unknown are kept as
    they are. The per-cluster parts of a fleet report are changed alike."""
    by_check: dict[str, list[Waiver]] = {}
    for waiver in waivers:
        if waiver.expired(now):
            assert waiver.expires_at is not None
            log.warning(
                "%s",
                one_line(
                    f"{waiver.origin or 'a waiver'}: the waiver of {waiver.check_id} expired on "
                    f"{waiver.expires_at:%Y-%m-%d}; ignored (renew or remove it)"
                ),
            )
            continue
        by_check.setdefault(waiver.check_id, []).append(waiver)
    return _waived(report, by_check) if by_check else report


def _waived(report: ScanReport, by_check: dict[str, list[Waiver]]) -> ScanReport:
    findings = []
    for finding in report.findings:
        if finding.status is Status.OPEN:
            waiver = next(
                (w for w in by_check.get(finding.check_id, ()) if w.matches(finding)), None
            )
            if waiver is not None:
                finding = replace(
                    finding, status=Status.EXEMPT, exempt_reason=waiver.exempt_reason()
                )
        findings.append(finding)
    parts = tuple(_waived(part, by_check) for part in report.parts)
    return replace(report, findings=findings, parts=parts)


def parse_severities(values: Iterable[str]) -> frozenset[Severity]:
    """The severities of ``--severity critical,high`` (repeatable, comma-separated,
    case-insensitive). Raises :class:`UsageError` naming an unknown one."""
    chosen = set()
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                chosen.add(Severity.parse(part))
            except ValueError as exc:
                raise UsageError(f"--severity: {exc}") from None
    if not chosen:
        raise UsageError("--severity: name at least one severity, e.g. critical,high")
    return frozenset(chosen)


def filter_severity(report: ScanReport, severities: Collection[Severity]) -> ScanReport:
    """``report`` with only the findings of ``severities``, whatever their status (like
    trivy's ``--severity``: the others are neither shown nor counted, by ``--fail-on`` either).
    Gaps (kinds that could not be read) stay. Record the unfiltered report: recording resolves
    the findings a scan did not report."""
    keep = frozenset(severities)
    return replace(
        report,
        findings=[f for f in report.findings if f.severity in keep],
        parts=tuple(filter_severity(part, keep) for part in report.parts),
    )
