"""The live collector, with the real ``kubernetes`` client talking to the fake API server."""

from __future__ import annotations

import base64
import math
import stat
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from okeguard.checks.model import Status
from okeguard.config import Config
from okeguard.errors import ClusterAccessError
from okeguard.inventory.kube import LISTERS, PAGE_SIZE, collect_live
from okeguard.inventory.model import SUPPORTED_KINDS
from okeguard.inventory.snapshot import load_snapshot, save_snapshot
from tests.fakes.kube_api import FakeKubeApi, closed_port, list_path

SECRET_PLAIN = "hunter2-correct-horse-battery"
SECRET_B64 = base64.b64encode(SECRET_PLAIN.encode()).decode()
ENV_PASSWORD = "s3cr3t-env-password-value"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAuFakeKeyMaterial\n-----END RSA PRIVATE KEY-----\n"


def namespace(name: str) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name}}


def pod(name: str, ns: str, owner: tuple[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}
        ]
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }


def deployment_with_pods(name: str, ns: str, replicas: int) -> list[dict[str, Any]]:
    template = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }
    rs_name = f"{name}-7d4b9c"
    deploy_owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "controller": True}
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": template},
        },
        {
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": ns, "ownerReferences": [deploy_owner]},
            "spec": {"template": template},
        },
        *[pod(f"{rs_name}-{i}", ns, ("ReplicaSet", rs_name)) for i in range(replicas)],
    ]


def spread_pods(api: FakeKubeApi, pods: int, namespaces: int) -> None:
    api.add(*[namespace(f"ns-{i}") for i in range(namespaces)])
    api.add(*[pod(f"pod-{i}", f"ns-{i % namespaces}") for i in range(pods)])


def collect(api: FakeKubeApi, **kwargs: Any) -> Any:
    return collect_live("fake", kubeconfig=str(api.kubeconfig_path), **kwargs)


def test_every_supported_kind_has_a_cluster_wide_lister() -> None:
    from kubernetes import client

    assert set(LISTERS) == set(SUPPORTED_KINDS)
    for api_class, method in LISTERS.values():
        assert callable(getattr(getattr(client, api_class), method, None)), method
    assert LISTERS["Pod"] == ("CoreV1Api", "list_pod_for_all_namespaces")
    assert LISTERS["ClusterRoleBinding"] == ("RbacAuthorizationV1Api", "list_cluster_role_binding")


def test_one_paginated_list_per_kind(kube_api: FakeKubeApi) -> None:
    spread_pods(kube_api, pods=1200, namespaces=300)
    inventory, info = collect(kube_api)

    pod_requests = kube_api.requests_to("/api/v1/pods")
    assert len(pod_requests) == math.ceil(1200 / PAGE_SIZE) == 3
    assert all(r.query["limit"] == [str(PAGE_SIZE)] for r in pod_requests)
    assert "continue" not in pod_requests[0].query
    for kind in SUPPORTED_KINDS:
        if kind != "Pod":
            assert len(kube_api.requests_to(list_path(kind))) == 1, kind
    assert not [r.path for r in kube_api.requests if r.path.count("/namespaces/")]
    assert len(list(inventory.of_kind("Pod"))) == 1200
    assert len(list(inventory.of_kind("Namespace"))) == 300
    assert info == {
        "context": "fake",
        "server": kube_api.url,
        "kubernetes_version": "v1.30.1",
    }
    assert inventory.whole_cluster and inventory.source.type == "live"
    assert inventory.captured_at is not None and inventory.gaps == ()


def test_request_count_does_not_depend_on_namespace_count(tmp_path: Path) -> None:
    from tests.fakes.kube_api import running_fake_kube_api

    totals = {}
    for namespaces in (3, 300):
        with running_fake_kube_api() as api:
            api.write_kubeconfig(tmp_path / f"kc-{namespaces}")
            spread_pods(api, pods=1200, namespaces=namespaces)
            collect(api)
            totals[namespaces] = len(api.requests)
    assert totals[3] == totals[300] == 1 + len(SUPPORTED_KINDS) + 2  # /version, lists, 2 pod pages


def test_pagination_returns_every_object_exactly_once(kube_api: FakeKubeApi) -> None:
    names = [f"cm-{i:04d}" for i in range(1234)]
    kube_api.add(
        *[{"kind": "ConfigMap", "metadata": {"name": n, "namespace": "app"}} for n in names]
    )
    inventory, _ = collect(kube_api)
    got = [obj.name for obj in inventory.of_kind("ConfigMap")]
    assert sorted(got) == names
    assert len(kube_api.requests_to("/api/v1/configmaps")) == 3
    obj = inventory.get("ConfigMap", "app", "cm-0007")
    assert obj is not None and obj.kind == "ConfigMap" and obj.api_version == "v1"


def test_an_expired_continue_token_restarts_the_list(kube_api: FakeKubeApi) -> None:
    kube_api.add(*[{"kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}} for i in range(1100)])
    kube_api.expire_next_continue = True
    inventory, _ = collect(kube_api)
    assert len({obj.name for obj in inventory.of_kind("ConfigMap")}) == 1100
    assert len(list(inventory.of_kind("ConfigMap"))) == 1100
    assert inventory.gaps == ()
    # page 1, page 2 -> 410, then page 1, 2, 3 again
    assert len(kube_api.requests_to("/api/v1/configmaps")) == 5


def test_pods_fold_into_their_deployment(kube_api: FakeKubeApi) -> None:
    kube_api.add(namespace("shop"), *deployment_with_pods("web", "shop", replicas=3))
    kube_api.add(pod("debug", "shop"))
    inventory, _ = collect(kube_api)
    workloads = sorted((w.kind, w.namespace, w.name) for w in inventory.workloads)
    assert workloads == [("Deployment", "shop", "web"), ("Pod", "shop", "debug")]
    assert len(list(inventory.of_kind("Pod"))) == 4


def test_forbidden_kind_becomes_a_gap(kube_api: FakeKubeApi) -> None:
    kube_api.add({"kind": "Secret", "metadata": {"name": "db", "namespace": "app"}, "data": {}})
    kube_api.add(*deployment_with_pods("web", "app", replicas=1))
    kube_api.forbid("Secret")
    inventory, _ = collect(kube_api)
    assert [(g.source, g.kind) for g in inventory.gaps] == [("kubernetes", "Secret")]
    reason = inventory.gaps[0].reason
    assert reason.startswith('403 Forbidden: secrets is forbidden: User "system:serviceaccount')
    assert "\n" not in reason
    assert not inventory.has_kind_data("Secret") and inventory.has_kind_data("Pod")
    assert list(inventory.of_kind("Secret")) == []
    assert [w.name for w in inventory.workloads] == ["web"]


def test_forbidden_secrets_make_secret_checks_unknown(kube_api: FakeKubeApi) -> None:
    from okeguard.checks.engine import run_checks
    from okeguard.checks.registry import get_check

    try:
        spec = get_check("k8s.stale-secret")
    except ImportError as exc:  # the check catalogue is still being written
        pytest.skip(f"check catalogue not importable yet: {exc}")
    if spec is None:
        pytest.skip("k8s.stale-secret is not registered yet")
    kube_api.add({"kind": "Secret", "metadata": {"name": "db", "namespace": "app"}, "data": {}})
    kube_api.forbid("Secret")
    inventory, _ = collect(kube_api)
    run = run_checks(inventory, Config(), now=inventory.captured_at, only={"k8s.stale-secret"})
    unknown = [f for f in run.findings if f.check_id == "k8s.stale-secret"]
    assert unknown and all(f.status is Status.UNKNOWN for f in unknown)
    assert "403 Forbidden" in unknown[0].message


@pytest.mark.parametrize(
    ("status", "reason"), [(404, "404 Not Found: "), (500, "500 Internal Server Error: ")]
)
def test_missing_or_failing_kind_becomes_a_gap(
    kube_api: FakeKubeApi, status: int, reason: str
) -> None:
    kube_api.add(*deployment_with_pods("web", "app", replicas=1))
    kube_api.fail(list_path("NetworkPolicy"), status)
    inventory, _ = collect(kube_api)
    assert [g.kind for g in inventory.gaps] == ["NetworkPolicy"]
    assert inventory.gaps[0].reason.startswith(reason)
    assert inventory.get("Deployment", "app", "web") is not None
    requests = len(kube_api.requests_to(list_path("NetworkPolicy")))
    assert requests == (4 if status == 500 else 1)  # a 5xx is retried 3 times first


def test_a_transient_server_error_is_retried(kube_api: FakeKubeApi) -> None:
    kube_api.add(namespace("app"))
    kube_api.fail(list_path("Namespace"), 503, times=2)
    inventory, _ = collect(kube_api)
    assert inventory.gaps == ()
    assert [o.name for o in inventory.of_kind("Namespace")] == ["app"]
    assert len(kube_api.requests_to("/api/v1/namespaces")) == 3


def test_kinds_are_listed_concurrently(kube_api: FakeKubeApi) -> None:
    kube_api.delay = 0.25
    started = time.monotonic()
    collect(kube_api)
    elapsed = time.monotonic() - started
    serial = 0.25 * (1 + len(SUPPORTED_KINDS))
    assert elapsed < serial / 2, f"{elapsed:.2f}s: lists were not concurrent"


def test_rejected_credentials_name_the_context(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "stale", context="prod-oke", token="expired")
    with pytest.raises(ClusterAccessError) as err:
        collect_live("prod-oke", kubeconfig=str(kubeconfig))
    message = str(err.value)
    assert "context 'prod-oke'" in message and "rejected the credentials" in message
    assert "oci ce cluster generate-token" in message and "\n" not in message
    assert "expired" not in message.replace("an expired session", "")  # no token value


def test_401_while_listing_is_fatal(kube_api: FakeKubeApi) -> None:
    kube_api.fail(list_path("Secret"), 401)
    with pytest.raises(ClusterAccessError, match=r"context 'fake'.*401 Unauthorized"):
        collect(kube_api)


def test_global_401_is_fatal(kube_api: FakeKubeApi) -> None:
    kube_api.global_status = 401
    with pytest.raises(ClusterAccessError, match="rejected the credentials"):
        collect(kube_api)
    assert len(kube_api.requests) == 1  # stops at /version, before the lists


def test_unreachable_server_names_context_and_server(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{closed_port()}"
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "down", context="down", server=server)
    started = time.monotonic()
    with pytest.raises(ClusterAccessError) as err:
        collect_live("down", kubeconfig=str(kubeconfig))
    assert str(err.value) == (
        f"context 'down': cannot reach the API server at {server}: connection refused"
    )
    assert time.monotonic() - started < 5


def test_tls_failure_names_context_and_server(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    server = kube_api.url.replace("http://", "https://")  # the fake speaks plain HTTP
    kubeconfig = kube_api.write_kubeconfig(tmp_path / "tls", context="tls", server=server)
    with pytest.raises(ClusterAccessError) as err:
        collect_live("tls", kubeconfig=str(kubeconfig))
    assert str(err.value).startswith(f"context 'tls': cannot reach the API server at {server}: ")
    assert "SSL" in str(err.value) and "\n" not in str(err.value)


def test_a_slow_server_times_out(kube_api: FakeKubeApi) -> None:
    kube_api.delay = 2.0
    with pytest.raises(ClusterAccessError, match=r"context 'fake'.*no response within 0\.5s"):
        collect(kube_api, request_timeout=0.5)


def test_unknown_context_suggests_the_closest(kube_api: FakeKubeApi) -> None:
    with pytest.raises(ClusterAccessError) as err:
        collect_live("fak", kubeconfig=str(kube_api.kubeconfig_path))
    assert "no context named 'fak'; did you mean 'fake'?" in str(err.value)
    assert "(available: fake)" in str(err.value)


def test_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config"
    with pytest.raises(ClusterAccessError, match=f"kubeconfig {missing}: no such file"):
        collect_live("fake", kubeconfig=str(missing))


def test_kubeconfig_from_the_environment(
    kube_api: FakeKubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{kube_api.kubeconfig_path}")
    inventory, info = collect_live()  # the current-context of the merged files
    assert info["context"] == "fake" and inventory.cluster == "fake"
    assert inventory.kubeconfig_users is not None
    assert [(u.name, u.auth) for u in inventory.kubeconfig_users] == [("fake-user", ("token",))]


def test_no_kubeconfig_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(ClusterAccessError, match="no kubeconfig found"):
        collect_live()


def test_not_in_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterAccessError, match=r"^in-cluster: "):
        collect_live(in_cluster=True)


def _exec_kubeconfig(api: FakeKubeApi, path: Path, command: str) -> Path:
    doc = yaml.safe_load(api.write_kubeconfig(path, context="oke").read_text())
    doc["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": ["ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1..x"],
        }
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_exec_plugin_credentials_are_used(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": kube_api.token},
    }
    plugin = _script(tmp_path / "oci", f"print({orjson.dumps(credential).decode()!r})")
    kubeconfig = _exec_kubeconfig(kube_api, tmp_path / "kc", plugin)
    inventory, _ = collect_live("oke", kubeconfig=str(kubeconfig))
    users = inventory.kubeconfig_users or ()
    assert [(u.auth, u.exec_command) for u in users] == [(("exec",), plugin)]
    assert users[0].exec_args[:3] == ("ce", "cluster", "generate-token")


def test_failing_exec_plugin_is_one_line(
    kube_api: FakeKubeApi, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    plugin = _script(
        tmp_path / "oci",
        "import sys\nsys.stderr.write('ServiceError: session token expired\\n')\nsys.exit(1)\n",
    )
    kubeconfig = _exec_kubeconfig(kube_api, tmp_path / "kc", plugin)
    with pytest.raises(ClusterAccessError) as err:
        collect_live("oke", kubeconfig=str(kubeconfig))
    message = str(err.value)
    assert message.startswith(f"context 'oke': the credential plugin '{plugin}' failed")
    assert "session token expired" in message and "oci session authenticate" in message
    assert "\n" not in message
    assert "exec:" not in capfd.readouterr().err  # the client's log line is not printed
    assert kube_api.requests == []


def test_missing_exec_plugin_is_one_line(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    kubeconfig = _exec_kubeconfig(kube_api, tmp_path / "kc", str(tmp_path / "bin" / "oci"))
    with pytest.raises(ClusterAccessError, match=r"'.*/bin/oci' was not found on PATH"):
        collect_live("oke", kubeconfig=str(kubeconfig))


def _sensitive_objects() -> list[dict[str, Any]]:
    return [
        {
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "app"},
            "type": "Opaque",
            "data": {"password": SECRET_B64},
        },
        {
            "kind": "ConfigMap",
            "metadata": {"name": "keys", "namespace": "app"},
            "data": {"signing.pem": PEM},
        },
        {
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "app"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "api",
                                "image": "api:1",
                                "env": [{"name": "DB_PASSWORD", "value": ENV_PASSWORD}],
                            }
                        ]
                    }
                }
            },
        },
    ]


def test_secret_values_never_reach_the_inventory_or_snapshot(
    kube_api: FakeKubeApi, tmp_path: Path
) -> None:
    kube_api.add(*_sensitive_objects())
    inventory, info = collect(kube_api)
    secret = inventory.get("Secret", "app", "db")
    assert secret is not None and secret.raw["data"]["password"].startswith("okeguard:redacted:")
    dumped = orjson.dumps([o.raw for kind in inventory.objects for o in inventory.objects[kind]])
    path = tmp_path / "snap.json"
    save_snapshot(inventory, path, info)
    for blob in (dumped, path.read_bytes()):
        for value in (SECRET_PLAIN, SECRET_B64, ENV_PASSWORD, "FakeKeyMaterial", kube_api.token):
            assert value.encode() not in blob


def _raws(inventory: Any) -> dict[str, list[Any]]:
    return {kind: [o.raw for o in objs] for kind, objs in inventory.objects.items()}


def test_snapshot_round_trip(kube_api: FakeKubeApi, tmp_path: Path) -> None:
    kube_api.add(namespace("app"), *_sensitive_objects(), *deployment_with_pods("web", "app", 2))
    kube_api.add({"kind": "ClusterRole", "metadata": {"name": "reader"}, "rules": []})
    kube_api.forbid("Ingress")
    inventory, info = collect(kube_api, cluster_name="prod")
    path = tmp_path / "snap.json"
    save_snapshot(inventory, path, info)
    loaded = load_snapshot(path)

    assert _raws(loaded) == _raws(inventory)
    assert loaded.cluster == "prod" and loaded.whole_cluster
    assert loaded.gaps == inventory.gaps
    assert loaded.kubeconfig_users == inventory.kubeconfig_users
    assert loaded.captured_at is not None and inventory.captured_at is not None
    assert abs((loaded.captured_at - inventory.captured_at).total_seconds()) < 1
    assert [w.name for w in loaded.workloads] == [w.name for w in inventory.workloads]
    document = orjson.loads(path.read_bytes().splitlines()[0])  # the header line
    assert document["cluster"] == {"name": "prod", **info}
