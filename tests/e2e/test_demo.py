"""The demo tells its story: every check (k8s.*, kubeconfig.*, oke.*) fires, most workloads are clean,
and the result does not change with the calendar."""

from __future__ import annotations

import json
from collections import Counter

from okeguard.checks.registry import all_checks
from okeguard.inventory.model import WORKLOAD_KINDS
from okeguard.service import ScanRequest, load_inventory
from tests.e2e.conftest import Run


def demo_report(run: Run, *args: str) -> dict:
    result = run("scan", "--demo", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_check_fires_in_the_demo(run: Run) -> None:
    doc = demo_report(run)
    fired = Counter(f["check_id"] for f in doc["findings"] if f["status"] == "open")
    registered = {spec.id for spec in all_checks()}  # k8s.*, kubeconfig.* and oke.*: all of them
    assert registered - set(fired) == set()
    assert doc["source"]["type"] == "demo" and doc["cluster"] == "shop-prod, shop-legacy"
    assert [c["cluster"] for c in doc["source"]["clusters"]] == ["shop-prod", "shop-legacy"]
    assert doc["summary"]["incomplete"] == []


def test_most_demo_workloads_are_clean(run: Run) -> None:
    doc = demo_report(run)
    workloads = load_inventory(ScanRequest(demo=True)).workloads
    open_on_workloads = [
        f
        for f in doc["findings"]
        if f["resource"]["kind"] in WORKLOAD_KINDS and f["status"] == "open"
    ]
    offenders = {(f["resource"]["namespace"], f["resource"]["name"]) for f in open_on_workloads}
    serious = {
        (f["resource"]["namespace"], f["resource"]["name"])
        for f in open_on_workloads
        if f["severity"] in ("critical", "high")
    }
    assert len(workloads) >= 12
    assert 0 < len(offenders) < len(workloads) / 2
    assert 0 < len(serious) <= 3


def test_the_demo_is_evaluated_at_its_capture_time(run: Run) -> None:
    doc = demo_report(run)
    assert doc["evaluated_at"] == "2026-11-20T08:00:00Z"
    assert demo_report(run)["findings"] == doc["findings"]


def test_demo_table_ends_with_the_summary(run: Run) -> None:
    result = run("scan", "--demo")
    assert result.returncode == 0
    last = result.stdout.rstrip().splitlines()[-1]
    assert last.startswith("shop-prod, shop-legacy: ") and last.endswith("complete")
    assert run("scan", "--demo", "--fail-on", "critical", "-q").returncode == 1
