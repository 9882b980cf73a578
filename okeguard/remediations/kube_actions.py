"""The Kubernetes operations a plan can hold, and the rollout watch that verifies them.

``k8s.patch``   JSON Patch on one object; the plan's patch starts with a ``test`` of
                ``metadata.resourceVersion`` (and of every value it replaces); its ``undo`` is the
                inverse patch guarded by ``test`` s of the values it set, so a rollback never
                overwrites a change someone made after us. With ``params.rollout`` the rollout
                is watched and must become healthy within the configured timeout.
``k8s.create``  creates one object labelled with the request; undone by deleting it (uid-guarded).
``k8s.restart`` a rollout restart (``kubectl.kubernetes.io/restartedAt``); nothing to undo.
``k8s.delete``  deletes one object guarded by its uid and resourceVersion; irreversible.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jsonpatch

from okeguard.remediations.engine import (
    Backends,
    StepFailed,
    UndoRefused,
    VerifyFailed,
    action,
)
from okeguard.remediations.kube_writer import JSON_PATCH, KubeWriter
from okeguard.remediations.plan import Operation

ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# Container waiting reasons that will not heal by themselves.
BAD_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "RunContainerError",
    }
)
REQUEST_LABEL = "okeguard.io/request"
RV_PATH = "/metadata/resourceVersion"


def _writer(backends: Backends) -> KubeWriter:
    if backends.kube is None:
        raise StepFailed("this plan writes to Kubernetes, but no cluster connection was given")
    writer: KubeWriter = backends.kube
    return writer


def _where(op: Operation) -> tuple[str, str | None, str]:
    t = op.target
    return str(t["kind"]), t.get("namespace"), str(t["name"])


def patch_applies(doc: Mapping[str, Any], patch: list[dict[str, Any]]) -> bool:
    """Whether ``patch`` (its ``test`` ops included) would apply cleanly to ``doc``."""
    try:
        jsonpatch.apply_patch(copy.deepcopy(dict(doc)), patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        return False
    return True


def _exists(doc: Any, pointer: str) -> bool:
    try:
        jsonpatch.JsonPointer(pointer).resolve(doc)
    except (jsonpatch.JsonPointerException, KeyError, IndexError, TypeError):
        return False
    return True


def patch_not_landed(doc: Mapping[str, Any], forward: list[dict[str, Any]]) -> bool:
    """Whether ``doc`` shows no sign of the JSON Patch ``forward``: the object is still at the
    resourceVersion it ``test`` s, or every value it ``test`` s is still there and nothing it
    ``add`` s to an object exists yet. Anything else — partly ours, partly someone's — cannot be
    told apart from a patch that landed and was changed afterwards."""
    version = next(
        (o.get("value") for o in forward if o.get("op") == "test" and o.get("path") == RV_PATH),
        None,
    )
    if version is not None and (doc.get("metadata") or {}).get("resourceVersion") == version:
        return True
    tests = [o for o in forward if o.get("op") == "test" and o.get("path") != RV_PATH]
    if not patch_applies(doc, tests):
        return False
    return not any(
        o.get("op") == "add" and not str(o["path"]).endswith("/-") and _exists(doc, str(o["path"]))
        for o in forward
    )


def _selector(doc: Mapping[str, Any]) -> str | None:
    labels = ((doc.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def rollout_status(doc: Mapping[str, Any], generation: int) -> tuple[bool, str]:
    """(complete, text) of a Deployment/StatefulSet/DaemonSet rollout of ``generation``."""
    kind = doc.get("kind")
    spec, status = doc.get("spec") or {}, doc.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return False, f"waiting for the controller to observe generation {generation}"
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
    else:
        want = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas") or 0)
        available = int(status.get("availableReplicas") or status.get("readyReplicas") or 0)
        if kind == "StatefulSet" and status.get("updateRevision") != status.get("currentRevision"):
            updated = min(updated, want - 1)
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and condition.get("status") == "False":
            raise VerifyFailed(
                f"rollout failed: {condition.get('reason')}: {condition.get('message', '')}".strip()
            )
    text = f"{updated}/{want} updated, {available}/{want} available"
    return updated >= want and available >= want, text


def failing_pods(writer: KubeWriter, doc: Mapping[str, Any]) -> list[str]:
    """Pods of the workload whose containers are stuck (crash-looping, image pull failing…)."""
    selector = _selector(doc)
    meta = doc.get("metadata") or {}
    if selector is None:
        return []
    problems = []
    for pod in writer.list_objects("Pod", meta.get("namespace"), selector):
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
        for cs in statuses:
            reason = ((cs.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in BAD_WAITING_REASONS:
                name = (pod.get("metadata") or {}).get("name")
                problems.append(f"pod {name} container {cs.get('name')}: {reason}")
    return problems


def watch_rollout(
    backends: Backends, kind: str, namespace: str | None, name: str, generation: int
) -> str:
    """Wait until the rollout of ``generation`` is healthy; VerifyFailed when it is not in time."""
    writer = _writer(backends)

    def probe() -> tuple[bool, str]:
        doc = writer.get(kind, namespace, name)
        if doc is None:
            raise VerifyFailed(f"{kind} {namespace}/{name} disappeared during its rollout")
        doc.setdefault("kind", kind)
        done, text = rollout_status(doc, generation)
        bad = failing_pods(writer, doc)
        if bad:
            raise VerifyFailed(f"rollout unhealthy: {'; '.join(bad[:3])}")
        return done, text

    timeout = backends.settings.rollout_timeout_seconds
    return backends.wait_until(f"the rollout of {kind} {namespace}/{name}", probe, timeout)


@action("k8s.patch")
class PatchAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, name = _where(op)
        _writer(backends).patch(kind, namespace, name, list(op.params["patch"]), dry_run=True)

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        kind, namespace, name = _where(op)
        doc = _writer(backends).patch(kind, namespace, name, list(op.params["patch"]))
        meta = doc.get("metadata") or {}
        return {
            "resourceVersion": meta.get("resourceVersion"),
            "generation": meta.get("generation"),
        }

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        if not op.params.get("rollout"):
            return
        kind, namespace, name = _where(op)
        generation = record.get("generation")
        if generation is None:  # the record was lost in a crash: the live object tells
            doc = _writer(backends).get(kind, namespace, name) or {}
            generation = (doc.get("metadata") or {}).get("generation")
        watch_rollout(backends, kind, namespace, name, int(generation or 1))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        """True when the values the patch set are all still there (its undo applies); False when
        it never landed (or was undone, or the object is gone); :class:`UndoRefused` when it
        landed and was changed since, or the object no longer tells which: its undo would
        overwrite someone's change."""
        kind, namespace, name = _where(op)
        doc = _writer(backends).get(kind, namespace, name)
        if doc is None:
            return False  # gone: nothing this step set remains to undo
        if patch_applies(doc, list(op.undo["patch"])):
            return True
        if patch_not_landed(doc, list(op.params["patch"])):
            return False  # never landed, or already undone
        what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        raise UndoRefused(
            f"{what} was changed since this step patched it"
            + ("" if record is not None else " (or by someone else before it)")
            + ": the values it set are no longer all there, and undoing it would overwrite "
            "that change; left as it is"
        )

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        kind, namespace, name = _where(op)
        writer = _writer(backends)
        undo = list(op.undo["patch"])
        writer.patch(kind, namespace, name, undo, dry_run=True)
        doc = writer.patch(kind, namespace, name, undo, content_type=JSON_PATCH)
        return {"resourceVersion": (doc.get("metadata") or {}).get("resourceVersion")}


@action("k8s.create")
class CreateAction:
    """Creates one object labelled with its request; the undo deletes it, but only while it is
    still as created: what the step set (the body's fields, labels and annotations) all still
    there. Someone's later edit makes the undo :class:`UndoRefused`, never a silent delete."""

    def _body(self, op: Operation, backends: Backends) -> dict[str, Any]:
        body = copy.deepcopy(dict(op.params["body"]))
        labels = body.setdefault("metadata", {}).setdefault("labels", {})
        labels[REQUEST_LABEL] = str(backends.request_id)
        return body

    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, _ = _where(op)
        _writer(backends).create(kind, namespace, self._body(op, backends), dry_run=True)

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        kind, namespace, _ = _where(op)
        doc = _writer(backends).create(kind, namespace, self._body(op, backends))
        meta = doc.get("metadata") or {}
        return {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        kind, namespace, name = _where(op)
        doc = self._ours(op, backends)
        uid = record.get("uid")  # None when a crash lost the record: the label then tells
        if doc is None or (uid is not None and (doc.get("metadata") or {}).get("uid") != uid):
            raise VerifyFailed(f"{kind} {namespace}/{name} is not there after its creation")

    def _ours(self, op: Operation, backends: Backends) -> dict[str, Any] | None:
        kind, namespace, name = _where(op)
        doc = _writer(backends).get(kind, namespace, name)
        labels = ((doc or {}).get("metadata") or {}).get("labels") or {}
        return doc if labels.get(REQUEST_LABEL) == str(backends.request_id) else None

    def _as_created(self, op: Operation, backends: Backends) -> dict[str, Any] | None:
        """Our object when everything the step set is still there; None when it is not ours
        (never created, deleted, replaced); UndoRefused when it was changed since."""
        doc = self._ours(op, backends)
        if doc is None:
            return None
        body = self._body(op, backends)
        meta, ours = doc.get("metadata") or {}, body.get("metadata") or {}
        changed = [
            k for k in body if k not in ("apiVersion", "kind", "metadata") and doc.get(k) != body[k]
        ]
        for key in ("labels", "annotations"):
            live = meta.get(key) or {}
            changed += [f"{key}.{k}" for k, v in (ours.get(key) or {}).items() if live.get(k) != v]
        if changed:
            kind, namespace, name = _where(op)
            what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
            raise UndoRefused(
                f"{what} was changed since this step created it ({', '.join(changed)}): "
                "deleting it would discard that change; left as it is"
            )
        return doc

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        return self._as_created(op, backends) is not None

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        kind, namespace, name = _where(op)
        doc = self._as_created(op, backends)
        if doc is None:
            return {"deleted": False, "note": "not present (or not created by this request)"}
        meta = doc.get("metadata") or {}
        uid, version = meta.get("uid"), meta.get("resourceVersion")
        # guarded by what was just read: a change in between gets 409, and nothing is deleted
        deleted = _writer(backends).delete(kind, namespace, name, uid=uid, resource_version=version)
        return {"deleted": deleted, "uid": uid}


@action("k8s.restart")
class RestartAction:
    """``kubectl rollout restart``: a new template annotation, then the rollout is watched."""

    def _patch(self) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}
                }
            }
        }

    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, name = _where(op)
        _writer(backends).patch(
            kind,
            namespace,
            name,
            self._patch(),
            content_type="application/merge-patch+json",
            dry_run=True,
        )

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        kind, namespace, name = _where(op)
        doc = _writer(backends).patch(
            kind, namespace, name, self._patch(), content_type="application/merge-patch+json"
        )
        return {"generation": (doc.get("metadata") or {}).get("generation")}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        kind, namespace, name = _where(op)
        if kind in ROLLOUT_KINDS:
            watch_rollout(backends, kind, namespace, name, int(record.get("generation") or 1))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        return False  # a restart leaves nothing to undo

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return {"note": "a restart needs no undo"}


@action("k8s.delete")
class DeleteAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, name = _where(op)
        p = op.params
        _writer(backends).delete(
            kind,
            namespace,
            name,
            uid=p.get("uid"),
            resource_version=p.get("resourceVersion"),
            dry_run=True,
        )

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        kind, namespace, name = _where(op)
        p = op.params
        deleted = _writer(backends).delete(
            kind, namespace, name, uid=p.get("uid"), resource_version=p.get("resourceVersion")
        )
        return {"deleted": deleted}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        kind, namespace, name = _where(op)
        doc = _writer(backends).get(kind, namespace, name)
        if doc is not None and (doc.get("metadata") or {}).get("uid") == op.params.get("uid"):
            raise VerifyFailed(f"{kind} {namespace}/{name} still exists after its deletion")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        kind, namespace, name = _where(op)
        doc = _writer(backends).get(kind, namespace, name)
        return doc is None or (doc.get("metadata") or {}).get("uid") != op.params.get("uid")

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        raise StepFailed("a deleted object cannot be restored")
