"""The operations of ``rotate-secret`` (planned by :mod:`okeguard.remediations.secret_rotation`).

``vault.new-version``            a new CURRENT version of an OCI Vault secret: ``rotate_secret``
                                 (retry token) or ``update_secret`` with generated content, both
                                 ``if-match``; undone by making the previous version current
                                 again, then refreshing the ExternalSecrets that mirror it.
``k8s.sync-secret-from-vault``   one data key of a Secret set to the Vault secret's current
                                 version (read as a bundle); undone with the previous version.
``k8s.refresh-external-secret``  ``force-sync`` annotation on an ExternalSecret; verified when its
                                 Secret holds the current version.

The consumer and token operations live in :mod:`okeguard.remediations.token_actions`, the Vault
access in :mod:`okeguard.remediations.secret_vault`.

Secret content lives only in local variables for the span of one write or comparison: it never
reaches a result, an exception message or a log record. Only version numbers are recorded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from okeguard.remediations import token_actions  # noqa: F401  (registers its operations)
from okeguard.remediations.engine import Backends, StepFailed, VerifyFailed, register
from okeguard.remediations.kube_writer import JSON_PATCH, MERGE_PATCH
from okeguard.remediations.plan import Operation
from okeguard.remediations.secret_vault import (
    REFRESHED_BY,
    ROTATED_AT,
    ROTATED_BY,
    VERSION_ANNOTATION,
    ann_path,
    bundle_content,
    data_path,
    generate_content,
    kube,
    mirror_matches,
    now_text,
    oci_call,
    oci_client,
    previous_version,
    refresh_external_secret,
    restart_workloads,
    vault_secret,
    vault_versions,
    version_named,
    wait_for_mirror,
    where,
)

log = logging.getLogger(__name__)


# -- vault.new-version -------------------------------------------------------------------------
def _check_pinned(op: Operation, secret: Any) -> None:
    """Refuse (nothing written) when the secret's current version is not the planned one."""
    pinned = int(op.params["pinned_version"])
    if int(secret.current_version_number) != pinned:
        raise StepFailed(
            f"Vault secret {op.target['name']} changed since the plan (version "
            f"{secret.current_version_number} is current, the plan was made at {pinned}): "
            "plan again"
        )


def _version_name(token: str) -> str:
    return f"okeguard-{hashlib.sha256(token.encode()).hexdigest()[:20]}"


@register("vault.new-version")
class NewVersionAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        secret, _ = vault_secret(backends, str(op.target["id"]))
        _check_pinned(op, secret)
        if secret.lifecycle_state != "ACTIVE" or secret.rotation_status == "IN_PROGRESS":
            raise StepFailed(
                f"Vault secret {op.target['name']} is {secret.lifecycle_state}, "
                f"rotation {secret.rotation_status}: try again later"
            )

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        import oci

        secret_id, name = str(op.target["id"]), op.target["name"]
        vaults = oci_client(backends, "vaults")
        before, if_match = vault_secret(backends, secret_id)
        _check_pinned(op, before)  # the etag just read then guards the write itself
        previous = int(before.current_version_number)
        record: dict[str, Any] = {"previous_version": previous}
        if op.params["mode"] == "rotate":
            response = oci_call(
                "rotate_secret",
                vaults.rotate_secret,
                secret_id,
                if_match=if_match,
                opc_retry_token=token,
                write=True,
            )
            record["work_request"] = response.headers.get("opc-work-request-id")

            def probe() -> tuple[bool, str]:
                now, _ = vault_secret(backends, secret_id)
                done = now.rotation_status != "IN_PROGRESS"
                return done, f"rotation {now.rotation_status}"

            timeout = backends.settings.work_request_timeout_seconds
            backends.wait_until(f"the rotation of Vault secret {name}", probe, timeout)
            after, etag = vault_secret(backends, secret_id)
            if int(after.current_version_number) == previous:
                raise StepFailed(f"the rotation of Vault secret {name} made no new version")
            record.update(version=int(after.current_version_number), etag=etag)
        else:
            encoded = base64.b64encode(
                generate_content(int(op.params["length"]), str(op.params["alphabet"])).encode()
            ).decode()
            details = oci.vault.models.UpdateSecretDetails(
                secret_content=oci.vault.models.Base64SecretContentDetails(
                    content_type="BASE64",
                    content=encoded,
                    name=_version_name(token),
                    stage="CURRENT",
                )
            )
            del encoded
            try:
                response = oci_call(
                    "update_secret",
                    vaults.update_secret,
                    secret_id,
                    details,
                    if_match=if_match,
                    write=True,
                )
            finally:
                del details
            record.update(
                version=int(response.data.current_version_number),
                etag=response.headers.get("etag"),
            )
        log.info(
            "Vault secret %s: version %s is current (was %s)", name, record["version"], previous
        )
        return record

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        if record.get("version") is None:
            return
        secret, _ = vault_secret(backends, str(op.target["id"]))
        if int(secret.current_version_number) != int(record["version"]):
            raise VerifyFailed(
                f"Vault secret {op.target['name']}: version {secret.current_version_number} is "
                f"current, not {record['version']}"
            )

    def _ours(self, op: Operation, backends: Backends, token: str) -> int | None:
        """The number of the version this step created (found by its name), if any."""
        if op.params["mode"] != "update":
            return None
        secret_id, name = str(op.target["id"]), _version_name(token)
        for version in vault_versions(backends, secret_id):
            if getattr(version, "name", None) == name:
                return int(version.version_number)
        return version_named(backends, secret_id, name)

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        secret, _ = vault_secret(backends, str(op.target["id"]))
        if record and record.get("version") is not None:
            return int(secret.current_version_number) == int(record["version"])
        if op.params["mode"] == "update":
            return self._ours(op, backends, token) is not None
        # A rotation cannot be named: a version newer than the pinned one is taken to be ours.
        return int(secret.current_version_number) != int(op.params["pinned_version"])

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        import oci

        secret_id, name = str(op.target["id"]), op.target["name"]
        record = record or {}

        def settled() -> tuple[bool, str]:
            now, _ = vault_secret(backends, secret_id)
            return now.rotation_status != "IN_PROGRESS", f"rotation {now.rotation_status}"

        backends.wait_until(
            f"the rotation of Vault secret {name}",
            settled,
            backends.settings.work_request_timeout_seconds,
        )
        live, etag = vault_secret(backends, secret_id)
        current = int(live.current_version_number)
        ours = record.get("version")
        if ours is None and op.params["mode"] == "update":
            ours = self._ours(op, backends, token)
        previous = record.get("previous_version")
        if previous is None:
            previous = previous_version(backends, secret_id)
        if previous is None:
            raise StepFailed(f"Vault secret {name}: the previous version is unknown")
        if ours is not None and current != int(ours):
            raise StepFailed(
                f"Vault secret {name}: version {current} is current, not ours ({ours}); "
                "someone changed it since, so it is left as it is"
            )
        details = oci.vault.models.UpdateSecretDetails(current_version_number=int(previous))
        if current != int(previous):
            oci_call(
                "update_secret (previous version)",
                oci_client(backends, "vaults").update_secret,
                secret_id,
                details,
                if_match=record.get("etag") or etag,
                write=True,
            )
        for ref in op.undo.get("refresh") or ():
            refresh_external_secret(backends, ref, f"{token}-undo")
            wait_for_mirror(backends, ref["secret"], secret_id, int(previous))
            restart_workloads(backends, list(ref.get("restart") or ()), token)
        log.info("Vault secret %s: version %s is current again", name, previous)
        return {"current_version": int(previous), "replaced_version": current}


# -- mirrors ----------------------------------------------------------------------------------
@register("k8s.sync-secret-from-vault")
class SyncSecretAction:
    def _check(self, op: Operation, backends: Backends) -> dict[str, Any]:
        kind, namespace, name = where(op.target)
        doc = kube(backends).get(kind, namespace, name)
        meta = (doc or {}).get("metadata") or {}
        if doc is None or meta.get("uid") != op.params.get("uid"):
            raise StepFailed(f"Secret {namespace}/{name} is gone or was re-created since the plan")
        return dict(meta)

    def dry_run(self, op: Operation, backends: Backends) -> None:
        self._check(op, backends)
        kind, namespace, name = where(op.target)
        patch = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": op.params["resourceVersion"],
            },
            {"op": "add", "path": ann_path(ROTATED_BY), "value": "dry-run"},
        ]
        kube(backends).patch(kind, namespace, name, patch, dry_run=True)

    def _write(
        self,
        op: Operation,
        backends: Backends,
        version: int,
        expect: list[dict[str, Any]],
        mark: str,
    ) -> str:
        kind, namespace, name = where(op.target)
        secret_id, key = str(op.params["secret_id"]), str(op.params["key"])
        patch = [
            *expect,
            {
                "op": "add",
                "path": data_path(key),
                "value": bundle_content(backends, secret_id, version),
            },
            {"op": "add", "path": ann_path(VERSION_ANNOTATION), "value": str(version)},
            {"op": "add", "path": ann_path(ROTATED_AT), "value": now_text()},
            {"op": "add", "path": ann_path(ROTATED_BY), "value": mark},
        ]
        try:
            doc = kube(backends).patch(kind, namespace, name, patch, content_type=JSON_PATCH)
        finally:
            del patch
        rv = str((doc.get("metadata") or {}).get("resourceVersion"))
        del doc
        return rv

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        self._check(op, backends)
        secret_id = str(op.params["secret_id"])
        live, _ = vault_secret(backends, secret_id)
        version = int(live.current_version_number)
        previous = previous_version(backends, secret_id)
        test = {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": op.params["resourceVersion"],
        }
        rv = self._write(op, backends, version, [test], token)
        return {"version": version, "previous_version": previous, "resourceVersion": rv}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        if record.get("version") is None:
            return
        secret_id = str(op.params["secret_id"])
        ref = {**op.target, "key": op.params["key"]}
        if not mirror_matches(backends, ref, secret_id, int(record["version"])):
            raise VerifyFailed(
                f"Secret {op.target['namespace']}/{op.target['name']} does not hold Vault "
                f"version {record['version']}"
            )

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        kind, namespace, name = where(op.target)
        doc = kube(backends).get(kind, namespace, name) or {}
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        return bool(annotations.get(ROTATED_BY) == token)

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        record = record or {}
        previous = record.get("previous_version")
        if previous is None:  # the Vault step is undone after this one: PREVIOUS is still right
            previous = previous_version(backends, str(op.params["secret_id"]))
        if previous is None:
            raise StepFailed("the Vault secret has no previous version to restore")
        expect = [{"op": "test", "path": ann_path(ROTATED_BY), "value": token}]
        if record.get("resourceVersion"):
            expect.insert(
                0,
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": record["resourceVersion"],
                },
            )
        rv = self._write(op, backends, int(previous), expect, f"{token}-undo")
        restart_workloads(backends, list(op.undo.get("restart") or ()), token)
        return {"version": int(previous), "resourceVersion": rv}


@register("k8s.refresh-external-secret")
class RefreshExternalSecretAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, name = where(op.target)
        patch = {"metadata": {"annotations": {"force-sync": "0"}}}
        kube(backends).patch(kind, namespace, name, patch, content_type=MERGE_PATCH, dry_run=True)

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        live, _ = vault_secret(backends, str(op.params["secret_id"]))
        doc = refresh_external_secret(backends, op.target, token)
        return {
            "version": int(live.current_version_number),
            "resourceVersion": (doc.get("metadata") or {}).get("resourceVersion"),
        }

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        secret_id = str(op.params["secret_id"])
        version = record.get("version")
        if version is None:
            version = vault_secret(backends, secret_id)[0].current_version_number
        wait_for_mirror(backends, op.params["secret"], secret_id, int(version))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        kind, namespace, name = where(op.target)
        doc = kube(backends).get(kind, namespace, name) or {}
        return bool(
            ((doc.get("metadata") or {}).get("annotations") or {}).get(REFRESHED_BY) == token
        )

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return {"note": "refreshed again by the Vault step's undo"}
