"""The Kubernetes mirrors of a Vault secret (operations of ``rotate-secret``).

``k8s.sync-secret-from-vault``   one data key of a Secret set to the Vault secret's current
                                 version (read as a bundle), with ``okeguard.io/vault-secret-version``,
                                 ``okeguard.io/rotated-at`` and ``okeguard.io/rotated-by``; undone by
                                 putting the Secret back exactly as it was: the previous version's
                                 content and those annotations at their earlier values (removed when
                                 they were absent), guarded by the resourceVersion the step left.
``k8s.refresh-external-secret``  ``force-sync`` annotation on an ExternalSecret; verified when its
                                 Secret holds the current version.

Secret content lives only in local variables for the span of one write or comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okeguard.remediations.engine import (
    Backends,
    StepFailed,
    UndoRefused,
    VerifyFailed,
    action,
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
    kube,
    mirror_matches,
    now_text,
    previous_version,
    refresh_external_secret,
    restart_workloads,
    vault_secret,
    wait_for_mirror,
    where,
)


@action("k8s.sync-secret-from-vault")
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


@action("k8s.refresh-external-secret")
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
