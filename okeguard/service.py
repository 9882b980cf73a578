"""Service functions shared by every front door (command line, Slack, scheduler).

Front doors parse and render; the work happens here: :func:`run_scan` loads an inventory from
the requested source, runs the checks and returns a :class:`ScanReport`.
"""

from __future__ import annotations

import difflib
import gc
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from okeguard import __version__
from okeguard.checks.engine import run_checks
from okeguard.checks.model import Finding, Severity, Status
from okeguard.checks.registry import all_checks, get_check
from okeguard.config import Config
from okeguard.errors import UsageError
from okeguard.inventory.model import Gap, Inventory

SCAN_SCHEMA = "okeguard.scan/v1"


@dataclass(frozen=True)
class ScanRequest:
    """What to scan and how. Exactly one source: demo, manifests, snapshot or context."""

    demo: bool = False
    manifests: tuple[str, ...] = ()
    snapshot: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    checks: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    config: Config = field(default_factory=Config)
    cluster_name: str | None = None
    now: datetime | None = None
    stdin_text: str | None = None


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

    @property
    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.OPEN]

    def count_by_severity(self) -> dict[str, int]:
        """Open findings by severity, every severity present (zero included), worst first."""
        counts = Counter(f.severity for f in self.open_findings)
        return {s.value: counts.get(s, 0) for s in sorted(Severity, key=lambda s: -s.rank)}

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


def validate_source(request: ScanRequest) -> None:
    """Raise :class:`UsageError` unless exactly one source is requested."""
    sources = [
        bool(request.demo),
        bool(request.manifests),
        request.snapshot is not None,
        request.context is not None,
    ]
    if sum(sources) == 0:
        raise UsageError(
            "nothing to scan: give --demo, --manifests PATH, --snapshot FILE or --context NAME"
        )
    if sum(sources) > 1:
        raise UsageError("choose one source: --demo, --manifests, --snapshot or --context")


def load_inventory(request: ScanRequest) -> Inventory:
    """Load the inventory of the requested source (raises a one-line OkeguardError on bad input)."""
    validate_source(request)
    if request.demo:
        from okeguard.inventory.demo import demo_snapshot_path
        from okeguard.inventory.snapshot import load_snapshot

        return load_snapshot(demo_snapshot_path(), source_type="demo")
    if request.snapshot is not None:
        from okeguard.inventory.snapshot import load_snapshot

        return load_snapshot(request.snapshot)
    if request.context is not None:
        from okeguard.inventory.kube import collect_live

        inventory, _ = collect_live(
            request.context, kubeconfig=request.kubeconfig, cluster_name=request.cluster_name
        )
        return inventory
    from okeguard.inventory.manifests import load_manifests

    return load_manifests(
        request.manifests,
        cluster=request.cluster_name or "manifests",
        stdin_text=request.stdin_text,
    )


def _with_kubeconfig(inventory: Inventory, path: str) -> Inventory:
    from dataclasses import replace

    from okeguard.inventory.kubeconfig import read_kubeconfig_users

    return replace(inventory, kubeconfig_users=tuple(read_kubeconfig_users(path)))


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


def run_scan(request: ScanRequest) -> ScanReport:
    """Load the requested source, run the checks and return the report."""
    with gc_paused():
        return _run_scan(request)


def _run_scan(request: ScanRequest) -> ScanReport:
    validate_check_ids(request.checks)
    if request.demo:
        return _run_demo(request)
    started = time.perf_counter()
    inventory = load_inventory(request)
    if request.kubeconfig and request.context is None:
        inventory = _with_kubeconfig(inventory, request.kubeconfig)
    return scan_inventory(
        inventory,
        request.config,
        checks=request.checks,
        namespaces=request.namespaces,
        now=request.now or datetime.now(UTC),
        started=started,
    )


def _run_demo(request: ScanRequest) -> ScanReport:
    """The demo: every bundled cluster, each judged at its capture time, in one report."""
    from okeguard.fleet import merge_reports
    from okeguard.inventory.demo import demo_snapshot_paths
    from okeguard.inventory.snapshot import load_snapshot

    now = request.now or datetime.now(UTC)
    reports = []
    for path in demo_snapshot_paths():
        started = time.perf_counter()
        inventory = load_snapshot(path, source_type="demo")
        reports.append(
            scan_inventory(
                inventory,
                request.config,
                checks=request.checks,
                namespaces=request.namespaces,
                now=now,
                evaluated_at=inventory.captured_at or now,
                started=started,
            )
        )
    return reports[0] if len(reports) == 1 else merge_reports(reports, source_type="demo")


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
    )
