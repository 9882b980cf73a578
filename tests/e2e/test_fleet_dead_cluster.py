"""A fleet scan survives a dead cluster: three configured clusters, one healthy, one whose API
server port is closed and one that answers 401. Every cluster is in the table and the JSON; the
dead ones are INCOMPLETE with a one-line reason, and the exit status follows --fail-on."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from okeguard.config import load_config
from okeguard.errors import ClusterAccessError
from okeguard.fleet import scan_configured
from tests.e2e.conftest import okeguard_command, one_error_line
from tests.fakes.kube_api import closed_port, running_fake_kube_api
from tests.helpers import deployment

ROOT = Path(__file__).resolve().parents[2]
REFUSED = "connection refused"
REJECTED = "401 Unauthorized"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Path]:
    """okeguard.yaml naming ``healthy`` (a root container), ``refused`` (a closed port) and
    ``rejecting`` (a server that answers every request with 401)."""
    with (
        running_fake_kube_api([deployment("legacy", namespace="shop")]) as healthy,
        running_fake_kube_api([deployment("other", namespace="shop")]) as rejecting,
    ):
        rejecting.global_status = 401
        healthy.write_kubeconfig(tmp_path / "healthy.kubeconfig", context="healthy")
        healthy.write_kubeconfig(
            tmp_path / "refused.kubeconfig",
            context="refused",
            server=f"http://127.0.0.1:{closed_port()}",
        )
        rejecting.write_kubeconfig(tmp_path / "rejecting.kubeconfig", context="rejecting")
        clusters = [
            {"name": name, "context": name, "kubeconfig": str(tmp_path / f"{name}.kubeconfig")}
            for name in ("healthy", "refused", "rejecting")
        ]
        path = tmp_path / "okeguard.yaml"
        path.write_text(yaml.safe_dump({"clusters": clusters}))
        yield path


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path), "COLUMNS": "200"}
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [*okeguard_command(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_report_names_every_cluster_and_why_the_dead_ones_are_incomplete(fleet) -> None:
    done: list[tuple[str, int]] = []
    report = scan_configured(
        load_config(fleet), on_cluster=lambda r, n: done.append((r.cluster, n))
    )
    # progress hears of every cluster, the dead ones included
    assert sorted(done) == [("healthy", 3), ("refused", 3), ("rejecting", 3)]
    assert report.cluster == "healthy, refused, rejecting"
    assert not report.complete
    reasons = dict(report.unreachable)
    assert set(reasons) == {"refused", "rejecting"}
    assert REFUSED in reasons["refused"] and REJECTED in reasons["rejecting"]
    # the healthy cluster is judged; the dead ones are unknown for every check, never a pass
    root = [f for f in report.findings if f.check_id == "k8s.run-as-root"]
    assert {(f.cluster, f.status.value) for f in root} == {
        ("healthy", "open"),
        ("refused", "unknown"),
        ("rejecting", "unknown"),
    }
    dead = [p for p in report.parts if p.unreachable]
    for part in dead:
        assert {f.status.value for f in part.findings} == {"unknown"}
        assert set(part.incomplete[0]["checks"]) == set(part.checks_run)


def test_the_command_line_reports_all_three_in_json_and_table(fleet, tmp_path: Path) -> None:
    result = _run(tmp_path, "scan", "--config", str(fleet), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    schema = json.loads((ROOT / "docs/schemas/okeguard.scan-v1.json").read_text())
    jsonschema.validate(doc, schema)
    by_cluster = {c["cluster"]: c for c in doc["source"]["clusters"]}
    assert list(by_cluster) == ["healthy", "refused", "rejecting"]
    assert by_cluster["healthy"]["complete"] is True
    assert "unreachable" not in by_cluster["healthy"]
    assert REFUSED in by_cluster["refused"]["unreachable"]
    assert REJECTED in by_cluster["rejecting"]["unreachable"]
    assert by_cluster["refused"]["complete"] is by_cluster["rejecting"]["complete"] is False
    incomplete = [g for g in doc["summary"]["incomplete"] if g["kind"] is None]
    assert len(incomplete) == 2
    for gap in incomplete:
        assert "\n" not in gap["reason"] and gap["checks"]

    table = _run(tmp_path, "scan", "--config", str(fleet))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    status = {line.split()[0]: line for line in lines if line.startswith("  ") and "  " in line[2:]}
    assert "complete" in status["healthy"]
    assert "INCOMPLETE" in status["refused"] and REFUSED in status["refused"]
    assert "INCOMPLETE" in status["rejecting"] and REJECTED in status["rejecting"]
    assert lines[-1].endswith("INCOMPLETE")
    # the dead clusters' unknown findings are summed up in their line, not listed one by one
    assert "Cluster refused" not in table.stdout


def test_the_exit_status_is_that_of_an_incomplete_scan(fleet, tmp_path: Path) -> None:
    """Findings decide it, as for any incomplete scan: --fail-on counts the healthy cluster's
    open findings; unknown findings of the dead ones never count."""
    args = ("scan", "--config", str(fleet), "-q", "--fail-on")
    assert _run(tmp_path, *args, "high").returncode == 1
    assert _run(tmp_path, *args, "critical").returncode == 0
    dead_only = ("scan", "--config", str(fleet), "--cluster", "refused", "--cluster", "rejecting")
    line = one_error_line(_run(tmp_path, *dead_only))
    assert "no configured cluster could be reached" in line
    assert REFUSED in line and REJECTED in line


def test_a_single_dead_cluster_is_still_one_error_line(fleet, tmp_path: Path) -> None:
    line = one_error_line(_run(tmp_path, "scan", "--config", str(fleet), "--cluster", "refused"))
    assert "context 'refused'" in line and REFUSED in line
    with pytest.raises(ClusterAccessError, match=REJECTED):
        scan_configured(load_config(fleet), ["rejecting"])
