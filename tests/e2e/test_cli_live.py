"""The console script against a live (fake) cluster: snapshot, live scan and the error paths."""

from __future__ import annotations

import base64
import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from okeguard.inventory.snapshot import load_snapshot
from tests.e2e.conftest import Run, one_error_line
from tests.fakes.kube_api import FakeKubeApi, closed_port, list_path, running_fake_kube_api
from tests.helpers import deployment

SECRET_VALUE = "prod-db-password-do-not-leak"
PRIVILEGED = deployment(
    "agent",
    namespace="shop",
    containers=[{"name": "agent", "image": "nginx:1.27", "securityContext": {"privileged": True}}],
)
OBJECTS = [
    {"kind": "Namespace", "metadata": {"name": "shop"}},
    PRIVILEGED,
    {
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
        "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
    },
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApi]:
    with running_fake_kube_api(OBJECTS) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="prod-oke")
        yield api


def env_for(api: FakeKubeApi) -> dict[str, str]:
    return {"KUBECONFIG": str(api.kubeconfig_path)}


def test_snapshot_of_a_live_cluster(run: Run, cluster: FakeKubeApi, tmp_path: Path) -> None:
    out = tmp_path / "prod.json"
    result = run("snapshot", "--context", "prod-oke", "-o", str(out), env=env_for(cluster))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    inventory = load_snapshot(out)
    assert inventory.cluster == "prod-oke" and inventory.whole_cluster
    assert inventory.get("Deployment", "shop", "agent") is not None
    assert inventory.get("Secret", "shop", "db") is not None
    text = out.read_text()
    assert SECRET_VALUE not in text and base64.b64encode(SECRET_VALUE.encode()).decode() not in text
    assert cluster.token not in text
    document = json.loads(text.splitlines()[0])  # the header line of the JSON Lines file
    assert document["cluster"]["server"] == cluster.url
    assert document["cluster"]["kubernetes_version"] == "v1.30.1"
    assert len(cluster.requests_to(list_path("Pod"))) == 1


def test_snapshot_with_an_explicit_kubeconfig(
    run: Run, cluster: FakeKubeApi, tmp_path: Path
) -> None:
    out = tmp_path / "prod.json"
    kubeconfig = str(cluster.kubeconfig_path)
    result = run("snapshot", "--context", "prod-oke", "--kubeconfig", kubeconfig, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert load_snapshot(out).object_count == len(OBJECTS)


def test_live_scan_as_json(run: Run, cluster: FakeKubeApi) -> None:
    cluster.forbid("Secret")
    result = run("scan", "--context", "prod-oke", "--format", "json", env=env_for(cluster))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["cluster"] == "prod-oke"
    privileged = [f for f in doc["findings"] if f["check_id"] == "k8s.privileged"]
    assert [f["resource"]["name"] for f in privileged] == ["agent"]
    assert doc["summary"]["incomplete"], "the forbidden Secret list must be reported"
    assert "403 Forbidden" in json.dumps(doc["summary"]["incomplete"])
    secret_checks = [f for f in doc["findings"] if f["check_id"] == "k8s.stale-secret"]
    assert secret_checks and {f["status"] for f in secret_checks} == {"unknown"}
    assert not [r.path for r in cluster.requests if "/namespaces/" in r.path]


def test_unreachable_cluster_is_one_line(run: Run, cluster: FakeKubeApi, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{closed_port()}"
    cluster.write_kubeconfig(tmp_path / "down", context="prod-oke", server=server)
    line = one_error_line(run("scan", "--context", "prod-oke", env=env_for(cluster)))
    assert "context 'prod-oke'" in line
    assert f"cannot reach the API server at {server}: connection refused" in line


def test_expired_credentials_are_one_line(run: Run, cluster: FakeKubeApi, tmp_path: Path) -> None:
    cluster.write_kubeconfig(tmp_path / "stale", context="prod-oke", token="expired-token")
    result = run(
        "snapshot", "--context", "prod-oke", "-o", str(tmp_path / "x.json"), env=env_for(cluster)
    )
    line = one_error_line(result)
    assert "context 'prod-oke'" in line and "rejected the credentials" in line
    assert "oci ce cluster generate-token" in line
    assert "expired-token" not in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_unknown_context_suggests_one(run: Run, cluster: FakeKubeApi) -> None:
    line = one_error_line(run("scan", "--context", "prod-oek", env=env_for(cluster)))
    assert "did you mean 'prod-oke'?" in line


def test_failing_exec_plugin_is_one_line(run: Run, cluster: FakeKubeApi, tmp_path: Path) -> None:
    plugin = tmp_path / "oci"
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write('NotAuthenticated: token expired\\n')\n"
        "sys.exit(1)\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    doc = yaml.safe_load(Path(str(cluster.kubeconfig_path)).read_text())
    doc["users"][0]["user"] = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}
    }
    Path(str(cluster.kubeconfig_path)).write_text(yaml.safe_dump(doc))
    line = one_error_line(run("scan", "--context", "prod-oke", env=env_for(cluster)))
    assert f"the credential plugin '{plugin}' failed (exec: process returned 1" in line
    assert "token expired" in line
