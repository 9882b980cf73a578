"""The command line through its real entry point: exit codes, streams, errors, formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Run, one_error_line
from tests.helpers import HARDENED_CONTAINER, deployment

PRIVILEGED = deployment(
    "agent",
    containers=[{"name": "agent", "image": "nginx:1.27", "securityContext": {"privileged": True}}],
)
CLEAN = deployment("clean", containers=[HARDENED_CONTAINER])
POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "deny", "namespace": "shop"},
    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
}


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "k8s"
    (folder / "apps").mkdir(parents=True)
    (folder / "apps" / "agent.yaml").write_text(yaml.safe_dump_all([PRIVILEGED, POLICY]))
    (folder / "clean.yaml").write_text(yaml.safe_dump_all([CLEAN, POLICY]))
    return folder


def test_json_goes_to_stdout_alone_and_parses(run: Run, manifests: Path) -> None:
    result = run("scan", "--manifests", str(manifests), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "okeguard.scan/v1"
    privileged = [f for f in doc["findings"] if f["check_id"] == "k8s.privileged"]
    assert [f["resource"]["name"] for f in privileged] == ["agent"]
    assert not [f for f in doc["findings"] if f["resource"]["name"] == "clean"]
    assert "k8s.no-log-collector" in doc["summary"]["checks_not_applicable"]


def test_fail_on_sets_exit_code_one_only_at_or_above_the_threshold(
    run: Run, manifests: Path
) -> None:
    assert run("scan", "--manifests", str(manifests), "--fail-on", "critical", "-q").returncode == 1
    clean = manifests / "clean.yaml"
    assert run("scan", "--manifests", str(clean), "--fail-on", "info", "-q").returncode == 0
    medium_only = (
        "scan",
        "--manifests",
        str(manifests),
        "--check",
        "k8s.privilege-escalation",
        "-q",
    )
    assert run(*medium_only, "--fail-on", "high").returncode == 0
    assert run(*medium_only, "--fail-on", "MEDIUM").returncode == 1
    assert run(*medium_only).returncode == 0  # no --fail-on: findings alone never fail


def test_stdin_manifests_work_like_files(run: Run) -> None:
    result = run("scan", "--manifests", "-", "--format", "json", stdin=yaml.safe_dump(PRIVILEGED))
    assert result.returncode == 0, result.stderr
    origins = {f.get("origin") for f in json.loads(result.stdout)["findings"]} - {None}
    assert origins == {"<stdin>:1"}


def test_several_paths_after_manifests(run: Run, manifests: Path) -> None:
    result = run(
        "scan",
        "--manifests",
        str(manifests / "apps"),
        str(manifests / "clean.yaml"),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert (
        json.loads(result.stdout)["summary"]["objects_scanned"] == 3
    )  # the policy twice counts once


def test_check_and_namespace_filters(run: Run, manifests: Path) -> None:
    result = run(
        "scan", "--manifests", str(manifests), "--check", "k8s.privileged", "--format", "json"
    )
    doc = json.loads(result.stdout)
    assert doc["summary"]["checks_run"] == ["k8s.privileged"]
    assert {f["check_id"] for f in doc["findings"]} == {"k8s.privileged"}
    other = run("scan", "--manifests", str(manifests), "--namespace", "other", "--format", "json")
    assert json.loads(other.stdout)["findings"] == []


@pytest.mark.parametrize("fmt", ["table", "markdown", "sarif"])
def test_every_format_renders(run: Run, manifests: Path, fmt: str) -> None:
    result = run("scan", "--manifests", str(manifests), "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert "k8s.privileged" in result.stdout
    if fmt == "sarif":
        assert json.loads(result.stdout)["version"] == "2.1.0"


def test_output_file(run: Run, manifests: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.sarif"
    result = run("scan", "--manifests", str(manifests), "--format", "sarif", "-o", str(out))
    assert result.returncode == 0 and result.stdout == ""
    assert json.loads(out.read_text())["runs"][0]["results"]


def test_errors_are_one_line_with_exit_two(run: Run, manifests: Path, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: [\n")
    not_k8s = tmp_path / "values.yaml"
    not_k8s.write_text("replicas: 3\n")
    cases = {
        ("scan", "--manifests", str(tmp_path / "missing")): "missing: no such file or directory",
        ("scan", "--manifests", str(bad_yaml)): f"{bad_yaml}:",
        ("scan", "--manifests", str(not_k8s)): f"{not_k8s}:1: not a Kubernetes object",
        (
            "scan",
            "--manifests",
            str(manifests),
            "--check",
            "k8s.privilegd",
        ): "did you mean 'k8s.privileged'",
        ("scan", "--manifests", str(manifests), "--fail-on", "severe"): "unknown severity 'severe'",
        ("scan", "--manifests", str(manifests), "--formt", "json"): "Did you mean '--format'",
        ("scan",): "nothing to scan",
        ("scan", "--demo", "--manifests", str(manifests)): "choose one source",
        ("scan", "--snapshot", str(not_k8s)): "invalid JSON",
        (
            "scan",
            "--manifests",
            str(manifests),
            "--config",
            str(tmp_path / "nope.yaml"),
        ): "configuration file not found",
    }
    for args, expected in cases.items():
        line = one_error_line(run(*args))
        assert line.startswith("okeguard: error: "), line
        assert expected in line, (args, line)
    assert "invalid YAML" in one_error_line(run("scan", "--manifests", str(bad_yaml)))


def test_checks_command_and_version(run: Run) -> None:
    result = run("checks", "--format", "json")
    ids = [c["id"] for c in json.loads(result.stdout)]
    assert "k8s.run-as-root" in ids and "kubeconfig.static-credentials" in ids
    assert run("checks").stdout.splitlines()[0].startswith("ID")
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("okeguard ")


def test_help_has_examples(run: Run) -> None:
    for args in (("--help",), ("scan", "--help"), ("snapshot", "--help"), ("checks", "--help")):
        result = run(*args)
        assert result.returncode == 0
        assert "okeguard " in result.stdout and "Example" in result.stdout, args


def test_kubeconfig_with_manifests_checks_static_credentials(
    run: Run, manifests: Path, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "users": [
                    {"name": "ci", "user": {"token": "abc.def.ghi"}},
                    {
                        "name": "me",
                        "user": {
                            "exec": {"command": "oci", "args": ["ce", "cluster", "generate-token"]}
                        },
                    },
                ],
            }
        )
    )
    result = run(
        "scan",
        "--manifests",
        str(manifests),
        "--kubeconfig",
        str(kubeconfig),
        "--format",
        "json",
        "--check",
        "kubeconfig.static-credentials",
    )
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["resource"]["kind"], f["resource"]["name"]) for f in findings] == [
        ("KubeconfigUser", "ci")
    ]
    assert "abc.def.ghi" not in result.stdout
