"""``rotate-secret`` planning: pure, deterministic, and never holding a secret value."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta
from typing import Any, get_args

import pytest

from okeguard.checks.engine import run_checks
from okeguard.checks.model import Finding
from okeguard.config import Config, RemediationConfig, SecretAlphabet
from okeguard.inventory.model import Inventory
from okeguard.inventory.oci_model import OciState, VaultSecret
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import plan_finding
from okeguard.remediations.secret_vault import ALPHABETS, generate_content
from okeguard.remediations.token_rotation import rotated_name
from tests.helpers import NOW, inventory
from tests.unit.factories import bare_container, secret, service_account, workload

VS_ID = "ocid1.vaultsecret.oc1..db"
VERSION = 7
PLAIN = "hunter2-not-real"  # the Secret values the factories put in data
SETTINGS = RemediationConfig()


def vault_secret(**changes: Any) -> VaultSecret:
    vs = VaultSecret(
        id=VS_ID,
        name="db-password",
        compartment_id="ocid1.compartment.oc1..apps",
        vault_id="ocid1.vault.oc1..v",
        current_version_created=NOW - timedelta(days=200),
        rotation_enabled=False,
        current_version_number=VERSION,
    )
    return dataclasses.replace(vs, **changes)


def with_tags(**tags: str) -> VaultSecret:
    """A Vault secret with freeform tags (``okeguard_length`` is the tag ``okeguard-length``)."""
    return vault_secret(freeform_tags={k.replace("_", "-"): v for k, v in tags.items()})


def linked_secret(name: str = "db", **annotations: str) -> dict[str, Any]:
    doc = secret(
        name,
        created="2025-01-01T00:00:00Z",
        annotations={"okeguard.io/vault-secret-id": VS_ID, **annotations},
    )
    doc["metadata"].update(uid=f"uid-{name}", resourceVersion="100")
    return doc


def consumer(
    kind: str = "Deployment", name: str = "api", secret_name: str = "db"
) -> dict[str, Any]:
    c = bare_container(
        env=[
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}}
        ]
    )
    doc = workload(kind, name, containers=[c])
    doc["metadata"]["resourceVersion"] = "7"
    return doc


def world(docs: list[dict[str, Any]], *secrets: VaultSecret) -> Inventory:
    inv = inventory(docs, cluster="prod")
    return dataclasses.replace(
        inv, oci=OciState(region="eu-frankfurt-1", cluster=None, vault_secrets=secrets)
    )


def finding(inv: Inventory, check_id: str) -> Finding:
    found = [
        f
        for f in run_checks(inv, Config(), now=NOW, only={check_id}).findings
        if f.status.value == "open"
    ]
    assert len(found) == 1, found
    return found[0]


def plan(inv: Inventory, check_id: str, **settings: Any) -> Plan:
    return plan_finding(finding(inv, check_id), inv, RemediationConfig(**settings))


def actions(p: Plan) -> list[str]:
    return [op.action for op in p.operations]


def no_values(p: Plan) -> None:
    text = json.dumps(p.to_dict())
    assert PLAIN not in text
    assert "aHVudGVyMi1ub3QtcmVhbA" not in text  # its base64


# -- Vault secret ------------------------------------------------------------------------------
def test_vault_finding_update_path_syncs_the_mirror_and_restarts_consumers() -> None:
    inv = world([linked_secret(), consumer(), consumer("CronJob", "report")], vault_secret())
    p = plan(inv, "oke.vault-secret-not-rotated")
    assert actions(p) == ["vault.new-version", "k8s.sync-secret-from-vault", "k8s.restart-consumer"]
    vault, sync, restart = p.operations
    mirror = {"kind": "Secret", "namespace": "shop", "name": "db", "key": "password"}
    assert vault.params == {
        "mode": "update",
        "pinned_version": VERSION,
        "length": 32,
        "alphabet": "alphanumeric",
        "mirrors": [mirror],  # each must hold the pinned version before anything is written
    }
    assert sync.target == {"kind": "Secret", "namespace": "shop", "name": "db"}
    assert sync.params == {
        "secret_id": VS_ID,
        "key": "password",
        "uid": "uid-db",
        "resourceVersion": "100",
    }
    assert sync.undo["restart"] == [{"kind": "Deployment", "namespace": "shop", "name": "api"}]
    assert sync.undo["version"] == VERSION
    # what the undo puts back exactly: absent annotations are removed again
    assert sync.undo["annotations"] == {
        "okeguard.io/vault-secret-version": None,
        "okeguard.io/rotated-at": None,
        "okeguard.io/rotated-by": None,
    }
    assert restart.target == {"kind": "Deployment", "namespace": "shop", "name": "api"}
    assert any("CronJob shop/report" in r for r in p.risks)
    no_values(p)


def test_rotation_target_uses_rotate_secret() -> None:
    inv = world([linked_secret()], vault_secret(target_system="ADB"))
    vault = plan(inv, "oke.vault-secret-not-rotated").operations[0]
    mirror = {"kind": "Secret", "namespace": "shop", "name": "db", "key": "password"}
    assert vault.params == {"mode": "rotate", "pinned_version": VERSION, "mirrors": [mirror]}


def test_the_undo_keeps_the_annotations_a_previous_rotation_left() -> None:
    earlier = {
        "okeguard.io/rotated-at": "2025-03-01T00:00:00Z",
        "okeguard.io/vault-secret-version": str(VERSION),
    }
    inv = world([linked_secret(**earlier)], vault_secret())
    sync = plan(inv, "oke.vault-secret-not-rotated").operations[1]
    assert sync.undo["annotations"] == {**earlier, "okeguard.io/rotated-by": None}


def test_length_and_alphabet_from_settings_and_tags() -> None:
    inv = world([], vault_secret())
    p = plan(inv, "oke.vault-secret-not-rotated", secret_length=64, secret_alphabet="hex")
    assert p.operations[0].params["length"] == 64 and p.operations[0].params["alphabet"] == "hex"
    assert any("no Kubernetes Secret is linked" in r for r in p.risks)
    tagged = with_tags(okeguard_length="20", okeguard_alphabet="base64url")
    params = plan(world([], tagged), "oke.vault-secret-not-rotated").operations[0].params
    assert (params["length"], params["alphabet"]) == (20, "base64url")


def test_external_secret_owned_mirror_is_refreshed() -> None:
    doc = linked_secret()
    doc["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "external-secrets.io/v1beta1",
            "kind": "ExternalSecret",
            "name": "db-es",
            "uid": "u",
        }
    ]
    inv = world([doc, consumer()], vault_secret())
    p = plan(inv, "oke.vault-secret-not-rotated")
    assert actions(p) == [
        "vault.new-version",
        "k8s.refresh-external-secret",
        "k8s.restart-consumer",
    ]
    assert p.operations[1].target == {
        "kind": "ExternalSecret",
        "namespace": "shop",
        "name": "db-es",
    }
    refresh = p.operations[0].undo["refresh"]
    assert refresh[0]["name"] == "db-es" and refresh[0]["secret"]["key"] == "password"


def test_several_keys_need_the_key_annotation() -> None:
    doc = linked_secret()
    doc["data"]["user"] = "YWRtaW4="
    with pytest.raises(PlanError, match="vault-secret-key"):
        plan(world([doc], vault_secret()), "oke.vault-secret-not-rotated")
    named = linked_secret(**{"okeguard.io/vault-secret-key": "password"})
    named["data"]["user"] = "YWRtaW4="
    p = plan(world([named], vault_secret()), "oke.vault-secret-not-rotated")
    assert p.operations[1].params["key"] == "password"


def test_vault_plan_refusals() -> None:
    with pytest.raises(PlanError, match="current version was not read"):
        plan(world([], vault_secret(current_version_number=None)), "oke.vault-secret-not-rotated")
    with pytest.raises(PlanError, match="between 12 and 4096"):
        plan(world([], with_tags(okeguard_length="4")), "oke.vault-secret-not-rotated")
    with pytest.raises(PlanError, match="not a number"):
        plan(world([], with_tags(okeguard_length="many")), "oke.vault-secret-not-rotated")
    with pytest.raises(PlanError, match="is not one of"):
        plan(world([], with_tags(okeguard_alphabet="emoji")), "oke.vault-secret-not-rotated")


# -- stale Kubernetes Secret -----------------------------------------------------------------
def test_stale_linked_secret_rotates_its_vault_secret() -> None:
    inv = world([linked_secret(), consumer()], vault_secret(current_version_created=NOW))
    p = plan(inv, "k8s.stale-secret")
    assert p.check_id == "k8s.stale-secret"
    assert actions(p)[:2] == ["vault.new-version", "k8s.sync-secret-from-vault"]
    no_values(p)


def test_stale_secret_without_vault_link_explains_how_to_link_it() -> None:
    doc = secret("db", created="2025-01-01T00:00:00Z")
    with pytest.raises(PlanError, match=re.escape("okeguard.io/vault-secret-id=<secret OCID>")):
        plan(world([doc]), "k8s.stale-secret")


def test_stale_secret_linked_to_an_unknown_vault_secret() -> None:
    with pytest.raises(PlanError, match="not among the Vault secrets read"):
        plan(world([linked_secret()]), "k8s.stale-secret")
    inv = inventory([linked_secret()], cluster="prod")
    with pytest.raises(PlanError, match="OCI side of the cluster was not read"):
        plan(inv, "k8s.stale-secret")


# -- legacy service-account token ------------------------------------------------------------
def token_secret() -> dict[str, Any]:
    doc = secret(
        "ci-token",
        type="kubernetes.io/service-account-token",
        annotations={"kubernetes.io/service-account.name": "ci"},
        data={"token": "eyJhbGciOi-not-real"},
    )
    doc["metadata"].update(uid="uid-tok", resourceVersion="55")
    return doc


def volume_consumer() -> dict[str, Any]:
    c = bare_container(envFrom=[{"secretRef": {"name": "ci-token"}}])
    doc = workload(
        "Deployment",
        "deployer",
        containers=[c],
        pod_spec={
            "volumes": [
                {"name": "t", "secret": {"secretName": "ci-token"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "ci-token"}}]}},
            ]
        },
    )
    doc["metadata"]["resourceVersion"] = "9"
    return doc


def test_legacy_token_is_replaced_and_deleted_last() -> None:
    sa = service_account("ci")
    sa["metadata"]["resourceVersion"] = "3"
    sa["secrets"] = [{"name": "ci-token"}]
    inv = world([token_secret(), volume_consumer(), consumer("Deployment", "api", "ci-token"), sa])
    p = plan(inv, "k8s.legacy-service-account-token")
    new = rotated_name(inv.get("Secret", "shop", "ci-token"))  # type: ignore[arg-type]
    assert new.startswith("ci-token-rotated-") and len(new) == len("ci-token-rotated-") + 6
    assert actions(p) == [
        "k8s.create-token-secret",
        "k8s.patch",
        "k8s.patch",
        "k8s.patch",
        "k8s.await-consumers",
        "k8s.delete",
    ]
    create, api, deployer, sa_patch, _, delete = p.operations
    body = create.params["body"]
    assert body["type"] == "kubernetes.io/service-account-token"
    assert body["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "ci"
    assert body["metadata"]["name"] == new and "data" not in body
    assert deployer.params["patch"][0] == {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": "9",
    }
    replaced = [o["path"] for o in deployer.params["patch"] if o["op"] == "replace"]
    assert replaced == [
        "/spec/template/spec/containers/0/envFrom/0/secretRef/name",
        "/spec/template/spec/volumes/0/secret/secretName",
        "/spec/template/spec/volumes/1/projected/sources/0/secret/name",
    ]
    assert api.params["rollout"] is True
    assert sa_patch.target["kind"] == "ServiceAccount"
    assert delete.params == {"uid": "uid-tok", "resourceVersion": "55"}
    assert delete.reversible is False
    assert "eyJhbGciOi-not-real" not in json.dumps(p.to_dict())


def test_legacy_token_mounted_by_a_bare_pod_is_refused() -> None:
    c = bare_container(
        env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "ci-token", "key": "token"}}}]
    )
    inv = world([token_secret(), workload("Pod", "runner", containers=[c])])
    with pytest.raises(PlanError, match="Pod shop/runner"):
        plan(inv, "k8s.legacy-service-account-token")


def test_legacy_token_named_by_a_job_is_left_with_a_warning() -> None:
    c = bare_container(envFrom=[{"secretRef": {"name": "ci-token"}}])
    inv = world([token_secret(), workload("Job", "migrate", containers=[c])])
    p = plan(inv, "k8s.legacy-service-account-token")
    assert actions(p) == ["k8s.create-token-secret", "k8s.await-consumers", "k8s.delete"]
    assert any("Job shop/migrate" in r and "cannot be changed" in r for r in p.risks)


def test_legacy_token_without_uid_is_refused() -> None:
    doc = token_secret()
    del doc["metadata"]["uid"]
    with pytest.raises(PlanError, match="uid and resourceVersion"):
        plan(world([doc]), "k8s.legacy-service-account-token")


# -- determinism -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "check_id", ["oke.vault-secret-not-rotated", "k8s.legacy-service-account-token"]
)
def test_same_inputs_same_plan_hash(check_id: str) -> None:
    docs = [linked_secret(), consumer(), token_secret(), volume_consumer()]
    first = plan(world(docs, vault_secret()), check_id)
    second = plan(world(docs, vault_secret()), check_id)
    assert first.hash == second.hash
    assert Plan.from_dict(json.loads(json.dumps(first.to_dict()))).hash == first.hash


def test_a_new_version_changes_the_plan() -> None:
    docs = [linked_secret()]
    one = plan(world(docs, vault_secret()), "oke.vault-secret-not-rotated")
    two = plan(world(docs, vault_secret(current_version_number=8)), "oke.vault-secret-not-rotated")
    assert one.hash != two.hash


def test_only_the_default_variant() -> None:
    inv = world([linked_secret()], vault_secret())
    with pytest.raises(PlanError, match="one variant"):
        plan_finding(finding(inv, "oke.vault-secret-not-rotated"), inv, SETTINGS, "aggressive")


# -- generated content -----------------------------------------------------------------------
@pytest.mark.parametrize("alphabet", get_args(SecretAlphabet))
def test_generated_content_has_the_length_and_alphabet(alphabet: str) -> None:
    value = generate_content(40, alphabet)
    assert len(value) == 40 and set(value) <= set(ALPHABETS[alphabet])
    assert value != generate_content(40, alphabet)
