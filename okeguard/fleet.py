"""Scanning the clusters of a configuration file: Kubernetes and OCI together, several at once.

``okeguard scan --config okeguard.yaml [--cluster NAME]`` and the bot's scheduled scans call
:func:`scan_configured`. Each cluster is read (its Kubernetes API, then, when it has a cluster
OCID, its OCI side), checked with its own effective configuration, and the per-cluster reports
are merged into one: every finding names its cluster.

A cluster that cannot be reached (connection refused, DNS, TLS, rejected credentials, timeout)
does not stop the others: it is reported INCOMPLETE with its one-line reason, and every check
that would have run on it reports ``unknown`` there, never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from okeguard.checks.model import Finding, ResourceRef, Status, fingerprint
from okeguard.checks.registry import all_checks
from okeguard.config import ClusterConfig, Config
from okeguard.errors import ClusterAccessError, ConfigError
from okeguard.inventory.model import Gap, Inventory
from okeguard.inventory.oci import SharedReads
from okeguard.scanning import (
    ScanReport,
    gc_paused,
    merge_reports,
    scan_inventory,
    validate_check_ids,
)

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
    try:
        inventory, _ = collect_cluster(config, cluster, oci_endpoints, shared)
    except ClusterAccessError as exc:
        return unreachable_report(config, cluster, str(exc), checks, now, started)
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
    on_cluster: Callable[[ScanReport, int], None] | None = None,
) -> ScanReport:
    """Scan the configured clusters (at most ``max_parallel`` at once) into one merged report.

    A cluster that cannot be reached is in the report as INCOMPLETE (see
    :func:`unreachable_report`), never skipped: a fleet scan that silently left a cluster out
    would report it as fine. When no cluster can be reached there is nothing to report, and
    :class:`ClusterAccessError` says why (each cluster's reason). ``on_cluster(report, total)``
    is called (from a worker thread) as each cluster's report is ready: progress on a terminal.
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
        if on_cluster is not None:
            callback = on_cluster

            def done(future: Future[ScanReport]) -> None:
                if future.exception() is None:
                    callback(future.result(), len(clusters))

            for future in futures:
                future.add_done_callback(done)
        reports = [future.result() for future in futures]
    if all(r.unreachable for r in reports):
        if len(reports) == 1:
            raise ClusterAccessError(reports[0].unreachable[0][1])
        reasons = "; ".join(f"{name}: {why}" for r in reports for name, why in r.unreachable)
        raise ClusterAccessError(f"no configured cluster could be reached: {reasons}")
    return reports[0] if len(reports) == 1 else merge_reports(reports)


def unreachable_report(
    config: Config,
    cluster: ClusterConfig,
    reason: str,
    checks: Sequence[str],
    now: datetime,
    started: float,
) -> ScanReport:
    """The report of a cluster that could not be read at all: one gap (kind ``None``: the whole
    cluster) with the one-line ``reason``, and one ``unknown`` finding per check that would have
    run there, so recording resolves nothing on it and its posture is not a pass."""
    effective = config.for_cluster(cluster)
    disabled = set(effective.checks.disabled)
    wanted = set(checks)
    specs = [
        spec
        for spec in all_checks()
        if (not wanted or spec.id in wanted)
        and spec.id not in disabled
        and (not spec.oci or cluster.cluster_id)
    ]
    subject = ResourceRef("Cluster", None, cluster.name)
    findings = [
        Finding(
            check_id=spec.id,
            severity=spec.severity,
            status=Status.UNKNOWN,
            cluster=cluster.name,
            resource=subject,
            message=f"could not evaluate: the cluster could not be reached ({reason})",
            practice=spec.practice,
            remediation=spec.remediation,
            fingerprint=fingerprint(spec.id, cluster.name, subject),
        )
        for spec in specs
    ]
    source: dict[str, Any] = {"type": "live", "unreachable": reason}
    if cluster.context:
        source["context"] = cluster.context
    return ScanReport(
        generated_at=now,
        evaluated_at=now,
        cluster=cluster.name,
        source=source,
        findings=findings,
        checks_run=[spec.id for spec in specs],
        not_applicable=[],
        gaps=[Gap("kubernetes", None, reason)],
        skipped_kinds={},
        objects_scanned=0,
        duration_seconds=time.perf_counter() - started,
        unreachable=((cluster.name, reason),),
    )
