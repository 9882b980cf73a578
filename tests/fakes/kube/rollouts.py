"""The simulated controllers of the fake Kubernetes API: workload rollouts (status converging
by behaviour), the pods of simulated workloads, and the service-account token controller.

``RolloutSimulation`` is a mixin of ``FakeKubeApi``: its methods use the fake's store and lock.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube.model import (
    _SAFE_CHARS,
    FAKE_CA_CRT,
    ROLLOUT_BEHAVIOURS,
    ROLLOUT_KINDS,
    _b64,
    _now,
)


@dataclass
class _Rollout:
    """What the simulated controller knows about one workload."""

    behaviour: str = "healthy"
    after: int = 0
    pending: bool = False  # a generation change not yet fully reflected in status
    reads: int = 0  # reads since the generation changed
    outcome: str | None = None  # the behaviour of the last observed rollout
    stable_template: dict[str, Any] | None = None  # what the running, healthy pods run
    failing_template: dict[str, Any] | None = None  # the new template that does not come up


class RolloutSimulation:
    """Rollouts, synthesized pods and the token controller, as the client sees them."""

    # -- rollouts --------------------------------------------------------------------------
    def set_rollout(
        self, kind: str, namespace: str, name: str, behaviour: str = "healthy", after: int = 0
    ) -> None:
        """Decide how the next rollouts of a Deployment, StatefulSet or DaemonSet go.

        ``behaviour``: ``healthy`` (every replica updated and ready), ``crashloop`` or
        ``image-pull`` (one replica of the new template waits in CrashLoopBackOff /
        ImagePullBackOff, the rest keep the old template), ``stuck`` (like those, the new pod
        Pending Unschedulable; a Deployment's Progressing condition turns False with
        ProgressDeadlineExceeded). ``after``: the reads of the object that still show the old
        status (for ``stuck``: the reads before the deadline passes). The workload's pods are
        synthesized from now on.
        """
        if kind not in ROLLOUT_KINDS:
            raise ValueError(f"rollouts are simulated for {sorted(ROLLOUT_KINDS)}, not {kind}")
        if behaviour not in ROLLOUT_BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {ROLLOUT_BEHAVIOURS}, not {behaviour!r}")
        with self._lock:
            state = self.rollouts.setdefault((kind, namespace, name), _Rollout())
            state.behaviour, state.after = behaviour, after
            index = self._find(kind, namespace, name)
            if index is not None and state.stable_template is None:
                state.stable_template = _template(self.objects[kind][index])

    def hold_rollouts(self, kind: str, namespace: str, name: str, held: bool = True) -> None:
        """Pause (or, with ``held=False``, resume) the controller of one workload: while held,
        a rollout of it stays in progress however often it is read."""
        with self._lock:
            key = (kind, namespace, name)
            if held:
                self.held_rollouts.add(key)
            else:
                self.held_rollouts.discard(key)

    # -- controllers acting on reads -------------------------------------------------------
    def _observe(self, kind: str, item: dict[str, Any]) -> None:
        """Let the simulated controllers act on an object about to be read."""
        meta = item["metadata"]
        key = (meta.get("namespace"), meta.get("name"))
        if kind == "Secret" and key in self._pending_tokens:
            self._pending_tokens.discard(key)
            token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ." + "".join(
                self._rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                for _ in range(64)
            )
            data = item.get("data") or {}
            data["token"] = _b64(token)
            data["ca.crt"] = _b64(FAKE_CA_CRT)
            data["namespace"] = _b64(str(meta.get("namespace")))
            item["data"] = data
            meta["resourceVersion"] = self._next_version()
        if kind in ROLLOUT_KINDS:
            self._advance_rollout(kind, item)

    # -- rollout simulation ----------------------------------------------------------------
    def _start_rollout(self, kind: str, item: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = item["metadata"]
        state = self.rollouts.setdefault((kind, meta.get("namespace"), meta["name"]), _Rollout())
        if state.stable_template is None and old is not None:
            state.stable_template = _template(old)
        state.pending, state.reads = True, 0

    def _advance_rollout(self, kind: str, item: dict[str, Any]) -> None:
        """Count a read of a workload; move its status on once the rollout is due."""
        meta = item["metadata"]
        key = (kind, meta.get("namespace"), meta["name"])
        state = self.rollouts.get(key)
        if state is None or not state.pending or key in self.held_rollouts:
            return
        state.reads += 1
        due = state.reads > state.after
        if state.behaviour != "stuck" and not due:
            return  # the controller has not got round to it yet
        # a stuck rollout is observed at once; only its deadline waits for ``after`` reads
        state.outcome = state.behaviour
        if state.behaviour == "healthy":
            state.stable_template, state.failing_template = _template(item), None
        else:
            state.failing_template = _template(item)
        status = self._rollout_status(kind, item, state, deadline_exceeded=due)
        if item.get("status") != status:
            item["status"] = status
            meta["resourceVersion"] = self._next_version()
        state.pending = not due

    def _replicas(self, kind: str, item: Mapping[str, Any]) -> int:
        if kind == "DaemonSet":
            return self.daemonset_nodes
        replicas = (item.get("spec") or {}).get("replicas", 1)
        return int(replicas) if replicas is not None else 1

    def _rollout_status(
        self, kind: str, item: dict[str, Any], state: _Rollout, deadline_exceeded: bool
    ) -> dict[str, Any]:
        """The status the controller reports for the rollout of ``item``."""
        meta = item["metadata"]
        name, generation = meta["name"], meta.get("generation", 1)
        total = self._replicas(kind, item)
        healthy = state.outcome == "healthy"
        updated = total if healthy else min(1, total)
        ready = total if healthy else max(total - 1, 0)
        new_hash = _hash(_template(item))
        old_hash = _hash(state.stable_template) if state.stable_template is not None else new_hash
        if kind == "DaemonSet":
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "desiredNumberScheduled": total,
                "currentNumberScheduled": total,
                "updatedNumberScheduled": updated,
                "numberReady": ready,
                "numberAvailable": ready,
                "numberMisscheduled": 0,
            }
            if total > ready:
                status["numberUnavailable"] = total - ready
            return status
        if kind == "StatefulSet":
            return {
                "observedGeneration": generation,
                "replicas": total,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": total if healthy else ready,
                "updatedReplicas": updated,
                "currentRevision": f"{name}-{new_hash if healthy else old_hash}",
                "updateRevision": f"{name}-{new_hash}",
                "collisionCount": 0,
            }
        status = {
            "observedGeneration": generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if total > ready:
            status["unavailableReplicas"] = total - ready
        replica_set = f"{name}-{new_hash}"
        if healthy:
            progressing = ("True", "NewReplicaSetAvailable", "has successfully progressed.")
        elif state.outcome == "stuck" and deadline_exceeded:
            progressing = ("False", "ProgressDeadlineExceeded", "has timed out progressing.")
        else:
            progressing = ("True", "ReplicaSetUpdated", "is progressing.")
        minimum = total - total * 25 // 100  # maxUnavailable defaults to 25%, rounded down
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= minimum
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        )
        previous = {c.get("type"): c for c in (item.get("status") or {}).get("conditions") or ()}
        status["conditions"] = [
            _condition(previous.get("Available"), "Available", *available),
            _condition(
                previous.get("Progressing"),
                "Progressing",
                progressing[0],
                progressing[1],
                f'ReplicaSet "{replica_set}" {progressing[2]}',
            ),
        ]
        return status

    def _synthesized_pods(self, namespace: str | None) -> list[dict[str, Any]]:
        """The pods the simulated workloads (in ``namespace``, or all) run now."""
        pods: list[dict[str, Any]] = []
        for (kind, ns, name), state in self.rollouts.items():
            if namespace is not None and ns != namespace:
                continue
            index = self._find(kind, ns, name)
            if index is not None:
                pods += self._workload_pods(kind, self.objects[kind][index], state)
        return pods

    def _workload_pods(
        self, kind: str, workload: dict[str, Any], state: _Rollout
    ) -> list[dict[str, Any]]:
        total = self._replicas(kind, workload)
        plan: list[tuple[dict[str, Any], str]] = []
        if state.outcome not in (None, "healthy") and state.failing_template is not None:
            if state.stable_template is not None:
                plan = [(state.stable_template, "running")] * max(total - 1, 0)
            plan.append((state.failing_template, state.outcome or "running"))
        elif state.stable_template is not None:
            plan = [(state.stable_template, "running")] * total
        return [self._pod(kind, workload, t, i, how) for i, (t, how) in enumerate(plan)]

    def _pod(
        self, kind: str, workload: dict[str, Any], template: dict[str, Any], index: int, how: str
    ) -> dict[str, Any]:
        """One pod of ``workload`` run from ``template``; ``how``: running or a behaviour."""
        meta = workload["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        template_meta = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        template_hash = _hash(template)
        selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = {**selector, **(template_meta.get("labels") or {})}
        owner_kind, owner_name, owner_uid = kind, name, meta.get("uid")
        if kind == "Deployment":
            owner_kind, owner_name = "ReplicaSet", f"{name}-{template_hash}"
            owner_uid = self._uid("ReplicaSet", namespace, owner_name)
            pod_name = f"{owner_name}-{_hash([owner_name, index], 5)}"
            labels["pod-template-hash"] = template_hash
        elif kind == "StatefulSet":
            pod_name = f"{name}-{index}"
            labels["controller-revision-hash"] = f"{name}-{template_hash}"
            labels["statefulset.kubernetes.io/pod-name"] = pod_name
        else:
            pod_name = f"{name}-{_hash([name, template_hash, index], 5)}"
            labels["controller-revision-hash"] = template_hash
        started = meta.get("creationTimestamp", "2026-01-01T00:00:00Z")
        pod_meta: dict[str, Any] = {
            "name": pod_name,
            "namespace": namespace,
            "uid": self._uid("Pod", namespace, pod_name, template_hash),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": started,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner_kind,
                    "name": owner_name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if template_meta.get("annotations"):
            pod_meta["annotations"] = dict(template_meta["annotations"])
        if how != "stuck":
            spec["nodeName"] = f"node-{index % max(self.daemonset_nodes, 1)}"
        return {
            "metadata": pod_meta,
            "spec": spec,
            "status": _pod_status(spec, pod_name, how, started),
        }


def _hash(value: Any, length: int = 10) -> str:
    """A stable name suffix for ``value``, in the alphabet Kubernetes uses for generated names."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return "".join(_SAFE_CHARS[b % len(_SAFE_CHARS)] for b in digest[:length])


def _template(workload: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(((workload.get("spec") or {}).get("template")) or {})


def _condition(
    previous: Mapping[str, Any] | None, kind: str, status: str, reason: str, message: str
) -> dict[str, Any]:
    """A Deployment condition; times are kept while status (and reason) stay the same."""
    now = _now()
    previous = previous or {}
    same_status = previous.get("status") == status
    same_reason = same_status and previous.get("reason") == reason
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": previous.get("lastUpdateTime", now) if same_reason else now,
        "lastTransitionTime": previous.get("lastTransitionTime", now) if same_status else now,
        "reason": reason,
        "message": message,
    }


def _pod_status(spec: Mapping[str, Any], pod_name: str, how: str, started: str) -> dict[str, Any]:
    """The status of a synthesized pod: ``how`` is running, crashloop, image-pull or stuck."""
    if how == "stuck":
        return {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                    "lastTransitionTime": started,
                }
            ],
        }
    statuses = [
        {
            "name": c.get("name"),
            "image": c.get("image"),
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }
        for c in spec.get("containers") or ()
    ]
    if how != "running" and statuses:
        first = statuses[0]
        first.update(ready=False, started=False)
        if how == "crashloop":
            message = f"back-off 1m20s restarting failed container={first['name']} pod={pod_name}"
            first["restartCount"] = 4
            first["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            first["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": started,
                }
            }
        else:
            message = f'Back-off pulling image "{first["image"]}"'
            first["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
    ready = "True" if how == "running" else "False"
    conditions = [
        {"type": t, "status": s, "lastTransitionTime": started}
        for t, s in (
            ("Initialized", "True"),
            ("Ready", ready),
            ("ContainersReady", ready),
            ("PodScheduled", "True"),
        )
    ]
    for condition in conditions[1:3]:
        if condition["status"] == "False":
            condition["reason"] = "ContainersNotReady"
    return {
        "phase": "Pending" if how == "image-pull" else "Running",
        "qosClass": "BestEffort",
        "startTime": started,
        "conditions": conditions,
        "containerStatuses": statuses,
    }
