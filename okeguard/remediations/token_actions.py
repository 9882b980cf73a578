"""The Kubernetes side of ``rotate-secret`` that needs no Vault access.

``k8s.restart-consumer``     a rollout restart whose pod-template annotation names the step that
                             made it, so after a crash a restart made can be told from one not made.
``k8s.create-token-secret``  ``k8s.create`` of a service-account token Secret, done once the token
                             controller filled ``data.token`` (never read into a result).
``k8s.await-consumers``      a gate before the old token's deletion: the new token exists, no
                             consumer still names the old Secret, their rollouts are healthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okeguard.remediations.engine import Backends, VerifyFailed, action
from okeguard.remediations.kube_actions import ROLLOUT_KINDS, CreateAction, watch_rollout
from okeguard.remediations.kube_writer import MERGE_PATCH
from okeguard.remediations.plan import Operation
from okeguard.remediations.secret_vault import RESTART_TOKEN, kube, now_text, where


# -- consumers and tokens ------------------------------------------------------------------------
@action("k8s.restart-consumer")
class RestartConsumerAction:
    def _patch(self, token: str) -> dict[str, Any]:
        annotations = {"kubectl.kubernetes.io/restartedAt": now_text(), RESTART_TOKEN: token}
        return {"spec": {"template": {"metadata": {"annotations": annotations}}}}

    def dry_run(self, op: Operation, backends: Backends) -> None:
        kind, namespace, name = where(op.target)
        kube(backends).patch(
            kind, namespace, name, self._patch("dry-run"), content_type=MERGE_PATCH, dry_run=True
        )

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        kind, namespace, name = where(op.target)
        doc = kube(backends).patch(
            kind, namespace, name, self._patch(token), content_type=MERGE_PATCH
        )
        return {"generation": (doc.get("metadata") or {}).get("generation")}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        kind, namespace, name = where(op.target)
        generation = record.get("generation")
        if generation is None:
            doc = kube(backends).get(kind, namespace, name) or {}
            generation = (doc.get("metadata") or {}).get("generation")
        watch_rollout(backends, kind, namespace, name, int(generation or 1))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        kind, namespace, name = where(op.target)
        doc = kube(backends).get(kind, namespace, name) or {}
        template = ((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}
        return bool((template.get("annotations") or {}).get(RESTART_TOKEN) == token)

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return {"note": "restarted again by the content undo"}


def _has_token(backends: Backends, ref: Mapping[str, Any]) -> bool:
    kind, namespace, name = where(ref)
    doc = kube(backends).get(kind, namespace, name) or {}
    return bool((doc.get("data") or {}).get("token"))


@action("k8s.create-token-secret")
class CreateTokenSecretAction(CreateAction):
    """``k8s.create`` that also waits for the token controller to fill ``data.token``."""

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        record = super().run(op, backends, token)

        def probe() -> tuple[bool, str]:
            done = _has_token(backends, op.target)
            return done, "token issued" if done else "waiting for the token controller"

        backends.wait_until(
            f"the token of Secret {op.target['name']}",
            probe,
            backends.settings.rollout_timeout_seconds,
        )
        return record

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        super().verify(op, backends, record)
        if not _has_token(backends, op.target):
            raise VerifyFailed(f"Secret {op.target['name']} has no token")


def _references(value: Any, name: str) -> bool:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("name", "secretName") and item == name:
                return True
            if _references(item, name):
                return True
    elif isinstance(value, list):
        return any(_references(item, name) for item in value)
    return False


@action("k8s.await-consumers")
class AwaitConsumersAction:
    """A gate before the old token's deletion: the new token exists, nothing reads the old."""

    def dry_run(self, op: Operation, backends: Backends) -> None:
        return None

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        if not _has_token(backends, op.target):
            raise VerifyFailed(f"Secret {op.target['name']} has no token")
        done: list[str] = []
        for ref in op.params.get("workloads") or ():
            kind, namespace, name = where(ref)
            doc = kube(backends).get(kind, namespace, name)
            if doc is None:
                continue
            if _references(doc.get("spec") or {}, str(op.params["old"])):
                raise VerifyFailed(f"{kind} {namespace}/{name} still reads {op.params['old']}")
            if kind in ROLLOUT_KINDS:
                generation = int((doc.get("metadata") or {}).get("generation") or 1)
                done.append(
                    f"{kind} {name}: {watch_rollout(backends, kind, namespace, name, generation)}"
                )
        return {"rollouts": done}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        return None

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        return True  # it changes nothing: always "done"

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return {"note": "a wait needs no undo"}
