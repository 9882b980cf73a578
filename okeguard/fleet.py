"""Scanning the clusters of a configuration file: Kubernetes and OCI together, several at once.

``okeguard scan --config okeguard.yaml [--cluster NAME]`` and the bot's scheduled scans call
:func:`scan_configured`. Each cluster is read (its Kubernetes API, then, when it has a cluster
OCID, its OCI side), checked with its own effective configuration, and the per-cluster reports
are merged into one: every finding names its cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from okeguard.checks.engine import finding_sort_key
from okeguard.config import ClusterConfig, Config
from okeguard.errors import ConfigError
from okeguard.inventory.model import Gap, Inventory
from okeguard.inventory.oci import SharedReads
from okeguard.service import ScanReport, gc_paused, scan_inventory, validate_check_ids

MAX_PARALLEL_CLUSTERS = 4


def select_clusters(config: Config, names: Sequence[str] = ()) -> list[ClusterConfig]:
    """The configured clusters to scan: those named, or all of them."""
    if not config.clusters:
        raise ConfigError(
            "the configuration lists no clusters: add a 'clusters:' entry (docs/configuration.md)"
        )
    return [config.cluster(name) for name in names] if names else list(config.clusters)


def collect_cluster(
    config: Config,
    cluster: ClusterConfig,
    oci_endpoints: Mapping[str, str] | None = None,
    shared: SharedReads | None = None,
) -> tuple[Inventory, dict[str, Any]]:
    """Read one configured cluster: its Kubernetes API, and its OCI side when it has an OCID.

    ``oci_endpoints`` overrides the OCI service endpoints (tests and benchmarks point them at a
    fake server)."""
    from okeguard.inventory.kube import collect_live

    inventory, info = collect_live(
        cluster.context,
        kubeconfig=cluster.kubeconfig,
        in_cluster=cluster.in_cluster,
        cluster_name=cluster.name,
    )
    if cluster.cluster_id:
        from okeguard.inventory.oci import collect_oci

        state = collect_oci(cluster, config.oci, service_endpoints=oci_endpoints, shared=shared)
        inventory = replace(inventory, oci=state)
        info = {**info, "cluster_id": cluster.cluster_id, "region": cluster.region}
    return inventory, info


def _scan_one(
    config: Config,
    cluster: ClusterConfig,
    checks: Sequence[str],
    namespaces: Sequence[str],
    now: datetime,
    oci_endpoints: Mapping[str, str] | None,
    shared: SharedReads,
) -> ScanReport:
    started = time.perf_counter()
    inventory, _ = collect_cluster(config, cluster, oci_endpoints, shared)
    return scan_inventory(
        inventory,
        config.for_cluster(cluster),
        checks=checks,
        namespaces=namespaces,
        now=now,
        started=started,
    )


def scan_configured(
    config: Config,
    names: Sequence[str] = (),
    *,
    checks: Sequence[str] = (),
    namespaces: Sequence[str] = (),
    now: datetime | None = None,
    max_parallel: int = MAX_PARALLEL_CLUSTERS,
    oci_endpoints: Mapping[str, str] | None = None,
) -> ScanReport:
    """Scan the configured clusters (at most ``max_parallel`` at once) into one merged report.

    A cluster that cannot be reached at all stops the scan with its one-line error: a fleet scan
    that silently skipped a cluster would report it as fine.
    """
    validate_check_ids(checks)
    clusters = select_clusters(config, names)
    now = now or datetime.now(UTC)
    shared = SharedReads()  # compartment-wide OCI listings, read once per fleet scan
    with (
        gc_paused(),
        ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(clusters)))) as pool,
    ):
        futures = [
            pool.submit(_scan_one, config, c, checks, namespaces, now, oci_endpoints, shared)
            for c in clusters
        ]
        reports = [future.result() for future in futures]
    return reports[0] if len(reports) == 1 else merge_reports(reports)


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
            "clusters": [{"cluster": r.cluster, **r.source} for r in reports],
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
    )
