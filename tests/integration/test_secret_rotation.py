"""``rotate-secret`` end to end: the real ``oci`` and ``kubernetes`` clients against the fakes,
the request workflow on a real database, crashes after every step, and no secret in any trail."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import oci
import pytest
from sqlalchemy import select

from okeguard.audit.models import AuditEvent
from okeguard.config import Config, RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.inventory.oci_clients import Clients
from okeguard.inventory.oci_model import OciState, VaultSecret
from okeguard.remediations import workflow
from okeguard.remediations.engine import Backends, SimulatedCrash, StepFailed
from okeguard.remediations.kube_writer import MERGE_PATCH, open_kube_writer
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.oci_writer import OciWriter
from okeguard.remediations.plan import Plan
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.secret_actions import NewVersionAction
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import FakeOciApi
from tests.fakes.oci_world import OkeWorld, secret_content
from tests.integration.database import Database
from tests.integration.requests_support import (
    approved,
    assert_chain_ok,
    cluster_config,
    reconcile_after_lease,
    request_events,
)
from tests.unit.factories import bare_container, namespace, workload

FAST = RemediationConfig(
    poll_interval_seconds=0.01, rollout_timeout_seconds=5, work_request_timeout_seconds=5
)
VAULT_CHECK = "oke.vault-secret-not-rotated"
TOKEN_CHECK = "k8s.legacy-service-account-token"


@dataclasses.dataclass
class FakeLive(LiveCluster):
    """The cluster behind the fakes: Kubernetes read live, the Vault side read from the fake."""

    oci_api: FakeOciApi | None = None
    secret_ids: tuple[str, ...] = ()
    the_backends: Backends | None = None

    def read(self) -> Inventory:
        inventory = super().read()
        assert self.oci_api is not None
        secrets = []
        for sid in self.secret_ids:
            doc = self.oci_api.get(sid)
            target = ((doc.get("rotationConfig") or {}).get("targetSystemDetails") or {}).get(
                "targetSystemType"
            )
            secrets.append(
                VaultSecret(
                    id=sid,
                    name=doc["secretName"],
                    compartment_id=doc["compartmentId"],
                    vault_id=doc["vaultId"],
                    current_version_created=datetime(2026, 1, 1, tzinfo=UTC),
                    rotation_enabled=target is not None,
                    target_system=target,
                    current_version_number=next(
                        v["versionNumber"]
                        for v in self.oci_api.secret_versions[sid]
                        if "CURRENT" in v["stages"]
                    ),
                )
            )
        state = OciState(region="eu-frankfurt-1", cluster=None, vault_secrets=tuple(secrets))
        return dataclasses.replace(inventory, oci=state)

    def backends(self) -> Backends:
        assert self.the_backends is not None
        return self.the_backends


def _consumer(name: str, secret: str) -> dict[str, Any]:
    env = [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
    doc = workload(containers=[bare_container("app", env=env)], name=name, labels={"app": name})
    doc["spec"]["replicas"] = 1
    return doc


def _mirror(name: str, secret_id: str, content: str, **meta: Any) -> dict[str, Any]:
    annotations = {"okeguard.io/vault-secret-id": secret_id}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations, **meta},
        "data": {"password": content},
    }


@pytest.fixture
def live(kube_api: FakeKubeApi, oci_api: FakeOciApi, world: OkeWorld, oci_config: Path) -> FakeLive:
    kube_api.add(
        namespace("shop"),
        _mirror("db-0", world.secret_ids[0], secret_content("db-password-0", 2)),
        _mirror("db-1", world.secret_ids[1], secret_content("db-password-1", 2)),
        _consumer("api-0", "db-0"),
        _consumer("api-1", "db-1"),
    )
    cluster = cluster_config(kube_api)
    config = oci.config.from_file(str(oci_config))
    no_retry = oci.retry.NoneRetryStrategy()
    clients = Clients(
        {
            kind: cls(config, service_endpoint=oci_api.url, retry_strategy=no_retry)
            for kind, cls in (
                ("vaults", oci.vault.VaultsClient),
                ("secrets", oci.secrets.SecretsClient),
            )
        },
        None,
    )
    kube = open_kube_writer("fake", kubeconfig=str(kube_api.kubeconfig_path))
    backends = Backends(settings=FAST, kube=kube, oci=OciWriter(clients, "fake"))
    return FakeLive(
        Config(remediation=FAST, clusters=(cluster,)),
        cluster,
        oci_api=oci_api,
        secret_ids=tuple(world.secret_ids),
        the_backends=backends,
    )


# -- helpers -----------------------------------------------------------------------------------
def _plan(live: FakeLive, check_id: str, ocid: str | None = None, name: str | None = None) -> Plan:
    inventory = live.read()
    finding = next(
        f
        for f in live.findings(inventory, (check_id,))
        if f.status.value == "open"
        and (ocid is None or f.resource.ocid == ocid)
        and (name is None or f.resource.name == name)
    )
    return plan_finding(finding, inventory, FAST)


def _apply(database: Database, live: FakeLive, plan: Plan, **kwargs: Any) -> workflow.ApplyResult:
    return workflow.apply_request(
        database.sessions, approved(database, plan, settings=FAST), "bob", live, **kwargs
    )


def _current(oci_api: FakeOciApi, secret_id: str) -> int:
    return int(oci_api.get(secret_id)["currentVersionNumber"])


def _mirror_data(kube_api: FakeKubeApi, name: str) -> str:
    return str(kube_api.get_object("Secret", name, "shop")["data"]["password"])


def _restarted(kube_api: FakeKubeApi, name: str) -> bool:
    template = kube_api.get_object("Deployment", name, "shop")["spec"]["template"]
    return "kubectl.kubernetes.io/restartedAt" in (template["metadata"].get("annotations") or {})


def _payloads(database: Database) -> list[str]:
    with database.sessions() as session:
        return [e.payload for e in session.scalars(select(AuditEvent))]


# -- the Vault paths ---------------------------------------------------------------------------
def test_update_secret_path_syncs_the_mirror_and_restarts(
    database: Database, live: FakeLive, oci_api: FakeOciApi, kube_api: FakeKubeApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    plan = _plan(live, VAULT_CHECK, ocid=sid)
    assert [op.action for op in plan.operations] == [
        "vault.new-version",
        "k8s.sync-secret-from-vault",
        "k8s.restart-consumer",
    ]
    etag = oci_api.etags[sid]
    result = _apply(database, live, plan)
    assert (result.state, result.reason) == ("applied", None)
    assert _current(oci_api, sid) == 3
    new = oci_api.secret_contents[(sid, 3)]
    assert len(base64.b64decode(new)) == FAST.secret_length
    assert _mirror_data(kube_api, "db-1") == new  # exactly the Vault content
    assert _restarted(kube_api, "api-1") and not _restarted(kube_api, "api-0")
    put = oci_api.requests_to(f"*/secrets/{sid}", "PUT")[-1]
    assert put.if_match == etag and "content" in put.body["secretContent"]
    annotations = kube_api.get_object("Secret", "db-1", "shop")["metadata"]["annotations"]
    assert annotations["okeguard.io/vault-secret-version"] == "3"
    assert "okeguard.io/rotated-at" in annotations
    assert_chain_ok(database)


def test_rotate_secret_path(
    database: Database, live: FakeLive, oci_api: FakeOciApi, kube_api: FakeKubeApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[0]
    result = _apply(database, live, _plan(live, VAULT_CHECK, ocid=sid))
    assert result.state == "applied", result.reason
    rotate = oci_api.requests_to(f"*/secrets/{sid}/actions/rotate")
    assert (
        len(rotate) == 1 and rotate[0].retry_token and rotate[0].retry_token.startswith("okeguard-")
    )
    assert not oci_api.requests_to(f"*/secrets/{sid}", "PUT")  # no content of ours
    assert _current(oci_api, sid) == 3
    assert _mirror_data(kube_api, "db-0") == oci_api.secret_contents[(sid, 3)]
    assert _restarted(kube_api, "api-0")
    assert_chain_ok(database)


def test_rollback_restores_the_previous_version_and_mirror(
    database: Database, live: FakeLive, oci_api: FakeOciApi, kube_api: FakeKubeApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    result = _apply(database, live, _plan(live, VAULT_CHECK, ocid=sid))
    assert result.state == "applied"
    back = workflow.rollback_request(database.sessions, result.request_id, "bob", live)
    assert (back.state, back.reason) == ("rolled-back", "rollback on request by bob")
    assert _current(oci_api, sid) == 2
    assert _mirror_data(kube_api, "db-1") == oci_api.secret_contents[(sid, 2)]
    rollback = oci_api.requests_to(f"*/secrets/{sid}", "PUT")[-1]
    assert rollback.body == {"currentVersionNumber": 2}
    events = request_events(database, result.request_id)
    vault_undo = [
        e["payload"]["result"]
        for e in events
        if e["action"] == "remediation.step.rolled-back" and e["payload"]["step"] == 0
    ]
    assert vault_undo == [{"current_version": 2, "replaced_version": 3}]  # numbers, not content
    assert_chain_ok(database)


def test_a_secret_changed_since_approval_is_refused_with_nothing_written(
    database: Database, live: FakeLive, oci_api: FakeOciApi, kube_api: FakeKubeApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    plan = _plan(live, VAULT_CHECK, ocid=sid)
    request_id = approved(database, plan, settings=FAST)
    oci_api.add_secret_version(sid, "c29tZW9uZSBlbHNl")  # someone rotated it by hand: version 3
    oci_api.update(sid, currentVersionNumber=3)
    with pytest.raises(workflow.Refused, match="target changed since approval"):
        workflow.apply_request(database.sessions, request_id, "bob", live)
    # The action itself refuses a secret whose current version moved, writing nothing.
    backends = live.backends()
    with pytest.raises(StepFailed, match="changed since the plan") as raised:
        NewVersionAction().run(plan.operations[0], backends, "okeguard-test-token")
    assert raised.value.wrote_nothing
    assert len(oci_api.secret_versions[sid]) == 3
    assert not oci_api.requests_to("/20180608/secrets/*", "PUT")
    assert _mirror_data(kube_api, "db-1") == secret_content("db-password-1", 2)
    assert not _restarted(kube_api, "api-1")
    assert_chain_ok(database)


def test_external_secret_mirror_is_refreshed_and_rolled_back(
    database: Database, live: FakeLive, oci_api: FakeOciApi, kube_api: FakeKubeApi, world: OkeWorld
) -> None:
    sid = world.secret_ids[1]
    kube_api.add_custom(
        "external-secrets.io/v1beta1",
        "externalsecrets",
        "ExternalSecret",
        {"metadata": {"name": "db-es", "namespace": "shop"}, "spec": {"refreshInterval": "1h"}},
    )
    owner = {"apiVersion": "external-secrets.io/v1beta1", "kind": "ExternalSecret", "name": "db-es"}
    kube_api.add(
        _mirror(
            "db-es",
            sid,
            secret_content("db-password-1", 2),
            ownerReferences=[{**owner, "uid": "u"}],
        ),
        _consumer("api-es", "db-es"),
    )
    backends = live.backends()
    seen: set[tuple[str, str]] = set()

    def external_secrets_controller(seconds: float) -> None:
        """Sync the Secret from Vault when the ExternalSecret is annotated anew, as ESO does."""
        annotations = (
            kube_api.get_object("ExternalSecret", "db-es", "shop")["metadata"].get("annotations")
            or {}
        )
        stamp = (annotations.get("force-sync", ""), annotations.get("okeguard.io/refreshed-by", ""))
        if stamp[0] and stamp not in seen:
            seen.add(stamp)
            content = oci_api.secret_contents[(sid, _current(oci_api, sid))]
            patch = {"data": {"password": content}}
            backends.kube.patch("Secret", "shop", "db-es", patch, content_type=MERGE_PATCH)

    backends.sleep = external_secrets_controller
    plan = _plan(live, VAULT_CHECK, ocid=sid)
    assert [op.action for op in plan.operations] == [
        "vault.new-version",
        "k8s.sync-secret-from-vault",
        "k8s.refresh-external-secret",
        "k8s.restart-consumer",
        "k8s.restart-consumer",
    ]
    result = _apply(database, live, plan)
    assert result.state == "applied", result.reason
    assert _mirror_data(kube_api, "db-es") == oci_api.secret_contents[(sid, 3)]
    back = workflow.rollback_request(database.sessions, result.request_id, "bob", live)
    assert back.state == "rolled-back", back.reason
    assert _current(oci_api, sid) == 2
    assert _mirror_data(kube_api, "db-es") == oci_api.secret_contents[(sid, 2)]
    assert_chain_ok(database)


# -- legacy service-account tokens -------------------------------------------------------------
@pytest.fixture
def token_world(kube_api: FakeKubeApi, live: FakeLive) -> FakeLive:
    kube_api.add(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "ci", "namespace": "shop"},
            "secrets": [{"name": "ci-token"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": "ci-token",
                "namespace": "shop",
                "annotations": {"kubernetes.io/service-account.name": "ci"},
            },
            "data": {"token": base64.b64encode(b"legacy-token-not-real").decode()},
        },
        _consumer("deployer", "ci-token"),
    )
    return live


def _references(kube_api: FakeKubeApi, name: str) -> str:
    env = kube_api.get_object("Deployment", name, "shop")["spec"]["template"]["spec"]
    return str(env["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"])


def test_legacy_token_replaced_consumers_repointed_old_deleted(
    database: Database, token_world: FakeLive, kube_api: FakeKubeApi
) -> None:
    plan = _plan(token_world, TOKEN_CHECK)
    new = plan.operations[0].target["name"]
    result = _apply(database, token_world, plan)
    assert result.state == "applied", result.reason
    created = kube_api.get_object("Secret", new, "shop")
    assert created["type"] == "kubernetes.io/service-account-token" and created["data"]["token"]
    assert _references(kube_api, "deployer") == new
    assert kube_api.get_object("ServiceAccount", "ci", "shop")["secrets"] == [{"name": new}]
    with pytest.raises(KeyError):
        kube_api.get_object("Secret", "ci-token", "shop")
    delete = kube_api.requests_to("/api/v1/namespaces/shop/secrets/ci-token", "DELETE")[-1]
    assert set(delete.body["preconditions"]) == {"uid", "resourceVersion"}
    events = request_events(database, result.request_id)
    order = [e["payload"]["action"] for e in events if e["action"] == "remediation.step.applied"]
    assert order[-1] == "k8s.delete"
    with pytest.raises(workflow.Refused, match="cannot be undone"):
        workflow.rollback_request(database.sessions, result.request_id, "bob", token_world)
    assert_chain_ok(database)


# -- crashes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("index", "step"), [(i, s) for i in (0, 1) for s in (0, 1, 2)])
def test_vault_rotation_crash_after_each_step_is_reconciled(
    index: int,
    step: int,
    database: Database,
    live: FakeLive,
    oci_api: FakeOciApi,
    kube_api: FakeKubeApi,
    world: OkeWorld,
) -> None:
    sid = world.secret_ids[index]  # 0: rotate_secret, 1: update_secret
    plan = _plan(live, VAULT_CHECK, ocid=sid)
    request_id = approved(database, plan, settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", live, crash_after=step)
    [settled] = reconcile_after_lease(database, live)
    last = step == len(plan.operations) - 1
    assert settled.state == ("applied" if last else "rolled-back"), settled.reason
    version = 3 if last else 2
    assert _current(oci_api, sid) == version
    assert _mirror_data(kube_api, f"db-{index}") == oci_api.secret_contents[(sid, version)]
    assert reconcile_after_lease(database, live) == []  # nothing left to settle
    assert_chain_ok(database)


@pytest.mark.parametrize("step", [0, 1, 2, 3, 4])
def test_token_replacement_crash_after_each_step_is_reconciled(
    step: int, database: Database, token_world: FakeLive, kube_api: FakeKubeApi
) -> None:
    plan = _plan(token_world, TOKEN_CHECK)
    assert len(plan.operations) == 5
    new = plan.operations[0].target["name"]
    request_id = approved(database, plan, settings=FAST)
    with pytest.raises(SimulatedCrash):
        workflow.apply_request(database.sessions, request_id, "bob", token_world, crash_after=step)
    [settled] = reconcile_after_lease(database, token_world)
    if step == 4:
        assert settled.state == "applied", settled.reason
        assert _references(kube_api, "deployer") == new
        with pytest.raises(KeyError):
            kube_api.get_object("Secret", "ci-token", "shop")
    else:
        assert settled.state == "rolled-back", settled.reason
        assert _references(kube_api, "deployer") == "ci-token"
        assert kube_api.get_object("ServiceAccount", "ci", "shop")["secrets"] == [
            {"name": "ci-token"}
        ]
        assert kube_api.get_object("Secret", "ci-token", "shop")
        with pytest.raises(KeyError):
            kube_api.get_object("Secret", new, "shop")
    assert_chain_ok(database)


# -- no secret anywhere ------------------------------------------------------------------------
def test_no_secret_content_in_logs_audit_or_messages(
    database: Database,
    live: FakeLive,
    oci_api: FakeOciApi,
    world: OkeWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sid = world.secret_ids[1]
    plan = _plan(live, VAULT_CHECK, ocid=sid)
    result = _apply(database, live, plan)
    back = workflow.rollback_request(database.sessions, result.request_id, "bob", live)
    assert (result.state, back.state) == ("applied", "rolled-back")
    encoded = oci_api.secret_contents[(sid, 3)]
    values = {encoded, base64.b64decode(encoded).decode()}
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    texts += [
        *_payloads(database),
        json.dumps(plan.to_dict()),
        str(result.reason),
        str(back.reason),
    ]
    assert any("version 3 is current" in t for t in texts)  # the logs were captured
    for text in texts:
        for value in values:
            assert value not in text
    assert_chain_ok(database)
