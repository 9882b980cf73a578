"""Scanning a repository as it is, through the real console script: manifests beside files that
are not Kubernetes objects, a kustomize overlay, a Helm chart; and scans that must not pass
silently (nothing to scan, a namespace or a check that cannot apply).

The overlay is rendered with kubectl when it is on PATH (CI installs it); without it the test
asserts the warning instead. Helm is handled the same way, and a stand-in helm on PATH renders
the chart wherever the test runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Run, one_error_line
from tests.helpers import HARDENED_CONTAINER, deployment

PRIVILEGED_CONTAINER = {
    "name": "app",
    "image": "nginx:1.27",
    "securityContext": {"privileged": True},
}
HELM_OUTPUT = "---\n# Source: web/templates/deployment.yaml\n" + yaml.safe_dump(
    deployment("release-name-web", namespace="default", containers=[PRIVILEGED_CONTAINER])
)
NOT_KUBERNETES = ["docker-compose.yml", "okeguard.yaml", "package.json", "values.yaml"]


def write(path: Path, content: str | dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository: plain manifests, a kustomize base and overlay (whose patch makes the
    container privileged), a Helm chart, and the usual files that are not Kubernetes objects."""
    root = tmp_path / "repo"
    write(root / "k8s" / "api.yaml", deployment("api", containers=[PRIVILEGED_CONTAINER]))
    write(
        root / "k8s" / "policy.json",
        json.dumps(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": "shop"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            }
        ),
    )
    base = root / "deploy" / "base"
    write(base / "kustomization.yaml", "resources: [deployment.yaml]\n")
    write(
        base / "deployment.yaml", deployment("web", namespace=None, containers=[HARDENED_CONTAINER])
    )
    overlay = root / "deploy" / "overlays" / "prod"
    write(
        overlay / "kustomization.yaml",
        "resources: [../../base]\nnamespace: prod\npatches:\n- path: privileged.yaml\n",
    )
    write(
        overlay / "privileged.yaml",  # a patch: not an object of its own
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
        "    spec:\n      containers:\n      - {name: app, securityContext: {privileged: true}}\n",
    )
    chart = root / "charts" / "web"
    write(chart / "Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write(chart / "values.yaml", "privileged: true\n")
    write(
        chart / "templates" / "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n    spec:\n      containers:\n"
        "      - name: app\n        image: nginx:1.27\n"
        "        securityContext: {privileged: {{ .Values.privileged }}}\n",
    )
    write(root / "values.yaml", "replicaCount: 2\nimage: {repository: shop/api, tag: latest}\n")
    write(root / "docker-compose.yml", "services:\n  api:\n    image: shop/api\n")
    write(root / "package.json", json.dumps({"name": "shop", "scripts": {"test": "jest"}}))
    write(root / "okeguard.yaml", "exposure: private\nchecks: {disabled: []}\n")
    write(root / ".github" / "workflows" / "ci.yml", "on: push\njobs: {}\n")
    write(
        root / "node_modules" / "pkg" / "example.yaml",
        deployment("vendored", containers=[PRIVILEGED_CONTAINER]),
    )
    return root


def fake_helm(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    helm = bin_dir / "helm"
    helm.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write({HELM_OUTPUT!r})\n")
    helm.chmod(0o755)


def findings(stdout: str) -> dict[tuple[str, str | None, str], str | None]:
    """(check, namespace, name) -> origin of each k8s.privileged finding."""
    return {
        (f["check_id"], f["resource"]["namespace"], f["resource"]["name"]): f.get("origin")
        for f in json.loads(stdout)["findings"]
        if f["check_id"] == "k8s.privileged"
    }


def test_a_repository_is_scanned_as_it_is(run: Run, repo: Path) -> None:
    result = run("scan", str(repo), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    found = findings(result.stdout)
    assert found[("k8s.privileged", "shop", "api")] == f"{repo / 'k8s' / 'api.yaml'}:1"
    assert not [key for key in found if key[2] == "vendored"]  # node_modules is not entered
    source = report["source"]
    assert source["skipped_files"] == [str(repo / name) for name in NOT_KUBERNETES]
    assert source["files"] == 2  # api.yaml, policy.json; the overlay's patch is not one
    skipped = "okeguard: skipped 4 files that are not Kubernetes objects (-v lists them)"
    assert skipped in result.stderr.splitlines()

    overlay = repo / "deploy" / "overlays" / "prod"
    if shutil.which("kubectl"):
        # the overlay is rendered with its patch; its base is not scanned again on its own
        origin = found[("k8s.privileged", "prod", "web")]
        assert origin == f"{overlay / 'kustomization.yaml'}:1 (kustomize)"
        assert ("k8s.privileged", "default", "web") not in found
        assert str(overlay) in source["rendered"]
    else:
        warning = (
            f"kubectl not found: skipped kustomization {overlay}; install kubectl, or render it "
            f"with `kubectl kustomize {overlay}` and scan the output"
        )
        assert warning in result.stderr
        assert not [key for key in found if key[2] == "web"]

    chart = repo / "charts" / "web"
    if shutil.which("helm"):
        assert str(chart) in source["rendered"]
        origin = found[("k8s.privileged", "default", "release-name-web")]
        assert origin == f"{chart / 'templates' / 'deployment.yaml'}:1 (helm)"
    else:
        hint = (
            f"helm not found: skipped chart {chart}; render it with `helm template {chart}` "
            "and scan the output"
        )
        assert hint in result.stderr
        assert {"path": str(chart), "reason": hint} in source["not_rendered"]

    failing = run("scan", str(repo), "--fail-on", "high", "-q")
    assert failing.returncode == 1, failing.stderr
    assert "skipped 4 files" not in failing.stderr  # -q: no summary


def test_without_kubectl_and_helm_each_directory_is_skipped_with_a_hint(
    run: Run, repo: Path, tmp_path: Path
) -> None:
    empty_path = tmp_path / "no-tools"
    empty_path.mkdir()
    result = run("scan", str(repo), "--format", "json", env={"PATH": str(empty_path)})
    assert result.returncode == 0, result.stderr
    overlay, chart = repo / "deploy" / "overlays" / "prod", repo / "charts" / "web"
    assert result.stderr.splitlines() == [
        f"WARNING okeguard.inventory.manifests: helm not found: skipped chart {chart}; render "
        f"it with `helm template {chart}` and scan the output",
        f"WARNING okeguard.inventory.manifests: kubectl not found: skipped kustomization "
        f"{overlay}; install kubectl, or render it with `kubectl kustomize {overlay}` and scan "
        "the output",
        "okeguard: skipped 4 files that are not Kubernetes objects (-v lists them)",
    ]
    assert set(findings(result.stdout)) == {("k8s.privileged", "shop", "api")}
    only_overlay = run("scan", str(overlay), env={"PATH": str(empty_path)})
    assert only_overlay.returncode == 2
    assert only_overlay.stderr.splitlines()[-1] == (
        f"okeguard: error: nothing to scan: no Kubernetes objects in {overlay} "
        "(1 directory not rendered, see above)"
    )


def test_a_chart_is_rendered_with_helm_and_points_at_its_template(
    run: Run, repo: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "helm-bin"
    fake_helm(bin_dir)
    chart = repo / "charts" / "web"
    result = run("scan", str(chart), "--format", "json", env={"PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    assert findings(result.stdout) == {
        ("k8s.privileged", "default", "release-name-web"): (
            f"{chart / 'templates' / 'deployment.yaml'}:1 (helm)"
        )
    }
    sarif = run("scan", str(chart), "--format", "sarif", env={"PATH": str(bin_dir)})
    locations = [
        r["locations"][0]["physicalLocation"]
        for r in json.loads(sarif.stdout)["runs"][0]["results"]
        if r["ruleId"] == "k8s.privileged"
    ]
    assert locations[0]["artifactLocation"]["uri"].endswith("charts/web/templates/deployment.yaml")


def test_verbose_lists_the_files_skipped(run: Run, repo: Path) -> None:
    for args in (("scan", "-v", str(repo)), ("-v", "scan", str(repo))):
        result = run(*args, "--format", "json", "--check", "k8s.privileged")
        assert result.returncode == 0, result.stderr
        lines = result.stderr.splitlines()
        for name in NOT_KUBERNETES:
            assert any(
                line.startswith("INFO okeguard.inventory.manifests: skipped ")
                and f"{repo / name}: not a Kubernetes object (no " in line
                for line in lines
            ), (name, lines)
        assert "okeguard: skipped 4 files that are not Kubernetes objects" in lines


def test_paths_may_be_given_without_manifests_and_dash_is_stdin(run: Run, repo: Path) -> None:
    api = repo / "k8s" / "api.yaml"
    positional = run("scan", str(repo / "k8s"), str(api), "--format", "json", "-q")
    assert positional.returncode == 0, positional.stderr
    assert findings(positional.stdout) == {("k8s.privileged", "shop", "api"): f"{api}:1"}
    assert positional.stderr == ""
    piped = run("scan", "-", "--format", "json", stdin=api.read_text())
    assert findings(piped.stdout) == {("k8s.privileged", "shop", "api"): "<stdin>:1"}
    both = run("scan", "--manifests", "-", str(repo / "k8s"), "--format", "json", stdin="")
    assert both.returncode == 0, both.stderr  # empty stdin, but the directory has objects
    line = one_error_line(run("scan", "--demo", str(api)))
    assert "choose one source" in line


def test_a_file_named_explicitly_must_be_kubernetes(run: Run, repo: Path) -> None:
    for name in ("values.yaml", "docker-compose.yml", "package.json"):
        line = one_error_line(run("scan", str(repo / name)))
        assert line.startswith(f"okeguard: error: {repo / name}:1: not a Kubernetes object: no ")


def test_nothing_to_scan_exits_two(run: Run, tmp_path: Path) -> None:
    empty_stdin = run("scan", "--manifests", "-", "--fail-on", "high", stdin="")
    assert one_error_line(empty_stdin) == (
        "okeguard: error: nothing to scan: no Kubernetes objects in standard input"
    )
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert one_error_line(run("scan", str(empty_dir), "--fail-on", "high")) == (
        f"okeguard: error: nothing to scan: no Kubernetes objects in {empty_dir}"
    )
    no_objects = tmp_path / "app"
    write(no_objects / "values.yaml", "replicas: 2\n")
    write(no_objects / "package.json", "{}\n")
    assert one_error_line(run("scan", str(no_objects), "--format", "sarif")) == (
        f"okeguard: error: nothing to scan: no Kubernetes objects in {no_objects} (skipped 2 "
        "files that are not Kubernetes objects, -v lists them)"
    )


def test_a_namespace_or_check_that_cannot_apply_is_a_warning(run: Run, repo: Path) -> None:
    k8s = str(repo / "k8s")
    absent = run("scan", k8s, "--namespace", "payments", "-n", "shp", "--format", "json")
    assert absent.returncode == 0, absent.stderr
    assert json.loads(absent.stdout)["findings"] == []
    assert absent.stderr.splitlines() == [
        "okeguard: warning: --namespace payments: the input has nothing in this namespace "
        "(its namespaces: shop)",
        "okeguard: warning: --namespace shp: the input has nothing in this namespace "
        "(did you mean 'shop'?)",
    ]
    present = run("scan", k8s, "--namespace", "shop", "--fail-on", "high", "-q")
    assert present.returncode == 1 and present.stderr == ""

    checks = ("--check", "oke.public-api-endpoint", "--check", "k8s.no-log-collector")
    inapplicable = run("scan", k8s, *checks, "--check", "k8s.privileged", "--fail-on", "high")
    assert inapplicable.returncode == 1  # the check that ran still decides
    warnings = [line for line in inapplicable.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "okeguard: warning: --check oke.public-api-endpoint: not run: it reads the cluster's OCI "
        "resources, which a manifests scan does not have (scan with --config and the cluster's "
        "OCI settings)",
        "okeguard: warning: --check k8s.no-log-collector: not run: it needs the whole cluster, "
        "which a manifests scan is not (scan with --context or --snapshot)",
    ]
    only_oci = run("scan", k8s, "--check", "oke.public-api-endpoint", "--fail-on", "low")
    assert only_oci.returncode == 0
    assert "--check oke.public-api-endpoint: not run" in only_oci.stderr


def test_a_namespace_absent_from_a_cluster_snapshot_is_a_warning_too(run: Run) -> None:
    # the demo's snapshots: whole clusters, whose namespaces come from their objects
    absent = run("scan", "--demo", "--namespace", "kube-sytem", "-n", "checkout", "-o", os.devnull)
    assert absent.returncode == 0, absent.stderr
    assert absent.stderr.splitlines() == [
        "okeguard: warning: --namespace kube-sytem: the input has nothing in this namespace "
        "(did you mean 'kube-system'?)"
    ]
    empty = run("scan", "--demo", "--namespace", "kube-node-lease", "-o", os.devnull)
    assert empty.returncode == 0 and empty.stderr == ""  # a Namespace object with nothing in it
