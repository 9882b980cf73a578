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
from okeguard.remediations.engine import (
    Backends,
    StepFailed,
    UndoRefused,
    VerifyFailed,
    register,
)
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

    def _previous(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> int:
        """The Vault version the Secret held before this step (checked when the run began)."""
        previous = op.undo.get("version", record.get("previous_version"))
        if previous is None:  # a plan made before the version was pinned in its undo
            previous = previous_version(backends, str(op.params["secret_id"]))
        if previous is None:
            raise StepFailed("the Vault secret has no previous version to restore")
        return int(previous)

    def _as_before(self, op: Operation, backends: Backends, doc: Mapping[str, Any]) -> bool:
        """Whether ``doc`` is as it was before this step: the previous version's content and
        every annotation the step writes exactly as it was (compared by digest, in memory)."""
        before = op.undo.get("annotations")
        if before is None:
            return False
        annotations = (doc.get("metadata") or {}).get("annotations") or {}
        if any(annotations.get(key) != value for key, value in before.items()):
            return False
        ref = {**op.target, "key": op.params["key"]}
        return mirror_matches(backends, ref, str(op.params["secret_id"]), int(op.undo["version"]))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        """True while the Secret carries this step's mark; False when the step never wrote it
        (or it was undone); :class:`UndoRefused` when it was written and changed since."""
        kind, namespace, name = where(op.target)
        doc = kube(backends).get(kind, namespace, name)
        if doc is None:
            return False  # gone: nothing this step wrote remains
        meta = doc.get("metadata") or {}
        if (meta.get("annotations") or {}).get(ROTATED_BY) == token:
            return True
        if meta.get("resourceVersion") == op.params.get("resourceVersion"):
            return False  # untouched since the plan
        if self._as_before(op, backends, doc):
            return False
        raise UndoRefused(
            f"Secret {namespace}/{name} was changed since this step wrote it"
            + ("" if record is not None else " (or by someone else before it)")
            + f": it no longer carries the step's {ROTATED_BY} mark, and undoing it would "
            "overwrite that change; left as it is"
        )

    def _guard(
        self, op: Operation, backends: Backends, record: Mapping[str, Any], token: str
    ) -> list[dict[str, Any]]:
        """The ``test`` s that bind the undo to the Secret exactly as this step left it."""
        kind, namespace, name = where(op.target)
        mark = {"op": "test", "path": ann_path(ROTATED_BY), "value": token}
        if record.get("resourceVersion"):
            rv = record["resourceVersion"]
        else:  # the record was lost in a crash: the Secret must still hold what the step wrote
            doc = kube(backends).get(kind, namespace, name) or {}
            meta = doc.get("metadata") or {}
            annotations = meta.get("annotations") or {}
            wrote = annotations.get(VERSION_ANNOTATION)
            ref = {**op.target, "key": op.params["key"]}
            if annotations.get(ROTATED_BY) != token or not (
                str(wrote).isdigit()
                and mirror_matches(backends, ref, str(op.params["secret_id"]), int(str(wrote)))
            ):
                raise UndoRefused(
                    f"Secret {namespace}/{name} was changed since this step wrote it: it does "
                    "not hold the version the step wrote any more, and undoing it would "
                    "overwrite that change; left as it is"
                )
            rv = meta.get("resourceVersion")
        return [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, mark]

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        """Put the Secret back exactly as it was: the previous version's content, and each
        annotation the step wrote restored to its value before, or removed if it had none."""
        record = record or {}
        kind, namespace, name = where(op.target)
        previous = self._previous(op, backends, record)
        guard = self._guard(op, backends, record, token)
        before = op.undo.get("annotations")
        if before is None:  # a plan made before the annotations were kept: the old undo
            before = {VERSION_ANNOTATION: str(previous), ROTATED_AT: now_text()}
            before[ROTATED_BY] = f"{token}-undo"
        restore = [
            {"op": "remove", "path": ann_path(key)}
            if value is None
            else {"op": "add", "path": ann_path(key), "value": value}
            for key, value in before.items()
        ]
        secret_id, key = str(op.params["secret_id"]), str(op.params["key"])
        patch = [
            *guard,
            {
                "op": "add",
                "path": data_path(key),
                "value": bundle_content(backends, secret_id, previous),
            },
            *restore,
        ]
        try:
            doc = kube(backends).patch(kind, namespace, name, patch, content_type=JSON_PATCH)
        except StepFailed as exc:
            if not exc.wrote_nothing:
                raise
            raise UndoRefused(
                f"Secret {namespace}/{name}: the undo was refused ({exc}); someone changed it "
                "since this step wrote it; left as it is"
            ) from None
        finally:
            del patch
        rv = (doc.get("metadata") or {}).get("resourceVersion")
        del doc
        restart_workloads(backends, list(op.undo.get("restart") or ()), token)
        return {"version": previous, "resourceVersion": rv}


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
