"""Whole-cluster checks (practices P14, P15): is anything shipping logs, is anything monitoring?

They need a whole-cluster view (live or snapshot): on a set of manifests they are not applicable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator

from okeguard.checks._common import WORKLOAD_READS
from okeguard.checks.images import parse_image
from okeguard.checks.model import ResourceRef, Severity
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import Workload

LOG_SHIPPERS = (
    "fluent-bit",
    "fluentbit",
    "fluentd",
    "vector",
    "promtail",
    "filebeat",
    "elastic-agent",
    "logstash",
    "grafana-agent",
    "alloy",
    "oci-logging",
    "unified-monitoring-agent",
    "oci-onm",
    "logan",
    "splunk-otel-collector",
    "datadog-agent",
    "opentelemetry-collector",
    "otel-collector",
)
MONITORS = (
    "prometheus",
    "node-exporter",
    "kube-state-metrics",
    "grafana-agent",
    "alloy",
    "vmagent",
    "victoria-metrics",
    "datadog-agent",
    "newrelic-infrastructure",
    "dynatrace",
    "mgmtagent",
    "management-agent",
    "opentelemetry-collector",
    "otel-collector",
)


def workload_identities(workload: Workload) -> set[str]:
    """The workload's name and the repository names of its images, lower-case."""
    names = {workload.name.lower()}
    for container in workload.containers:
        if container.image:
            names.add(parse_image(container.image).repository.rsplit("/", 1)[-1].lower())
    return names


def runs_any(workloads: Iterable[Workload], products: Iterable[str]) -> Workload | None:
    """The first workload whose name or image repository contains one of ``products``."""
    contains = _any_of(tuple(products))
    for workload in workloads:
        if any(contains(identity) for identity in workload_identities(workload)):
            return workload
    return None


@functools.lru_cache(maxsize=16)
def _any_of(products: tuple[str, ...]) -> Callable[[str], object]:
    """A test that a text contains one of ``products``: one regex search instead of a loop
    over the products for each of ten thousand workloads."""
    if not products:
        return lambda _: False
    return re.compile("|".join(map(re.escape, products))).search


def _cluster_ref(ctx: CheckContext) -> ResourceRef:
    return ResourceRef("Cluster", None, ctx.inventory.cluster)


@check(
    id="k8s.no-log-collector",
    title="No log collector",
    practice="P14",
    severity=Severity.LOW,
    reads=("DaemonSet",),
    whole_cluster=True,
)
def no_log_collector(ctx: CheckContext) -> Iterator[Hit]:
    """No log-shipping DaemonSet (Fluent Bit, Fluentd, Vector, Promtail, Filebeat, the OCI Logging
    agents, …) runs in the cluster, in any namespace, so container logs stay on the nodes."""
    daemonsets = (w for w in ctx.inventory.workloads if w.kind == "DaemonSet")
    if runs_any(daemonsets, LOG_SHIPPERS) is None:
        yield Hit(
            _cluster_ref(ctx),
            "No DaemonSet ships container logs (no Fluent Bit, Fluentd, Vector, Promtail, Filebeat or OCI Logging agent found).",
        )


@check(
    id="k8s.no-monitoring",
    title="No monitoring",
    practice="P15",
    severity=Severity.LOW,
    reads=WORKLOAD_READS,
    whole_cluster=True,
)
def no_monitoring(ctx: CheckContext) -> Iterator[Hit]:
    """Nothing scrapes the cluster: no Prometheus (or an equivalent agent: node-exporter,
    Grafana Agent/Alloy, vmagent, Datadog, OCI Management Agent, …) runs in any namespace."""
    if runs_any(ctx.inventory.workloads, MONITORS) is None:
        yield Hit(
            _cluster_ref(ctx),
            "No workload monitors the cluster (no Prometheus, node-exporter, Grafana Agent, vmagent, Datadog or OCI Management Agent found).",
        )
