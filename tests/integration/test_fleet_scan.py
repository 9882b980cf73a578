"""Scanning the clusters of a configuration file: two fake Kubernetes API servers, one report."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from okeguard.config import Config, load_config
from okeguard.errors import ConfigError
from okeguard.fleet import scan_configured
from tests.e2e.conftest import okeguard_command, one_error_line
from tests.fakes.kube_api import running_fake_kube_api
from tests.helpers import HARDENED_CONTAINER, deployment

ROOT_APP = deployment("legacy", namespace="shop")
CLEAN_APP = deployment("clean", namespace="shop", containers=[HARDENED_CONTAINER])


@pytest.fixture
def fleet(tmp_path: Path):
    """Two fake clusters (prod: a root container; lab: clean) and an okeguard.yaml naming both."""
    with running_fake_kube_api([ROOT_APP]) as prod, running_fake_kube_api([CLEAN_APP]) as lab:
        prod.write_kubeconfig(tmp_path / "prod.kubeconfig", context="prod")
        lab.write_kubeconfig(tmp_path / "lab.kubeconfig", context="lab")
        config = {
            "exposure": "private",
            "clusters": [
                {
                    "name": "prod",
                    "context": "prod",
                    "kubeconfig": str(tmp_path / "prod.kubeconfig"),
                    "exposure": "public",
                },
                {"name": "lab", "context": "lab", "kubeconfig": str(tmp_path / "lab.kubeconfig")},
            ],
        }
        path = tmp_path / "okeguard.yaml"
        path.write_text(yaml.safe_dump(config))
        yield path, prod, lab


def test_every_configured_cluster_lands_in_one_report(fleet) -> None:
    path, prod, lab = fleet
    report = scan_configured(load_config(path))
    assert report.cluster == "prod, lab"
    assert report.source["type"] == "config"
    clusters = {f.cluster for f in report.findings}
    assert clusters == {"prod", "lab"}
    root = [f for f in report.findings if f.check_id == "k8s.run-as-root"]
    assert [(f.cluster, f.resource.name) for f in root] == [("prod", "legacy")]
    # each cluster is judged with its own exposure: public raises the policy finding to high
    policy = {
        f.cluster: f.severity.value
        for f in report.findings
        if f.check_id == "k8s.missing-network-policy"
    }
    assert policy == {"prod": "high", "lab": "medium"}
    assert prod.requests and lab.requests


def test_cluster_selection_and_errors(fleet) -> None:
    path, _, _ = fleet
    config = load_config(path)
    only_lab = scan_configured(config, ["lab"])
    assert only_lab.cluster == "lab" and {f.cluster for f in only_lab.findings} == {"lab"}
    with pytest.raises(
        ConfigError,
        match="no cluster named 'prd' in the configuration \\(did you mean 'prod'\\?\\)",
    ):
        scan_configured(config, ["prd"])


def test_the_command_line_scans_the_configuration(fleet, tmp_path: Path) -> None:
    path, _, _ = fleet
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path)}
    env.pop("KUBECONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*okeguard_command(), *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=120, check=False
        )

    result = run("scan", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {f["cluster"] for f in doc["findings"]} == {"prod", "lab"}
    assert (
        run(
            "scan", "--config", str(path), "--cluster", "prod", "--fail-on", "high", "-q"
        ).returncode
        == 1
    )
    assert (
        run("scan", "--config", str(path), "--cluster", "lab", "--fail-on", "high", "-q").returncode
        == 0
    )
    assert "did you mean 'prod'" in one_error_line(
        run("scan", "--config", str(path), "--cluster", "prdo")
    )
    assert "cannot be combined" in one_error_line(run("scan", "--demo", "--cluster", "prod"))
    snapshot = tmp_path / "lab.jsonl"
    assert (
        run(
            "snapshot", "--config", str(path), "--cluster", "lab", "-o", str(snapshot), "-q"
        ).returncode
        == 0
    )
    header = json.loads(snapshot.read_text().splitlines()[0])
    assert header["cluster"]["name"] == "lab"
    assert "choose one with --cluster" in one_error_line(
        run("snapshot", "--config", str(path), "-o", str(snapshot))
    )


def test_a_configuration_without_clusters_says_so(tmp_path: Path) -> None:
    path = tmp_path / "okeguard.yaml"
    path.write_text("exposure: private\n")
    with pytest.raises(ConfigError, match="lists no clusters"):
        scan_configured(load_config(path))


def test_a_configured_cluster_is_scanned_on_both_sides(tmp_path: Path) -> None:
    """Kubernetes from the fake API server, OCI from the fake OCI server: oke.* checks run."""
    from tests.fakes.oci_api import REGION, FakeOciApi, running_fake_oci_api
    from tests.fakes.oci_world import COMPARTMENT, build_oke_world

    with running_fake_kube_api([ROOT_APP]) as kube, running_fake_oci_api() as oci_api:
        world = build_oke_world(oci_api)
        kube.write_kubeconfig(tmp_path / "kubeconfig", context="prod")
        oci_config = FakeOciApi().write_config(tmp_path)
        config = load_config_from(
            tmp_path,
            {
                "oci": {"mode": "config_file", "config_file": str(oci_config)},
                "clusters": [
                    {
                        "name": "prod",
                        "context": "prod",
                        "kubeconfig": str(tmp_path / "kubeconfig"),
                        "cluster_id": world.cluster_id,
                        "region": REGION,
                        "compartments": [COMPARTMENT],
                    }
                ],
            },
        )
        report = scan_configured(config, oci_endpoints=oci_api.service_endpoints())
    oke = {f.check_id for f in report.findings if f.check_id.startswith("oke.")}
    assert "oke.world-open-ingress" in oke  # the world's worker security list opens SSH
    assert "oke.world-open-ingress" in report.checks_run
    assert report.complete, report.incomplete


def test_an_unreadable_oci_side_is_reported_never_passed(tmp_path: Path) -> None:
    from tests.fakes.oci_api import REGION, FakeOciApi, running_fake_oci_api
    from tests.fakes.oci_world import COMPARTMENT, build_oke_world

    with running_fake_kube_api([CLEAN_APP]) as kube, running_fake_oci_api() as oci_api:
        world = build_oke_world(oci_api)
        oci_api.fail("/20160918/securityLists/*", 403)
        kube.write_kubeconfig(tmp_path / "kubeconfig", context="prod")
        oci_config = FakeOciApi().write_config(tmp_path)
        config = load_config_from(
            tmp_path,
            {
                "oci": {"mode": "config_file", "config_file": str(oci_config)},
                "clusters": [
                    {
                        "name": "prod",
                        "context": "prod",
                        "kubeconfig": str(tmp_path / "kubeconfig"),
                        "cluster_id": world.cluster_id,
                        "region": REGION,
                        "compartments": [COMPARTMENT],
                    }
                ],
            },
        )
        report = scan_configured(config, oci_endpoints=oci_api.service_endpoints())
    assert not report.complete
    unknown = [f for f in report.findings if f.status.value == "unknown"]
    assert {f.check_id for f in unknown} >= {"oke.world-open-ingress"}
    world_open = {
        f.resource.kind: f.status.value
        for f in report.findings
        if f.check_id == "oke.world-open-ingress"
    }
    # the security lists could not be read: unknown, never "fine"; the readable NSG is still judged
    assert world_open["SecurityList"] == "unknown"
    assert world_open["NetworkSecurityGroup"] == "open"
    reasons = " ".join(gap["reason"] for gap in report.incomplete)
    assert "Allow group" in reasons and "virtual-network-family" in reasons


def load_config_from(folder: Path, data: dict) -> Config:
    path = folder / "okeguard.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_compartment_listings_are_shared_across_a_fleet_but_failures_are_not(
    tmp_path: Path,
) -> None:
    """Three clusters in one compartment: log groups and secrets are listed once, not per
    cluster; a listing that failed is tried again, so every cluster records its own gap."""
    from okeguard.config import ClusterConfig, OciAuthConfig
    from okeguard.inventory.oci import SharedReads, collect_oci
    from tests.fakes.oci_api import REGION, FakeOciApi, running_fake_oci_api
    from tests.fakes.oci_world import COMPARTMENT, build_oke_world

    auth = OciAuthConfig(mode="config_file", config_file=str(FakeOciApi().write_config(tmp_path)))
    with running_fake_oci_api() as api:
        worlds = [build_oke_world(api) for _ in range(3)]
        clusters = [
            ClusterConfig(
                name=f"c{i}", cluster_id=w.cluster_id, region=REGION, compartments=(COMPARTMENT,)
            )
            for i, w in enumerate(worlds)
        ]
        endpoints = api.service_endpoints()
        shared = SharedReads()
        for cluster in clusters:
            collect_oci(
                cluster, auth, service_endpoints=endpoints, shared=shared, retry_base_sleep=0.01
            )
        assert api.count("/20200531/logGroups") == 1  # not once per cluster
        assert api.count("/20180608/secrets") == 1
        with_sharing = api.count()
        api.reset_requests()
        for cluster in clusters:
            collect_oci(cluster, auth, service_endpoints=endpoints, retry_base_sleep=0.01)
        assert with_sharing < api.count()

        api.reset_requests()
        api.fail("/20180608/secrets*", 403)
        shared = SharedReads()
        states = [
            collect_oci(c, auth, service_endpoints=endpoints, shared=shared, retry_base_sleep=0.01)
            for c in clusters
        ]
    for state in states:
        assert state.gaps_for("vault_secrets"), "a cluster passed on a shared read that had failed"
        assert state.vault_secrets == ()
