"""Writes, rollouts and the token controller of the fake Kubernetes API server, driven through
the real ``kubernetes`` client so that what the tests see is what okeguard's appliers will see."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.fakes.kube_api import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    FakeKubeApi,
    PatchError,
    apply_json_patch,
    merge_patch,
    object_path,
    parse_label_selector,
    running_fake_kube_api,
)

NS = "shop"
DEPLOY_PATH = object_path("Deployment", "web", NS)
ES_PATH = "/apis/external-secrets.io/v1beta1/namespaces/shop/externalsecrets/db"


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1.27") -> dict[str, Any]:
    labels = {"app": name, "tier": "fe"}
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
        "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas},
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeKubeApi]:
    with running_fake_kube_api([deployment()]) as fake:
        fake.write_kubeconfig(tmp_path / "kubeconfig")
        yield fake


@pytest.fixture
def kube(api: FakeKubeApi) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(api.kubeconfig_path))


def apps(kube: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube)


def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


def error_of(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = json.loads(excinfo.value.body)
    assert body["kind"] == "Status"
    assert body["code"] == excinfo.value.status
    return dict(body)


def set_image(kube: client.ApiClient, image: str, name: str = "web") -> Any:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    return apps(kube).patch_namespaced_deployment(name, NS, patch)


def web_pods(kube: client.ApiClient) -> list[Any]:
    return list(core(kube).list_namespaced_pod(NS, label_selector="app=web,tier=fe").items)


# -- JSON Patch ---------------------------------------------------------------------------
def test_json_patch_applies_and_bumps_version_and_generation(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    before = api.get_object("Deployment", "web", NS)
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels", "value": {"team": "a/b"}},
        {"op": "copy", "from": "/metadata/labels/team", "path": "/metadata/annotations"},
        {"op": "move", "from": "/metadata/annotations", "path": "/metadata/labels/owner"},
    ]
    result = apps(kube).patch_namespaced_deployment("web", NS, ops)

    stored = api.get_object("Deployment", "web", NS)
    assert stored["spec"]["replicas"] == result.spec.replicas == 5
    assert stored["metadata"]["labels"] == {"team": "a/b", "owner": "a/b"}
    assert "annotations" not in stored["metadata"]
    assert stored["metadata"]["generation"] == 2
    assert int(stored["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert stored["metadata"]["resourceVersion"] == str(api.resource_version)
    assert stored["status"] == before["status"]  # status is a subresource
    (sent,) = api.requests_to(DEPLOY_PATH, "PATCH")
    assert sent.content_type == JSON_PATCH
    assert sent.body == ops


@pytest.mark.parametrize(
    ("ops", "path"),
    [
        ([{"op": "test", "path": "/spec/replicas", "value": 4}], "/spec/replicas"),
        (
            [
                {"op": "replace", "path": "/spec/replicas", "value": 9},
                {"op": "remove", "path": "/spec/paused"},
            ],
            "/spec/paused",
        ),
        ([{"op": "add", "path": "/spec/template/spec/containers/7", "value": {}}], "/containers/7"),
    ],
)
def test_a_failed_json_patch_is_422_and_changes_nothing(
    api: FakeKubeApi, kube: client.ApiClient, ops: list[dict[str, Any]], path: str
) -> None:
    before, version = api.get_object("Deployment", "web", NS), api.resource_version
    with pytest.raises(ApiException) as excinfo:
        apps(kube).patch_namespaced_deployment("web", NS, ops)
    assert excinfo.value.status == 422
    body = error_of(excinfo)
    assert body["reason"] == "Invalid"
    assert path in body["message"]
    assert api.get_object("Deployment", "web", NS) == before
    assert api.resource_version == version


def test_json_patch_test_op_compares_as_json() -> None:
    doc = {"a": 1, "b": [True]}
    assert apply_json_patch(doc, [{"op": "test", "path": "/a", "value": 1.0}]) == doc
    with pytest.raises(PatchError):
        apply_json_patch(doc, [{"op": "test", "path": "/b/0", "value": 1}])
    escaped = apply_json_patch({}, [{"op": "add", "path": "/x~1y~0z", "value": 1}])
    assert escaped == {"x/y~z": 1}
    appended = apply_json_patch({"l": [1]}, [{"op": "add", "path": "/l/-", "value": 2}])
    assert appended == {"l": [1, 2]}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=5), json_values, max_size=4)


@given(doc=json_objects, key=st.text(max_size=5), value=json_values)
def test_json_patch_add_then_remove_restores_the_document(
    doc: dict[str, Any], key: str, value: Any
) -> None:
    path = "/" + key.replace("~", "~0").replace("/", "~1")
    added = apply_json_patch(doc, [{"op": "add", "path": path, "value": value}])
    assert added[key] == value
    assert apply_json_patch(added, [{"op": "test", "path": path, "value": value}]) == added
    if key not in doc:
        assert apply_json_patch(added, [{"op": "remove", "path": path}]) == doc


@given(target=json_objects, patch=json_objects)
def test_merge_patch_is_idempotent_and_leaves_no_nulls_from_the_patch(
    target: dict[str, Any], patch: dict[str, Any]
) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once


# -- merge patches, generation ------------------------------------------------------------
def test_merge_patch_removes_with_null_and_bumps_generation_only_on_spec(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    labels = {"metadata": {"labels": {"team": "pay", "old": "x"}}}
    apps(kube).patch_namespaced_deployment("web", NS, labels, _content_type=MERGE_PATCH)
    first = api.get_object("Deployment", "web", NS)
    assert first["metadata"]["generation"] == 1

    patch = {"metadata": {"labels": {"old": None}}, "spec": {"paused": True}}
    apps(kube).patch_namespaced_deployment("web", NS, patch, _content_type=MERGE_PATCH)
    second = api.get_object("Deployment", "web", NS)
    assert second["metadata"]["labels"] == {"team": "pay"}
    assert second["spec"]["paused"] is True
    assert second["metadata"]["generation"] == 2
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert api.requests_to(DEPLOY_PATH, "PATCH")[-1].content_type == MERGE_PATCH


def test_a_noop_patch_does_not_bump_the_resource_version(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    version = api.resource_version
    apps(kube).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert api.resource_version == version
    assert api.requests_to(DEPLOY_PATH, "PATCH")[0].content_type == STRATEGIC_MERGE_PATCH


def test_a_patch_with_a_stale_resource_version_conflicts(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    patch = {"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}}
    with pytest.raises(ApiException) as excinfo:
        apps(kube).patch_namespaced_deployment("web", NS, patch)
    assert excinfo.value.status == 409
    assert error_of(excinfo)["reason"] == "Conflict"
    assert api.get_object("Deployment", "web", NS)["spec"]["replicas"] == 3


# -- dry run ------------------------------------------------------------------------------
def test_dry_run_returns_the_result_and_stores_nothing(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    before, version = api.get_object("Deployment", "web", NS), api.resource_version
    patched = apps(kube).patch_namespaced_deployment(
        "web", NS, {"spec": {"replicas": 7}}, dry_run="All", field_manager="okeguard"
    )
    assert patched.spec.replicas == 7
    assert patched.metadata.generation == 2
    created = core(kube).create_namespaced_config_map(
        NS, {"metadata": {"name": "cm"}, "data": {"a": "b"}}, dry_run="All"
    )
    assert created.metadata.uid
    apps(kube).delete_namespaced_deployment("web", NS, dry_run="All")

    assert api.get_object("Deployment", "web", NS) == before
    assert api.count("ConfigMap") == 0
    assert api.resource_version == version
    sent = api.requests_to(DEPLOY_PATH, "PATCH")[0]
    assert sent.dry_run
    assert sent.field_manager == "okeguard"


def test_an_unknown_dry_run_value_is_rejected(api: FakeKubeApi, kube: client.ApiClient) -> None:
    with pytest.raises(ApiException) as excinfo:
        apps(kube).patch_namespaced_deployment("web", NS, {"spec": {}}, dry_run="Some")
    assert excinfo.value.status == 400


# -- create, replace, delete --------------------------------------------------------------
def test_create_assigns_server_fields_and_a_duplicate_is_409(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    body = {"metadata": {"name": "cm", "resourceVersion": "5"}, "data": {"k": "v"}}
    created = core(kube).create_namespaced_config_map(NS, body, field_manager="bot")
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.metadata.resource_version == str(api.resource_version)
    assert created.metadata.generation == 1
    assert created.metadata.namespace == NS
    assert api.get_object("ConfigMap", "cm", NS)["data"] == {"k": "v"}

    with pytest.raises(ApiException) as excinfo:
        core(kube).create_namespaced_config_map(NS, body)
    assert excinfo.value.status == 409
    error = error_of(excinfo)
    assert error["reason"] == "AlreadyExists"
    assert error["message"] == 'configmaps "cm" already exists'
    assert api.count("ConfigMap") == 1


def test_create_in_another_namespace_than_the_body_is_400(kube: client.ApiClient) -> None:
    body = {"metadata": {"name": "cm", "namespace": "other"}}
    with pytest.raises(ApiException) as excinfo:
        core(kube).create_namespaced_config_map(NS, body)
    assert excinfo.value.status == 400


def test_delete_honours_preconditions(api: FakeKubeApi, kube: client.ApiClient) -> None:
    current = api.get_object("Deployment", "web", NS)["metadata"]
    for preconditions in ({"resourceVersion": "1"}, {"uid": "someone-else"}):
        with pytest.raises(ApiException) as excinfo:
            apps(kube).delete_namespaced_deployment(
                "web", NS, body={"preconditions": preconditions}
            )
        assert excinfo.value.status == 409
        assert error_of(excinfo)["reason"] == "Conflict"
        assert "Precondition failed" in error_of(excinfo)["message"]
    assert api.count("Deployment") == 1

    status = apps(kube).delete_namespaced_deployment(
        "web", NS, body={"preconditions": {"resourceVersion": current["resourceVersion"]}}
    )
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["name"] == "web"
    assert api.count("Deployment") == 0
    with pytest.raises(ApiException) as excinfo:
        apps(kube).read_namespaced_deployment("web", NS)
    assert excinfo.value.status == 404
    assert error_of(excinfo)["message"] == 'deployments.apps "web" not found'


def test_replace_conflicts_on_a_stale_resource_version(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    current = apps(kube).read_namespaced_deployment("web", NS)
    current.spec.replicas = 2
    replaced = apps(kube).replace_namespaced_deployment("web", NS, current)
    assert replaced.spec.replicas == 2
    assert replaced.metadata.generation == 2

    current.spec.replicas = 4  # still carries the old resourceVersion
    with pytest.raises(ApiException) as excinfo:
        apps(kube).replace_namespaced_deployment("web", NS, current)
    assert excinfo.value.status == 409
    assert "the object has been modified" in error_of(excinfo)["message"]
    assert api.get_object("Deployment", "web", NS)["spec"]["replicas"] == 2


def test_writes_need_the_token(api: FakeKubeApi, tmp_path: Path) -> None:
    path = api.write_kubeconfig(tmp_path / "bad", token="wrong")
    stranger = config.new_client_from_config(config_file=str(path))
    with pytest.raises(ApiException) as excinfo:
        apps(stranger).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})
    assert excinfo.value.status == 401
    assert api.get_object("Deployment", "web", NS)["spec"]["replicas"] == 3
    assert not api.requests_to(DEPLOY_PATH, "PATCH")[0].authorized


# -- faults -------------------------------------------------------------------------------
def test_a_fault_can_hit_one_method_only(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.fail(DEPLOY_PATH, 500, method="PATCH", times=1)
    assert apps(kube).read_namespaced_deployment("web", NS).spec.replicas == 3
    with pytest.raises(ApiException) as excinfo:
        apps(kube).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})
    assert excinfo.value.status == 500
    assert error_of(excinfo)["reason"] == "InternalError"
    assert api.get_object("Deployment", "web", NS)["spec"]["replicas"] == 3
    apps(kube).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 1}})
    assert api.get_object("Deployment", "web", NS)["spec"]["replicas"] == 1


def test_a_path_fault_hits_writes_too(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.fail(DEPLOY_PATH, 403)
    with pytest.raises(ApiException) as excinfo:
        apps(kube).delete_namespaced_deployment("web", NS)
    assert excinfo.value.status == 403
    assert "cannot delete resource" in error_of(excinfo)["message"]
    assert api.count("Deployment") == 1


# -- label selectors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=be", ["a"]),
        ("tier", ["b", "c"]),
        ("!tier", ["a"]),
        ("tier in (be, db)", ["b", "c"]),
        ("app in (web),tier notin (db)", ["a", "b"]),
        ("", ["a", "b", "c"]),
    ],
)
def test_label_selectors_filter_lists(
    api: FakeKubeApi, kube: client.ApiClient, selector: str, names: list[str]
) -> None:
    api.add(
        {"kind": "ConfigMap", "metadata": {"name": "a", "namespace": NS, "labels": {"app": "web"}}},
        {
            "kind": "ConfigMap",
            "metadata": {"name": "b", "namespace": NS, "labels": {"app": "web", "tier": "be"}},
        },
        {"kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "db", "tier": "db"}}},
    )
    listed = core(kube).list_config_map_for_all_namespaces(label_selector=selector)
    assert [cm.metadata.name for cm in listed.items] == names


def test_a_malformed_label_selector_is_400(kube: client.ApiClient) -> None:
    with pytest.raises(ValueError):
        parse_label_selector("app in web")
    with pytest.raises(ApiException) as excinfo:
        core(kube).list_namespaced_pod(NS, label_selector="app=(web")
    assert excinfo.value.status == 400


# -- rollouts -----------------------------------------------------------------------------
def test_a_healthy_rollout_converges_at_the_next_read(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    assert web_pods(kube) == []  # not simulated until written to
    reply = set_image(kube, "nginx:1.28")
    assert reply.metadata.generation == 2
    assert reply.status.observed_generation == 1  # the controller has not seen it yet
    version = api.resource_version

    status = apps(kube).read_namespaced_deployment("web", NS).status
    assert status.observed_generation == 2
    assert status.replicas == status.updated_replicas == status.ready_replicas == 3
    assert status.available_replicas == 3
    progressing = {c.type: c for c in status.conditions}["Progressing"]
    assert (progressing.status, progressing.reason) == ("True", "NewReplicaSetAvailable")
    assert api.resource_version == version + 1  # the status change is a write

    pods = web_pods(kube)
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        assert pod.spec.containers[0].image == "nginx:1.28"
        (owner,) = pod.metadata.owner_references
        assert owner.kind == "ReplicaSet"
        assert owner.name == f"web-{pod.metadata.labels['pod-template-hash']}"
    fetched = core(kube).read_namespaced_pod(pods[0].metadata.name, NS)
    assert fetched.metadata.uid == pods[0].metadata.uid


@pytest.mark.parametrize(
    ("behaviour", "reason", "restarts"),
    [("crashloop", "CrashLoopBackOff", 4), ("image-pull", "ImagePullBackOff", 0)],
)
def test_a_failing_rollout_shows_in_status_and_pods(
    api: FakeKubeApi, kube: client.ApiClient, behaviour: str, reason: str, restarts: int
) -> None:
    api.set_rollout("Deployment", NS, "web", behaviour, after=1)
    set_image(kube, "nginx:broken")

    first = apps(kube).read_namespaced_deployment("web", NS).status
    assert first.observed_generation == 1  # still the old status after one read
    assert all(p.spec.containers[0].image == "nginx:1.27" for p in web_pods(kube))

    status = apps(kube).read_namespaced_deployment("web", NS).status
    assert status.observed_generation == 2
    assert status.updated_replicas == 1
    assert status.available_replicas == 2
    assert status.unavailable_replicas == 1
    pods = web_pods(kube)
    assert len(pods) == 3
    (new,) = [p for p in pods if p.spec.containers[0].image == "nginx:broken"]
    waiting = new.status.container_statuses[0]
    assert waiting.state.waiting.reason == reason
    assert waiting.restart_count == restarts
    assert not waiting.ready
    old_hashes = {p.metadata.labels["pod-template-hash"] for p in pods if p is not new}
    assert len(old_hashes) == 1
    assert new.metadata.labels["pod-template-hash"] not in old_hashes
    assert all(p.status.phase == "Running" for p in pods if p is not new)


def test_a_stuck_rollout_exceeds_its_progress_deadline(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    api.set_rollout("Deployment", NS, "web", "stuck", after=1)
    set_image(kube, "nginx:huge")

    def progressing() -> tuple[str, str]:
        status = apps(kube).read_namespaced_deployment("web", NS).status
        condition = {c.type: c for c in status.conditions}["Progressing"]
        assert status.observed_generation == 2
        return condition.status, condition.reason

    assert progressing() == ("True", "ReplicaSetUpdated")
    assert progressing() == ("False", "ProgressDeadlineExceeded")
    version = api.resource_version
    assert progressing() == ("False", "ProgressDeadlineExceeded")
    assert api.resource_version == version  # nothing changes once it is stuck
    pending = [p for p in web_pods(kube) if p.status.phase == "Pending"]
    assert [p.spec.containers[0].image for p in pending] == ["nginx:huge"]
    assert pending[0].status.conditions[0].reason == "Unschedulable"


def test_a_rollout_restart_is_a_template_change(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.set_rollout("Deployment", NS, "web")
    before = {p.metadata.name for p in web_pods(kube)}
    assert len(before) == 3
    restart = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-27T10:00:00Z"}
                }
            }
        }
    }
    patched = apps(kube).patch_namespaced_deployment("web", NS, restart)
    assert patched.metadata.generation == 2
    assert apps(kube).read_namespaced_deployment("web", NS).status.observed_generation == 2
    after = web_pods(kube)
    assert {p.metadata.name for p in after}.isdisjoint(before)
    assert all("kubectl.kubernetes.io/restartedAt" in p.metadata.annotations for p in after)


def test_statefulset_and_daemonset_rollouts(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.daemonset_nodes = 4
    template = {
        "metadata": {"labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
    }
    spec = {"selector": {"matchLabels": {"app": "db"}}, "template": template}
    apps(kube).create_namespaced_stateful_set(
        NS, {"metadata": {"name": "db"}, "spec": {**spec, "replicas": 2}}
    )
    apps(kube).create_namespaced_daemon_set(NS, {"metadata": {"name": "agent"}, "spec": spec})

    ss = apps(kube).read_namespaced_stateful_set("db", NS).status
    assert ss.observed_generation == 1
    assert ss.ready_replicas == ss.updated_replicas == 2
    assert ss.current_revision == ss.update_revision
    ds = apps(kube).read_namespaced_daemon_set("agent", NS).status
    assert ds.desired_number_scheduled == ds.number_ready == ds.updated_number_scheduled == 4

    api.set_rollout("StatefulSet", NS, "db", "crashloop")
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "pg:x"}]
    apps(kube).patch_namespaced_stateful_set("db", NS, patch)
    ss = apps(kube).read_namespaced_stateful_set("db", NS).status
    assert ss.current_revision != ss.update_revision
    assert (ss.updated_replicas, ss.ready_replicas) == (1, 1)
    pods = core(kube).list_namespaced_pod(NS, label_selector="app=db").items
    by_name = {
        p.metadata.name: p for p in pods if p.metadata.owner_references[0].kind != "DaemonSet"
    }
    assert sorted(by_name) == ["db-0", "db-1"]
    assert by_name["db-1"].status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert by_name["db-0"].status.container_statuses[0].state.running is not None


# -- token controller, custom resources ---------------------------------------------------
def test_the_token_controller_fills_service_account_token_secrets(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    secret = {
        "metadata": {
            "name": "bot-token",
            "annotations": {"kubernetes.io/service-account.name": "bot"},
        },
        "type": "kubernetes.io/service-account-token",
    }
    created = core(kube).create_namespaced_secret(NS, secret)
    assert not created.data  # filled asynchronously by the real controller
    read = core(kube).read_namespaced_secret("bot-token", NS)
    assert base64.b64decode(read.data["namespace"]).decode() == NS
    assert base64.b64decode(read.data["token"]).decode().startswith("eyJ")
    assert b"BEGIN CERTIFICATE" in base64.b64decode(read.data["ca.crt"])
    assert int(read.metadata.resource_version) > int(created.metadata.resource_version)

    core(kube).create_namespaced_secret(NS, {"metadata": {"name": "plain"}, "type": "Opaque"})
    assert not core(kube).read_namespaced_secret("plain", NS).data


def test_custom_resources_can_be_read_and_patched(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.add_custom(
        "external-secrets.io/v1beta1",
        "externalsecrets",
        "ExternalSecret",
        {"metadata": {"name": "db", "namespace": NS}, "spec": {"refreshInterval": "1h"}},
    )
    custom = client.CustomObjectsApi(kube)
    args = ("external-secrets.io", "v1beta1", NS, "externalsecrets", "db")
    doc = custom.get_namespaced_custom_object(*args)
    assert doc["kind"] == "ExternalSecret"
    assert doc["apiVersion"] == "external-secrets.io/v1beta1"

    patched = custom.patch_namespaced_custom_object(*args, {"spec": {"refreshInterval": "15m"}})
    assert patched["spec"]["refreshInterval"] == "15m"
    assert patched["metadata"]["generation"] == 2
    ops = [{"op": "add", "path": "/spec/target", "value": {"name": "db-creds"}}]
    custom.patch_namespaced_custom_object(*args, ops, _content_type=JSON_PATCH)
    assert api.get_object("ExternalSecret", "db", NS)["spec"] == {
        "refreshInterval": "15m",
        "target": {"name": "db-creds"},
    }
    assert [r.content_type for r in api.requests_to(ES_PATH, "PATCH")] == [MERGE_PATCH, JSON_PATCH]

    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(
            *args, {"spec": {}}, _content_type=STRATEGIC_MERGE_PATCH
        )
    assert excinfo.value.status == 415
    listed = custom.list_namespaced_custom_object(
        "external-secrets.io", "v1beta1", NS, "externalsecrets"
    )
    assert [i["metadata"]["name"] for i in listed["items"]] == ["db"]


# -- raw requests, concurrency -------------------------------------------------------------
def raw(
    kube: client.ApiClient, method: str, path: str, body: Any = None, content_type: str = ""
) -> tuple[int, dict[str, Any]]:
    """Send one request through the client's own transport; (status, parsed body)."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = kube.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    response = kube.call_api(*request)
    response.read()
    return response.status, json.loads(response.data)


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status", "reason"),
    [
        ("POST", DEPLOY_PATH, {"metadata": {"name": "x"}}, "application/json", 405, ""),
        ("PATCH", "/apis/apps/v1/namespaces/shop/deployments", {}, MERGE_PATCH, 405, ""),
        ("PUT", object_path("Deployment", "nope", NS), {"metadata": {"name": "nope"}}, "", 404, ""),
        ("PATCH", DEPLOY_PATH, {"spec": {}}, "application/apply-patch+yaml", 415, ""),
        ("PATCH", DEPLOY_PATH, [42], JSON_PATCH, 400, "BadRequest"),
        ("PATCH", DEPLOY_PATH, [{"op": "jump", "path": "/spec"}], JSON_PATCH, 422, "Invalid"),
        ("PUT", DEPLOY_PATH, {"kind": "Pod", "metadata": {"name": "web"}}, "", 400, ""),
        ("PUT", DEPLOY_PATH, {"metadata": {"name": "other"}}, "", 400, ""),
        ("POST", "/api/v1/namespaces/shop/configmaps", {"metadata": {}}, "", 422, "Invalid"),
    ],
)
def test_malformed_writes_get_the_api_servers_errors(
    api: FakeKubeApi,
    kube: client.ApiClient,
    method: str,
    path: str,
    body: Any,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    before, version = api.get_object("Deployment", "web", NS), api.resource_version
    got, reply = raw(kube, method, path, body, content_type)
    assert got == status
    assert reply["kind"] == "Status"
    assert reply["code"] == status
    if reason:
        assert reply["reason"] == reason
    assert api.get_object("Deployment", "web", NS) == before
    assert api.resource_version == version


def test_create_with_generate_name_and_delete_a_cluster_scoped_object(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    status, created = raw(
        kube, "POST", "/api/v1/namespaces/shop/configmaps", {"metadata": {"generateName": "cm-"}}
    )
    assert status == 201
    assert created["metadata"]["name"].startswith("cm-")
    assert len(created["metadata"]["name"]) == len("cm-") + 5
    core(kube).create_namespace({"metadata": {"name": "team-a"}})
    assert api.get_object("Namespace", "team-a")["metadata"].get("namespace") is None
    core(kube).delete_namespace("team-a")
    assert api.count("Namespace") == 0


def test_concurrent_writes_get_distinct_resource_versions(
    api: FakeKubeApi, kube: client.ApiClient
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(index: int) -> str:
        body = {"metadata": {"name": f"cm-{index}"}}
        return str(core(kube).create_namespaced_config_map(NS, body).metadata.resource_version)

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(create, range(40)))
    assert len(set(versions)) == 40
    assert api.count("ConfigMap") == 40
    assert max(int(v) for v in versions) == api.resource_version


def test_list_reads_advance_a_rollout_too(api: FakeKubeApi, kube: client.ApiClient) -> None:
    api.set_rollout("Deployment", NS, "web", "healthy", after=1)
    set_image(kube, "nginx:1.29")
    web_pods(kube)  # reading pods does not move the rollout on
    listed = apps(kube).list_namespaced_deployment(NS).items[0]
    assert listed.status.observed_generation == 1
    listed = apps(kube).list_namespaced_deployment(NS, label_selector="app!=db").items[0]
    assert listed.status.observed_generation == 2
    assert {p.spec.containers[0].image for p in web_pods(kube)} == {"nginx:1.29"}
