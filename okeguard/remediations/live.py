"""A cluster to fix: how to read its live state and how to write to it.

Reading uses the collectors of ``okeguard.inventory`` (the same as a scan); writing uses
:class:`~okeguard.remediations.kube_writer.KubeWriter` and, for a cluster with an OKE OCID,
:class:`~okeguard.remediations.oci_writer.OciWriter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from okeguard.checks.model import Finding
from okeguard.config import ClusterConfig, Config
from okeguard.fleet import collect_cluster
from okeguard.inventory.model import Inventory
from okeguard.remediations.engine import Backends
from okeguard.remediations.plan import PlanError
from okeguard.scanning import scan_inventory


@dataclass
class LiveCluster:
    """One configured cluster (or a bare kubeconfig context) that can be read and written."""

    config: Config
    cluster: ClusterConfig
    oci_endpoints: Mapping[str, str] | None = None

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def effective_config(self) -> Config:
        return self.config.for_cluster(self.cluster)

    def read(self) -> Inventory:
        """The cluster's current state (Kubernetes, and OCI when it has a cluster OCID)."""
        inventory, _ = collect_cluster(self.config, self.cluster, self.oci_endpoints)
        return inventory

    def findings(self, inventory: Inventory, check_ids: tuple[str, ...] = ()) -> list[Finding]:
        now = datetime.now(UTC)
        report = scan_inventory(inventory, self.effective_config, checks=check_ids, now=now)
        return report.findings

    def backends(self) -> Backends:
        """Writers for this cluster (the OCI one only when the cluster has an OCID)."""
        from okeguard.remediations.kube_writer import open_kube_writer

        settings = self.config.remediation
        kube = open_kube_writer(
            self.cluster.context,
            kubeconfig=self.cluster.kubeconfig,
            in_cluster=self.cluster.in_cluster,
        )
        oci = None
        if self.cluster.cluster_id:
            from okeguard.remediations.oci_writer import open_oci_writer

            oci = open_oci_writer(self.cluster, self.config.oci, self.oci_endpoints)
        return Backends(settings=settings, kube=kube, oci=oci)


def live_cluster(
    config: Config,
    *,
    cluster: str | None = None,
    context: str | None = None,
    kubeconfig: str | None = None,
    oci_endpoints: Mapping[str, str] | None = None,
) -> LiveCluster:
    """The cluster named in the configuration, or an ad-hoc one for a kubeconfig context."""
    if cluster is not None:
        return LiveCluster(config, config.cluster(cluster), oci_endpoints)
    if context is None and len(config.clusters) == 1:
        return LiveCluster(config, config.clusters[0], oci_endpoints)
    if context is None and config.clusters:
        names = ", ".join(c.name for c in config.clusters)
        raise PlanError(
            f"the configuration lists several clusters: pick one with --cluster ({names})"
        )
    if context is None:
        from okeguard.inventory.kubeconfig import resolve_context

        _, context = resolve_context(kubeconfig, None)
    adhoc = ClusterConfig(name=context, context=context, kubeconfig=kubeconfig)
    return LiveCluster(config, adhoc, oci_endpoints)
