"""Spec tests for the whole-cluster checks k8s.no-log-collector and k8s.no-monitoring (CHECKS.md).

Written from the specification, not from okeguard/checks/cluster.py. Both need a whole-cluster view
(live or snapshot) and are not applicable to a set of manifests.
"""

from __future__ import annotations

import pytest

from okeguard.checks.engine import run_checks
from okeguard.config import Config
from tests.helpers import NOW, inventory
from tests.unit.factories import bare_container, one, run, workload

LOGS = "k8s.no-log-collector"
METRICS = "k8s.no-monitoring"

APP = workload("Deployment", "web", "shop")


def _agent(kind: str, name: str, ns: str, image: str) -> dict:
    return workload(kind, name, ns, containers=[bare_container(name, image=image)])


LOG_COLLECTORS = [
    _agent("DaemonSet", "fluent-bit", "kube-system", "cr.fluentbit.io/fluent/fluent-bit:3.0.4"),
    _agent("DaemonSet", "fluentd", "logging", "fluent/fluentd-kubernetes-daemonset:v1.16-debian-1"),
    _agent("DaemonSet", "vector", "observability", "timberio/vector:0.39.0-distroless-libc"),
]
MONITORING = [
    _agent("StatefulSet", "prometheus-k8s", "monitoring", "quay.io/prometheus/prometheus:v2.53.0"),
    _agent(
        "Deployment", "prometheus-server", "prometheus", "quay.io/prometheus/prometheus:v2.53.0"
    ),
    _agent("DaemonSet", "prometheus-agent", "kube-system", "quay.io/prometheus/prometheus:v2.53.0"),
]


@pytest.mark.parametrize("check_id", [LOGS, METRICS])
def test_fires_on_a_whole_cluster_without_one(check_id: str) -> None:
    f = one(run(check_id, [APP], whole_cluster=True))
    assert (f.check_id, f.severity.value, f.status.value, f.remediation) == (
        check_id,
        "low",
        "open",
        "guidance",
    )
    # A cluster-wide finding: no namespace, no container (the resource kind is left to the
    # implementation; CHECKS.md does not name it).
    assert f.resource.namespace is None and f.resource.container is None
    assert f.practice == (("P14",) if check_id == LOGS else ("P15",))


@pytest.mark.parametrize(
    "collector",
    LOG_COLLECTORS,
    ids=lambda d: f"{d['metadata']['namespace']}/{d['metadata']['name']}",
)
def test_log_collector_daemonset_in_any_namespace_passes(collector: dict) -> None:
    assert run(LOGS, [APP, collector], whole_cluster=True) == []


@pytest.mark.parametrize(
    "prometheus", MONITORING, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_prometheus_present_passes(prometheus: dict) -> None:
    assert run(METRICS, [APP, prometheus], whole_cluster=True) == []


def test_log_collector_does_not_count_as_monitoring_and_vice_versa() -> None:
    assert len(run(METRICS, [APP, LOG_COLLECTORS[0]], whole_cluster=True)) == 1
    assert len(run(LOGS, [APP, MONITORING[0]], whole_cluster=True)) == 1


def test_not_run_on_manifests() -> None:
    result = run_checks(inventory([APP]), Config(), now=NOW, only={LOGS, METRICS})
    assert set(result.not_applicable) == {LOGS, METRICS}
    assert result.findings == []
    assert LOGS not in result.checks_run and METRICS not in result.checks_run


def test_run_on_whole_cluster() -> None:
    result = run_checks(
        inventory([APP], whole_cluster=True), Config(), now=NOW, only={LOGS, METRICS}
    )
    assert result.not_applicable == []
    assert set(result.checks_run) == {LOGS, METRICS}
    assert sorted(f.check_id for f in result.findings) == [LOGS, METRICS]
