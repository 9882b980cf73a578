"""``add-security-context`` against the fake Kubernetes API through the real client and a real
database: both variants applied and verified, the re-scan shows exactly what the plan said stays
open, and every crash or rollback puts the original pod template back byte for byte."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from okeguard.config import ChecksConfig, RemediationConfig
from okeguard.remediations import workflow
from okeguard.remediations.engine import SimulatedCrash
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_chain_ok,
    live_cluster,
    reconcile_after_lease,
)
from tests.unit.factories import bare_container, namespace, workload
from tests.unit.test_security_context_exact import SC_CHECKS, said_to_stay_open

FAST = RemediationConfig(poll_interval_seconds=0.01, rollout_timeout_seconds=5)
CHECKS = ChecksConfig(denied_capabilities=("SYS_TIME",))


def _web() -> dict[str, Any]:
    """nginx on port 80 (root), a privileged sidecar with its own user, an istio-init that adds
    NET_ADMIN and NET_RAW as root, and a clock that adds the configured SYS_TIME."""
    doc = workload(
        containers=[
            bare_container("web", image="nginx:1.27", ports=[{"containerPort": 80}]),
            bare_container(
                "agent",
                image="fra.ocir.io/shop/agent:3",
                securityContext={"privileged": True, "runAsUser": 101},
            ),
            bare_container(
                "clock",
                image="fra.ocir.io/shop/clock:1",
                securityContext={"runAsUser": 1000, "capabilities": {"add": ["CAP_SYS_TIME"]}},
            ),
        ],
        init_containers=[
            bare_container(
                "istio-init",
                image="docker.io/istio/proxyv2:1.22.0",
                command=["istio-iptables"],
                securityContext={"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
            )
        ],
        labels={"app": "web"},
    )
    doc["spec"]["replicas"] = 2
    return doc


@pytest.fixture
def live(kube_api: FakeKubeApi) -> LiveCluster:
    kube_api.add(namespace("shop"), _web())
    return live_cluster(kube_api, FAST, checks=CHECKS)


def _plan(live: LiveCluster, variant: str) -> Plan:
    inventory = live.read()
    finding = next(
        f
        for f in live.findings(inventory, ("k8s.run-as-root",))
        if f.status.value == "open" and f.resource.kind == "Deployment"
    )
    return plan_finding(finding, inventory, live.config.remediation, variant)


def _open_sc(live: LiveCluster) -> set[tuple[str, str]]:
    """Open security-context findings on the Deployment (its pods are reported on it)."""
    return {
        (f.check_id, f.resource.container or "")
        for f in live.findings(live.read(), tuple(SC_CHECKS))
        if f.status.value == "open" and (f.resource.kind, f.resource.name) == ("Deployment", "web")
    }


def _template_bytes(api: FakeKubeApi) -> str:
    """The stored pod template as JSON, keys in stored order: equal strings, equal bytes."""
    return json.dumps(
        copy.deepcopy(api.get_object("Deployment", "web", "shop")["spec"]["template"])
    )


def test_the_default_plan_is_applied_and_every_security_context_finding_is_gone(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    assert {("k8s.dangerous-capabilities", n) for n in ("istio-init", "clock")} <= _open_sc(live)
    plan = _plan(live, "default")
    assert said_to_stay_open(plan) == set()
    for cap in ("NET_ADMIN", "NET_RAW", "SYS_TIME"):
        assert [r for r in plan.risks if f"capability {cap} removed" in r]
    assert [r for r in plan.risks if "container 'agent': privileged: true removed" in r]
    request_id = approved(database, plan, settings=FAST)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert (result.state, result.reason) == ("applied", None)
    assert _open_sc(live) == set()
    containers = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ]
    assert containers[1]["securityContext"]["runAsUser"] == 101  # the agent kept its user
    assert_chain_ok(database)


def test_the_conservative_plan_leaves_open_exactly_what_it_said(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    plan = _plan(live, "conservative")
    said = said_to_stay_open(plan)
    assert ("k8s.run-as-root", "web") in said and ("k8s.capabilities-not-dropped", "web") in said
    request_id = approved(database, plan, settings=FAST)
    assert workflow.apply_request(database.sessions, request_id, "bob", live).state == "applied"
    assert _open_sc(live) == said
    web = kube_api.get_object("Deployment", "web", "shop")["spec"]["template"]["spec"][
        "containers"
    ][0]["securityContext"]
    assert "ALL" not in web["capabilities"]["drop"] and "runAsUser" not in web
    assert_chain_ok(database)


@pytest.mark.parametrize("variant", ["default", "conservative"])
def test_a_crash_after_the_write_then_a_rollback_restores_the_template_byte_for_byte(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster, variant: str
) -> None:
    before = _template_bytes(kube_api)
    request_id = approved(database, _plan(live, variant), settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    assert _template_bytes(kube_api) != before
    [settled] = reconcile_after_lease(database, live, actor="okeguard-bot")
    assert settled.state == "applied"
    result = workflow.rollback_request(database.sessions, request_id, "carol", live)
    assert result.state == "rolled-back"
    assert _template_bytes(kube_api) == before
    assert_chain_ok(database)


@pytest.mark.parametrize("variant", ["default", "conservative"])
def test_a_crash_before_an_unhealthy_rollout_is_undone_byte_for_byte(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster, variant: str
) -> None:
    before = _template_bytes(kube_api)
    kube_api.set_rollout("Deployment", "shop", "web", "crashloop")
    request_id = approved(database, _plan(live, variant), settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=0)
    [settled] = reconcile_after_lease(database, live, actor="okeguard-bot")
    assert settled.state == "rolled-back"
    assert _template_bytes(kube_api) == before
    assert_chain_ok(database)


def test_an_unhealthy_rollout_is_rolled_back_byte_for_byte(
    database: Database, kube_api: FakeKubeApi, live: LiveCluster
) -> None:
    before = _template_bytes(kube_api)
    kube_api.set_rollout("Deployment", "shop", "web", "image-pull")
    request_id = approved(database, _plan(live, "default"), settings=FAST)
    result = workflow.apply_request(database.sessions, request_id, "bob", live)
    assert result.state == "rolled-back"
    assert _template_bytes(kube_api) == before
