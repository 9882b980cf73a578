"""A scan's outcome and how it is made: the checks run over an inventory already loaded.

:class:`ScanReport` is what every front door renders and what recording stores;
:func:`scan_inventory` runs the checks over one inventory, :func:`merge_reports` merges the
reports of several clusters into one. Loading the inventory (a snapshot, manifests, a live
cluster, a fleet) is done above this module, by :mod:`okeguard.service` and
:mod:`okeguard.fleet`, which import it, never the other way round.
"""

from __future__ import annotations

import difflib
import gc
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from okeguard import __version__
from okeguard.checks.engine import finding_sort_key, run_checks
from okeguard.checks.model import SEVERITIES_DESC, Finding, Status
from okeguard.checks.registry import all_checks, get_check
from okeguard.config import Config
from okeguard.errors import UsageError
from okeguard.inventory.model import Gap, Inventory

SCAN_SCHEMA = "okeguard.scan/v1"


@dataclass(frozen=True)
class ScanReport:
    """The outcome of one scan: findings plus what was and was not looked at."""

    generated_at: datetime
    evaluated_at: datetime
    cluster: str
    source: dict[str, Any]
    findings: list[Finding]
    checks_run: list[str]
    not_applicable: list[str]
    gaps: list[Gap]
    skipped_kinds: dict[str, int]
    objects_scanned: int
    duration_seconds: float
    # The --namespace filter the findings were limited to (empty: every namespace), and for a
    # report merged from several clusters, the per-cluster reports (recording needs their scopes).
    namespaces: tuple[str, ...] = ()
    parts: tuple[ScanReport, ...] = ()
    # (cluster, one-line reason) of each cluster that could not be reached at all
    unreachable: tuple[tuple[str, str], ...] = ()
    # With a --namespace filter: the namespaces the scanned input holds (None: not known)
    namespaces_present: tuple[str, ...] | None = None

    @property
    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.OPEN]

    def count_by_severity(self) -> dict[str, int]:
        """Open findings by severity, every severity present (zero included), worst first."""
        counts = Counter(f.severity for f in self.open_findings)
        return {s.value: counts.get(s, 0) for s in SEVERITIES_DESC}

    def count_by_status(self) -> dict[str, int]:
        counts = Counter(f.status for f in self.findings)
        return {s.value: counts.get(s, 0) for s in Status}

    @property
    def incomplete(self) -> list[dict[str, Any]]:
        """What could not be read, each with the checks it left unevaluated."""
        out = []
        for gap in self.gaps:
            # a gap of no kind is a whole cluster that could not be read: it leaves every check
            affected = [
                check_id
                for check_id in self.checks_run
                if (spec := get_check(check_id)) is not None
                and (gap.kind is None or gap.kind in spec.reads)
            ]
            out.append(
                {"source": gap.source, "kind": gap.kind, "reason": gap.reason, "checks": affected}
            )
        return out

    def check_severities(self) -> dict[str, str]:
        """Every check that ran, with its default severity (what the posture score weighs)."""
        return {
            check_id: spec.severity.value
            for check_id in self.checks_run
            if (spec := get_check(check_id)) is not None
        }

    @property
    def complete(self) -> bool:
        return not self.gaps and not any(f.status is Status.UNKNOWN for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The ``okeguard.scan/v1`` JSON contract (``docs/output.md``)."""
        return {
            "schema": SCAN_SCHEMA,
            "generated_at": _iso(self.generated_at),
            "tool": {"name": "okeguard", "version": __version__},
            "source": self.source,
            "cluster": self.cluster,
            "evaluated_at": _iso(self.evaluated_at),
            "findings": [f.to_dict() for f in self.findings],
            "summary": {
                "by_severity": self.count_by_severity(),
                "by_status": self.count_by_status(),
                "checks_run": self.checks_run,
                "checks_not_applicable": self.not_applicable,
                "incomplete": self.incomplete,
                "skipped_kinds": self.skipped_kinds,
                "objects_scanned": self.objects_scanned,
                "duration_seconds": round(self.duration_seconds, 3),
            },
        }


def oci_gaps(inventory: Inventory) -> list[Gap]:
    """The OCI collector's gaps as scan gaps: kind ``oci:<area>``, the IAM policy in the reason."""
    if inventory.oci is None:
        return []
    gaps = []
    for gap in inventory.oci.gaps:
        what = f"{gap.reason} ({gap.ocid})" if gap.ocid else gap.reason
        if gap.policy:
            what += f"; grant it with: {gap.policy}"
        gaps.append(Gap("oci", f"oci:{gap.area}", what))
    return gaps


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def validate_check_ids(check_ids: Sequence[str]) -> None:
    """Raise :class:`UsageError` naming the first unknown check id, with a suggestion."""
    known = [spec.id for spec in all_checks()]
    for check_id in check_ids:
        if check_id not in known:
            close = difflib.get_close_matches(check_id, known, n=1, cutoff=0.6)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else " (run 'okeguard checks' for the list)"
            )
            raise UsageError(f"unknown check id '{check_id}'{hint}")


def scan_inventory(
    inventory: Inventory,
    config: Config,
    *,
    checks: Sequence[str] = (),
    namespaces: Sequence[str] = (),
    now: datetime,
    evaluated_at: datetime | None = None,
    started: float | None = None,
) -> ScanReport:
    """Run the checks over an inventory already loaded and wrap the result in a report."""
    evaluated_at = evaluated_at or now
    started = time.perf_counter() if started is None else started
    result = run_checks(
        inventory,
        config,
        now=evaluated_at,
        only=set(checks) or None,
        namespaces=set(namespaces) or None,
    )
    source = {"type": inventory.source.type, **inventory.source.detail}
    return ScanReport(
        generated_at=now,
        evaluated_at=evaluated_at,
        cluster=inventory.cluster,
        source=source,
        findings=result.findings,
        checks_run=result.checks_run,
        not_applicable=result.not_applicable,
        gaps=[*inventory.gaps, *oci_gaps(inventory)],
        skipped_kinds=dict(inventory.skipped_kinds),
        objects_scanned=inventory.object_count,
        duration_seconds=time.perf_counter() - started,
        namespaces=tuple(namespaces),
        namespaces_present=_namespaces_present(inventory) if namespaces else None,
    )


def _namespaces_present(inventory: Inventory) -> tuple[str, ...]:
    """The namespaces of the inventory's objects, and those its Namespace objects name."""
    names = {obj.name for obj in inventory.objects.get("Namespace", ())}
    for group in inventory.objects.values():
        names.update(obj.namespace for obj in group if obj.namespace)
    return tuple(sorted(names))


def _merged_namespaces(reports: Sequence[ScanReport]) -> tuple[str, ...] | None:
    """The namespaces present in any of ``reports`` (None when one of them does not know)."""
    names: set[str] = set()
    for report in reports:
        if report.namespaces_present is None:
            return None
        names.update(report.namespaces_present)
    return tuple(sorted(names))


def merge_reports(reports: Sequence[ScanReport], source_type: str = "config") -> ScanReport:
    """One report for several clusters: findings merged and sorted, counts and gaps summed."""
    checks_run = list(dict.fromkeys(c for r in reports for c in r.checks_run))
    not_applicable = [
        c
        for c in dict.fromkeys(c for r in reports for c in r.not_applicable)
        if c not in checks_run
    ]
    skipped: Counter[str] = Counter()
    for report in reports:
        skipped.update(report.skipped_kinds)
    findings = sorted(
        (f for r in reports for f in r.findings), key=lambda f: (*finding_sort_key(f), f.cluster)
    )
    return ScanReport(
        generated_at=min(r.generated_at for r in reports),
        evaluated_at=min(r.evaluated_at for r in reports),
        cluster=", ".join(r.cluster for r in reports),
        source={
            "type": source_type,
            "clusters": [
                {"cluster": r.cluster, **r.source, "complete": r.complete} for r in reports
            ],
        },
        findings=findings,
        checks_run=checks_run,
        not_applicable=not_applicable,
        gaps=[Gap(g.source, g.kind, f"{r.cluster}: {g.reason}") for r in reports for g in r.gaps],
        skipped_kinds=dict(skipped),
        objects_scanned=sum(r.objects_scanned for r in reports),
        duration_seconds=max(r.duration_seconds for r in reports),
        namespaces=reports[0].namespaces,
        parts=tuple(p for r in reports for p in (r.parts or (r,))),
        unreachable=tuple(pair for r in reports for pair in r.unreachable),
        namespaces_present=_merged_namespaces(reports),
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a scan allocates its millions of small objects.

    Loading builds no reference cycles worth collecting, and with the collector running each of
    its passes walks every object allocated so far: on a 10,000-workload snapshot that tripled the
    JSON decoding time. The collector is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
