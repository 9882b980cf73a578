"""Writes to the fake Kubernetes API: create, replace, patch and delete (with dry runs,
preconditions and generation bumps), and the errors they answer.

``Writes`` is a mixin of ``FakeKubeApi``: its methods run under the fake's lock.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from tests.fakes.kube.model import (
    GENERATION_KINDS,
    JSON_PATCH,
    MERGE_PATCH,
    ROLLOUT_KINDS,
    SA_NAME_ANNOTATION,
    SA_TOKEN_TYPE,
    STATUS_SUBRESOURCE_KINDS,
    STRATEGIC_MERGE_PATCH,
    _ApiError,
    _method_not_allowed,
    _now,
    _Result,
    _unsupported_media_type,
    status_body,
)
from tests.fakes.kube.patching import PatchError, apply_json_patch, merge_patch
from tests.fakes.kube.rollouts import _Rollout


class Writes:
    """Create, replace, patch and delete, as the API server's handlers do them."""

    # -- writes ----------------------------------------------------------------------------
    def _write(
        self,
        method: str,
        route: tuple[str, str | None, str | None],
        query: Mapping[str, list[str]],
        body: Any,
        content_type: str | None,
    ) -> _Result:
        kind, namespace, name = route
        dry = query.get("dryRun")
        if dry and dry != ["All"]:
            raise _ApiError(
                400,
                status_body(400, f"Invalid dry run option: {', '.join(dry)}", "BadRequest"),
            )
        dry_run = bool(dry)
        with self._lock:
            if name is None:
                if method != "POST":
                    raise _method_not_allowed()
                return self._create(kind, namespace, body, dry_run)
            if method == "POST":
                raise _method_not_allowed()
            index = self._find(kind, namespace, name)
            if index is None:
                raise self._not_found(kind, name)
            if method == "DELETE":
                return self._delete(kind, index, body, dry_run)
            old = self.objects[kind][index]
            if method == "PUT":
                new = self._replacement(kind, old, body)
            else:
                new = self._patched(kind, old, body, content_type)
            return self._commit(kind, index, new, dry_run)

    def _create(self, kind: str, namespace: str | None, body: Any, dry_run: bool) -> _Result:
        if namespace is None and not self._cluster_scoped(kind):
            raise _method_not_allowed()
        item = self._body_object(kind, body)
        meta = item["metadata"]
        if meta.get("namespace") not in (None, "", namespace) and namespace is not None:
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        name = meta.get("name") or (
            meta["generateName"] + self._random_name() if meta.get("generateName") else None
        )
        if not name:
            message = f'{kind} "" is invalid: metadata.name: Required value: name or generateName is required'
            raise _ApiError(422, status_body(422, message, "Invalid", {"kind": kind}))
        if self._find(kind, namespace, name) is not None:
            message = f'{self.resource(kind)} "{name}" already exists'
            raise _ApiError(
                409, status_body(409, message, "AlreadyExists", self._details(kind, name))
            )
        meta["name"] = name
        if namespace is None:
            meta.pop("namespace", None)
        else:
            meta["namespace"] = namespace
        for server_field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if kind in STATUS_SUBRESOURCE_KINDS:
            item.pop("status", None)
            if kind == "Pod":
                item["status"] = {"phase": "Pending"}
        if dry_run:
            return _Result(201, self._wire(kind, item))
        meta["resourceVersion"] = self._next_version()
        self.objects.setdefault(kind, []).append(item)
        annotations = meta.get("annotations") or {}
        if (
            kind == "Secret"
            and item.get("type") == SA_TOKEN_TYPE
            and SA_NAME_ANNOTATION in annotations
        ):
            self._pending_tokens.add((namespace, name))
        if kind in ROLLOUT_KINDS:
            self._start_rollout(kind, item, None)
        return _Result(201, self._wire(kind, item))

    def _replacement(self, kind: str, old: dict[str, Any], body: Any) -> dict[str, Any]:
        new = self._body_object(kind, body)
        self._check_identity(kind, old, new)
        version = new["metadata"].get("resourceVersion")
        if version and version != old["metadata"].get("resourceVersion"):
            raise self._modified(kind, old["metadata"]["name"])
        return new

    def _patched(
        self, kind: str, old: dict[str, Any], patch: Any, content_type: str | None
    ) -> dict[str, Any]:
        name = old["metadata"]["name"]
        doc = self._wire(kind, old)
        if content_type == JSON_PATCH:
            if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
                message = "json: cannot unmarshal into Go value of type jsonpatch.Patch"
                raise _ApiError(400, status_body(400, message, "BadRequest"))
            try:
                result = apply_json_patch(doc, patch)
            except PatchError as err:
                raise self._invalid(kind, name, err) from None
        elif content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if content_type == STRATEGIC_MERGE_PATCH and kind in self._custom_kinds:
                raise _unsupported_media_type(content_type)
            if not isinstance(patch, dict):
                raise _ApiError(
                    400, status_body(400, "the patch is not a JSON object", "BadRequest")
                )
            result = merge_patch(doc, patch)
        else:
            raise _unsupported_media_type(content_type)
        if not isinstance(result, dict) or not isinstance(result.get("metadata"), dict):
            raise self._invalid(kind, name, PatchError("the patched object has no metadata", ""))
        new = self._body_object(kind, result)
        self._check_identity(kind, old, new)
        version = new["metadata"].get("resourceVersion")
        if version is not None and version != old["metadata"].get("resourceVersion"):
            raise self._modified(kind, name)
        return new

    def _commit(self, kind: str, index: int, new: dict[str, Any], dry_run: bool) -> _Result:
        """Store ``new`` in place of the object at ``index``, as the server's update does."""
        old = self.objects[kind][index]
        meta, old_meta = new["metadata"], old["metadata"]
        for server_field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if server_field in old_meta:
                meta[server_field] = old_meta[server_field]
            else:
                meta.pop(server_field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if kind in STATUS_SUBRESOURCE_KINDS:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        generation_changed = self._generation_changes(kind, old, new)
        if generation_changed:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old or dry_run:  # a no-op update is not written, so keeps its version
            return _Result(200, self._wire(kind, new))
        meta["resourceVersion"] = self._next_version()
        self.objects[kind][index] = new
        if generation_changed and kind in ROLLOUT_KINDS:
            self._start_rollout(kind, new, old)
        return _Result(200, self._wire(kind, new))

    def _delete(self, kind: str, index: int, body: Any, dry_run: bool) -> _Result:
        item = self.objects[kind][index]
        meta = item["metadata"]
        name = meta["name"]
        preconditions = body.get("preconditions") if isinstance(body, dict) else None
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = (preconditions or {}).get(key)
            if wanted is not None and wanted != meta.get(key):
                message = (
                    f'Operation cannot be fulfilled on {self.resource(kind)} "{name}": '
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {meta.get(key)}"
                )
                raise _ApiError(
                    409, status_body(409, message, "Conflict", self._details(kind, name))
                )
        done = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**self._details(kind, name), "uid": meta.get("uid")},
        }
        if dry_run:
            return _Result(200, done)
        del self.objects[kind][index]
        self._next_version()
        self._pending_tokens.discard((meta.get("namespace"), name))
        state = self.rollouts.get((kind, meta.get("namespace"), name))
        if state is not None:  # a new object of that name starts afresh, with the behaviour kept
            self.rollouts[(kind, meta.get("namespace"), name)] = _Rollout(
                state.behaviour, state.after
            )
        return _Result(200, done)

    def _body_object(self, kind: str, body: Any) -> dict[str, Any]:
        """A write's object without kind/apiVersion; 400 when it is not an object of ``kind``."""
        if not isinstance(body, dict):
            message = "the body of the request was in an unknown format - accepted media types include: application/json"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        item = copy.deepcopy(body)
        body_kind, body_version = item.pop("kind", None), item.pop("apiVersion", None)
        if body_kind not in (None, kind) or body_version not in (None, self.api_version(kind)):
            message = (
                f"the API version in the data ({body_version}) does not match the expected "
                f"API version ({self.api_version(kind)})"
                if body_kind in (None, kind)
                else f"the kind in the data ({body_kind}) does not match the expected kind ({kind})"
            )
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        if not isinstance(item.get("metadata"), dict):
            item["metadata"] = {}
        return item

    def _check_identity(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        name, meta = old["metadata"]["name"], new["metadata"]
        if meta.get("name") not in (None, name):
            message = f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        if meta.get("namespace") not in (None, old["metadata"].get("namespace")):
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise _ApiError(400, status_body(400, message, "BadRequest"))

    def _generation_changes(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        if kind in GENERATION_KINDS:
            return bool(old.get("spec") != new.get("spec"))
        if kind in self._custom_kinds:
            ignored = ("metadata", "status")
            return {k: v for k, v in old.items() if k not in ignored} != {
                k: v for k, v in new.items() if k not in ignored
            }
        return False

    # -- errors ----------------------------------------------------------------------------
    def _details(self, kind: str, name: str) -> dict[str, Any]:
        group = self.api_version(kind).rpartition("/")[0]
        return {"name": name, "group": group, "kind": self.resource(kind).split(".")[0]}

    def _not_found(self, kind: str, name: str) -> _ApiError:
        message = f'{self.resource(kind)} "{name}" not found'
        return _ApiError(404, status_body(404, message, "NotFound", self._details(kind, name)))

    def _modified(self, kind: str, name: str) -> _ApiError:
        message = (
            f'Operation cannot be fulfilled on {self.resource(kind)} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again"
        )
        return _ApiError(409, status_body(409, message, "Conflict", self._details(kind, name)))

    def _invalid(self, kind: str, name: str, err: PatchError) -> _ApiError:
        details = {
            **self._details(kind, name),
            "causes": [{"reason": "FieldValueInvalid", "message": str(err), "field": err.path}],
        }
        message = f'{kind} "{name}" is invalid: {err}'
        return _ApiError(422, status_body(422, message, "Invalid", details))
