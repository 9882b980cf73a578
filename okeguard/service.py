"""Service functions shared by every front door (command line, Slack, scheduler).

Front doors parse and render; the work happens here: :func:`run_scan` loads an inventory from
the requested source, runs the checks and returns a
:class:`~okeguard.scanning.ScanReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from okeguard.config import Config
from okeguard.errors import UsageError
from okeguard.inventory.model import Inventory
from okeguard.scanning import (
    ScanReport,
    gc_paused,
    merge_reports,
    scan_inventory,
    validate_check_ids,
)


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


def run_scan(request: ScanRequest, keep: Callable[[Inventory], object] | None = None) -> ScanReport:
    """Load the requested source, run the checks and return the report; ``keep`` is given the
    inventory (a command that ends the process next keeps it rather than free it)."""
    with gc_paused():
        return _run_scan(request, keep)


def _run_scan(request: ScanRequest, keep: Callable[[Inventory], object] | None) -> ScanReport:
    validate_check_ids(request.checks)
    if request.demo:
        return _run_demo(request)
    started = time.perf_counter()
    inventory = load_inventory(request)
    if request.kubeconfig and request.context is None:
        inventory = _with_kubeconfig(inventory, request.kubeconfig)
    report = scan_inventory(
        inventory,
        request.config,
        checks=request.checks,
        namespaces=request.namespaces,
        now=request.now or datetime.now(UTC),
        started=started,
    )
    if keep is not None:
        keep(inventory)
    return report


def _run_demo(request: ScanRequest) -> ScanReport:
    """The demo: every bundled cluster, each judged at its capture time, in one report."""
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
