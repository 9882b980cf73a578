"""``rotate-secret``: a new OCI Vault secret version, its Kubernetes mirrors synced, consumers
restarted; or a legacy service-account token Secret replaced by a fresh one.

Vault rotation (``oke.vault-secret-not-rotated``, and ``k8s.stale-secret`` on a Secret annotated
``okeguard.io/vault-secret-id``), in order:

1. ``vault.new-version``: ``rotate_secret`` when the secret has a rotation target system, else
   ``update_secret`` with generated content (length/alphabet pinned here, from the secret's
   freeform tags or the settings); the current version number pinned at plan time, ``if-match`` the etag read just before writing;
2. per mirror: ``k8s.sync-secret-from-vault`` (a Secret linked by annotation) or
   ``k8s.refresh-external-secret`` (a Secret owned by an External Secrets ``ExternalSecret``);
3. per consumer (Deployment, StatefulSet, DaemonSet): ``k8s.restart-consumer``.

Legacy token (``k8s.legacy-service-account-token``): ``k8s.create-token-secret`` (a new token
Secret for the same ServiceAccount), a ``k8s.patch`` repointing every consumer (and the
ServiceAccount's ``secrets`` list), ``k8s.await-consumers`` (rollouts healthy), and last the old
Secret's ``k8s.delete`` (uid and resourceVersion preconditions; irreversible).

The plan never holds content: only how to generate it and which versions to use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory, K8sObject, Workload
from okeguard.inventory.oci_model import VaultSecret
from okeguard.remediations.plan import Operation, Plan, PlanError
from okeguard.remediations.planners import planner
from okeguard.remediations.secret_vault import ALPHABETS, MIRROR_ANNOTATIONS
from okeguard.remediations.token_rotation import (
    REMEDIATION,
    ROLLOUT_KINDS,
    consumers,
    plan_legacy_token,
    ref,
)

VAULT_ID_ANNOTATION = "okeguard.io/vault-secret-id"
VAULT_KEY_ANNOTATION = "okeguard.io/vault-secret-key"
LENGTH_TAG, ALPHABET_TAG = "okeguard-length", "okeguard-alphabet"


def _find_secret(inventory: Inventory, finding: Finding) -> K8sObject:
    r = finding.resource
    obj = inventory.get("Secret", r.namespace, r.name)
    if obj is None:
        raise PlanError(f"{r.display()} is not in the cluster's current state")
    return obj


# -- Vault rotation ------------------------------------------------------------------------
def _vault_secret(inventory: Inventory, secret_id: str, what: str) -> VaultSecret:
    if inventory.oci is None:
        raise PlanError(
            f"{what}: the OCI side of the cluster was not read; configure the cluster's OCID "
            "and the Vault compartments, then scan again"
        )
    for vs in inventory.oci.vault_secrets:
        if vs.id == secret_id:
            return vs
    raise PlanError(
        f"{what}: Vault secret {secret_id} is not among the Vault secrets read "
        "(is its compartment configured, and may okeguard inspect secret-family there?)"
    )


def _generation(vs: VaultSecret, settings: RemediationConfig) -> tuple[int, str]:
    tags: Mapping[str, str] = getattr(vs, "freeform_tags", None) or {}
    raw_length = tags.get(LENGTH_TAG)
    alphabet = str(tags.get(ALPHABET_TAG) or settings.secret_alphabet)
    try:
        length = int(raw_length) if raw_length is not None else settings.secret_length
    except ValueError:
        raise PlanError(
            f"Vault secret {vs.name}: tag {LENGTH_TAG}={raw_length!r} is not a number"
        ) from None
    if not 12 <= length <= 4096:
        raise PlanError(f"Vault secret {vs.name}: {LENGTH_TAG} must be between 12 and 4096")
    if alphabet not in ALPHABETS:
        raise PlanError(
            f"Vault secret {vs.name}: {ALPHABET_TAG}={alphabet!r} is not one of "
            f"{', '.join(ALPHABETS)}"
        )
    return length, alphabet


def _mirror_key(secret: K8sObject) -> str:
    key = secret.annotations.get(VAULT_KEY_ANNOTATION)
    keys = sorted((secret.raw.get("data") or {}).keys())
    if key:
        return key
    if len(keys) != 1:
        raise PlanError(
            f"Secret {secret.namespace}/{secret.name} has {len(keys)} data keys: name the one "
            f"that mirrors the Vault secret with the annotation {VAULT_KEY_ANNOTATION}"
        )
    return str(keys[0])


def _external_secret_owner(secret: K8sObject) -> str | None:
    for owner in secret.metadata.get("ownerReferences") or ():
        if owner.get("kind") == "ExternalSecret":
            return str(owner.get("name"))
    return None


def _plan_vault(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, vs: VaultSecret
) -> Plan:
    if vs.current_version_number is None:
        raise PlanError(
            f"Vault secret {vs.name}: its current version was not read, so a change since the "
            "plan could not be detected; scan it again"
        )
    mirrors = sorted(
        (s for s in inventory.of_kind("Secret") if s.annotations.get(VAULT_ID_ANNOTATION) == vs.id),
        key=lambda s: (s.namespace or "", s.name),
    )
    risks: list[str] = []
    rotate = bool(vs.target_system)
    params: dict[str, Any] = {
        "mode": "rotate" if rotate else "update",
        "pinned_version": vs.current_version_number,
    }
    if rotate:
        how = f"rotate_secret (target system {vs.target_system})"
    else:
        params["length"], params["alphabet"] = _generation(vs, settings)
        how = f"update_secret with {params['length']} generated {params['alphabet']} characters"
        risks.append(
            "update_secret changes the value in Vault only: whatever checks it (a database "
            "user's password, a partner's API) must be changed to match, or its consumers fail "
            "to log in; a rotation target on the secret (rotate_secret) changes both"
        )
    mirror_ops: list[Operation] = []
    restart: dict[tuple[str, str, str], Workload] = {}
    external: list[dict[str, Any]] = []
    synced: list[dict[str, Any]] = []
    for mirror in mirrors:
        key = _mirror_key(mirror)
        users = consumers(inventory, mirror.namespace, mirror.name)
        rollouts = [w for w in users if w.kind in ROLLOUT_KINDS]
        for w in users:
            if w.kind not in ROLLOUT_KINDS:
                risks.append(
                    f"{w.kind} {w.namespace}/{w.name} reads Secret {mirror.name} but cannot be "
                    "restarted: it sees the new content only in pods created from now on"
                )
            else:
                restart[(w.kind, w.namespace, w.name)] = w
        owner = _external_secret_owner(mirror)
        secret = {**ref(mirror), "key": key}
        if owner is not None:
            target = {"kind": "ExternalSecret", "namespace": mirror.namespace, "name": owner}
            external.append({**target, "secret": secret, "restart": [ref(w) for w in rollouts]})
            mirror_ops.append(
                Operation(
                    action="k8s.refresh-external-secret",
                    target=target,
                    params={"secret": secret, "secret_id": vs.id},
                    undo={"note": "the Vault undo refreshes it again"},
                    description=f"refresh ExternalSecret {mirror.namespace}/{owner} "
                    f"(writes Secret {mirror.name}) from the new version",
                )
            )
            continue
        synced.append(secret)
        mirror_ops.append(
            Operation(
                action="k8s.sync-secret-from-vault",
                target=ref(mirror),
                params={
                    "secret_id": vs.id,
                    "key": key,
                    "uid": mirror.metadata.get("uid"),
                    "resourceVersion": mirror.metadata.get("resourceVersion"),
                },
                undo={
                    "content": "the previous Vault version",
                    "version": vs.current_version_number,
                    # exactly as they were: a value, or None for an annotation that was absent
                    "annotations": {a: mirror.annotations.get(a) for a in MIRROR_ANNOTATIONS},
                    "restart": [ref(w) for w in rollouts],
                },
                description=f"write the new Vault version into Secret "
                f"{mirror.namespace}/{mirror.name} (key {key})",
            )
        )
    if not mirrors:
        risks.append(
            f"no Kubernetes Secret is linked to Vault secret {vs.name} (annotation "
            f"{VAULT_ID_ANNOTATION}): whatever reads it directly must pick up the new version"
        )
    if synced:
        # checked before the new version is written: each must hold the pinned version, the
        # content its rollback restores
        params["mirrors"] = synced
    vault_op = Operation(
        action="vault.new-version",
        target={"kind": "VaultSecret", "id": vs.id, "name": vs.name},
        params=params,
        undo={"current_version": "the version current before this step", "refresh": external},
        description=f"new version of Vault secret {vs.name} by {how}",
    )
    restart_ops = [
        Operation(
            action="k8s.restart-consumer",
            target=ref(w),
            params={"rollout": True},
            undo={"note": "the content undo restarts it again"},
            description=f"rollout restart of {w.kind} {w.namespace}/{w.name}",
        )
        for _, w in sorted(restart.items())
    ]
    risks.append(
        "clients outside this cluster that hold the old value stop working once the new "
        "version is in use; the previous version stays available for rollback"
    )
    diff_lines = [
        f"~ VaultSecret {vs.name} ({vs.id}): new CURRENT version ({how}); previous kept",
        *(
            f"~ {op.target['kind']} {op.target['namespace']}/{op.target['name']}"
            for op in mirror_ops
        ),
        *(
            f"~ {op.target['kind']} {op.target['namespace']}/{op.target['name']}: restart"
            for op in restart_ops
        ),
    ]
    return Plan.of(
        finding,
        REMEDIATION,
        (vault_op, *mirror_ops, *restart_ops),
        "\n".join(diff_lines),
        risks=risks,
        verify={"vault_version": "new", "mirrors": len(mirror_ops), "rollouts": len(restart_ops)},
    )


@planner("rotate-secret")
def plan_rotate_secret(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The ``rotate-secret`` plan for a Vault secret, a Vault-linked Secret or a legacy token."""
    if variant != "default":
        raise PlanError(f"{REMEDIATION} has one variant, 'default'")
    check = finding.check_id
    if check == "oke.vault-secret-not-rotated":
        if not finding.resource.ocid:
            raise PlanError("this finding names no Vault secret OCID (the Vault could not be read)")
        vs = _vault_secret(inventory, finding.resource.ocid, finding.resource.display())
        return _plan_vault(finding, inventory, settings, vs)
    if check == "k8s.legacy-service-account-token":
        return plan_legacy_token(finding, inventory, _find_secret(inventory, finding))
    if check == "k8s.stale-secret":
        secret = _find_secret(inventory, finding)
        secret_id = secret.annotations.get(VAULT_ID_ANNOTATION)
        if not secret_id:
            raise PlanError(
                f"Secret {secret.namespace}/{secret.name} is not linked to an OCI Vault secret, "
                "so okeguard cannot generate and keep its new content: store it in Vault and "
                f"annotate the Secret {VAULT_ID_ANNOTATION}=<secret OCID> (and "
                f"{VAULT_KEY_ANNOTATION}=<data key> if it has several keys), or rotate it by hand"
            )
        vs = _vault_secret(inventory, secret_id, f"Secret {secret.namespace}/{secret.name}")
        return _plan_vault(finding, inventory, settings, vs)
    raise PlanError(f"{REMEDIATION} does not fix {check} findings")
