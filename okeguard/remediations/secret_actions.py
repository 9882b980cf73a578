"""The operations of ``rotate-secret`` (planned by :mod:`okeguard.remediations.secret_rotation`).

``vault.new-version``  a new CURRENT version of an OCI Vault secret: ``rotate_secret`` (retry
                       token) or ``update_secret`` with generated content, both ``if-match``;
                       refused before writing when a mirror does not hold the pinned version
                       (its rollback could not restore it). Undone by making the pinned version
                       current again, then refreshing the ExternalSecrets that mirror it; refused
                       (:class:`UndoRefused`) when someone made another version current since.

The mirror operations live in :mod:`okeguard.remediations.secret_mirror`, the consumer and token
operations in :mod:`okeguard.remediations.token_actions`, the Vault access in
:mod:`okeguard.remediations.secret_vault`.

Secret content lives only in local variables for the span of one write or comparison: it never
reaches a result, an exception message or a log record. Only version numbers are recorded.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from okeguard.remediations.engine import (
    Backends,
    StepFailed,
    UndoRefused,
    VerifyFailed,
    action,
)
from okeguard.remediations.plan import Operation
from okeguard.remediations.secret_vault import (
    generate_content,
    mirror_matches,
    oci_call,
    oci_client,
    refresh_external_secret,
    restart_workloads,
    vault_secret,
    vault_versions,
    version_named,
    wait_for_mirror,
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


@action("vault.new-version")
class NewVersionAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        secret, _ = vault_secret(backends, str(op.target["id"]))
        _check_pinned(op, secret)
        if secret.lifecycle_state != "ACTIVE" or secret.rotation_status == "IN_PROGRESS":
            raise StepFailed(
                f"Vault secret {op.target['name']} is {secret.lifecycle_state}, "
                f"rotation {secret.rotation_status}: try again later"
            )
        pinned = int(op.params["pinned_version"])
        for mirror in op.params.get("mirrors") or ():
            if not mirror_matches(backends, mirror, str(op.target["id"]), pinned):
                raise StepFailed(
                    f"Secret {mirror['namespace']}/{mirror['name']} does not hold version "
                    f"{pinned} of Vault secret {op.target['name']}, the current one (key "
                    f"{mirror['key']}): a rollback could restore only a Vault version, not what "
                    "it holds now, so nothing was written; sync it with Vault and plan again"
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
        """The number of the version this step created, if any: found by its name (update), or
        taken to be the first version after the pinned one (a rotation cannot be named)."""
        secret_id, pinned = str(op.target["id"]), int(op.params["pinned_version"])
        versions = vault_versions(backends, secret_id)
        if op.params["mode"] != "update":
            newer = [int(v.version_number) for v in versions if int(v.version_number) > pinned]
            return min(newer, default=None)
        name = _version_name(token)
        for version in versions:
            if getattr(version, "name", None) == name:
                return int(version.version_number)
        return version_named(backends, secret_id, name)

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        """True while this step's version is current; False when it made none, or the pinned
        version is current again; :class:`UndoRefused` when another version was made current
        since (the undo would replace it)."""
        secret, _ = vault_secret(backends, str(op.target["id"]))
        current, pinned = int(secret.current_version_number), int(op.params["pinned_version"])
        ours = (record or {}).get("version")
        if ours is None:
            ours = self._ours(op, backends, token)
        if ours is None or current == pinned:
            return False
        if current == int(ours):
            return True
        raise UndoRefused(
            f"Vault secret {op.target['name']}: version {current} is current, not this step's "
            f"({ours}): someone changed it since, and the undo would replace their version; "
            "left as it is"
        )

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
        if ours is None:
            ours = self._ours(op, backends, token)
        previous = record.get("previous_version", op.params.get("pinned_version"))
        if previous is None:
            raise StepFailed(f"Vault secret {name}: the previous version is unknown")
        if current != int(previous) and (ours is None or current != int(ours)):
            raise UndoRefused(
                f"Vault secret {name}: version {current} is current, not this step's ({ours}): "
                "someone changed it since, and the undo would replace their version; left as "
                "it is"
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
