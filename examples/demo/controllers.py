"""Workload controllers and the objects they own, as the API server returns them.

``deployment`` makes the Deployment, one ReplicaSet per rollout and the pods of the newest;
``statefulset`` and ``daemonset`` make their pods directly; ``job`` makes a completed Job (owned by
a CronJob when given) and its pod. Every owned object carries a ``controller: true`` owner reference.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

from builders import Cluster, Doc, pod_template_defaults, ts


def deployment(
    c: Cluster,
    namespace: str,
    name: str,
    template: Doc,
    *,
    created: datetime,
    rollouts: list[datetime],
    replicas: int,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> Doc:
    """A Deployment, one ReplicaSet per rollout (older ones scaled to 0), and its pods."""
    template = pod_template_defaults(template)
    generation = len(rollouts) + c.rng.randint(0, 2)
    selector = {
        "matchLabels": {
            k: v
            for k, v in template["metadata"]["labels"].items()
            if k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app", "k8s-app")
        }
    }
    revision = len(rollouts)
    hashes = [c.suffix(c.rng.choice([9, 10])) for _ in rollouts]
    deploy = c.add(
        "apps/v1",
        "Deployment",
        name,
        namespace,
        created,
        {
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "template": template,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "lastUpdateTime": ts(rollouts[-1] + timedelta(minutes=1)),
                        "lastTransitionTime": ts(rollouts[-1] + timedelta(minutes=1)),
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "lastUpdateTime": ts(rollouts[-1] + timedelta(minutes=2)),
                        "lastTransitionTime": ts(created),
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{name}-{hashes[-1]}" has successfully progressed.',
                    },
                ],
            },
        },
        labels=labels,
        annotations={"deployment.kubernetes.io/revision": str(revision), **(annotations or {})},
        generation=generation,
        updated=rollouts[-1] + timedelta(minutes=2),
    )
    for number, (rolled, pod_hash) in enumerate(zip(rollouts, hashes, strict=True), start=1):
        current = number == revision
        rs_name = f"{name}-{pod_hash}"
        rs_template = copy.deepcopy(template)
        rs_template["metadata"]["labels"]["pod-template-hash"] = pod_hash
        count = replicas if current else 0
        rs = c.add(
            "apps/v1",
            "ReplicaSet",
            rs_name,
            namespace,
            rolled,
            {
                "spec": {
                    "replicas": count,
                    "selector": {
                        "matchLabels": {
                            **selector["matchLabels"],
                            "pod-template-hash": pod_hash,
                        }
                    },
                    "template": rs_template,
                },
                "status": {
                    "replicas": count,
                    "fullyLabeledReplicas": count,
                    "readyReplicas": count,
                    "availableReplicas": count,
                    "observedGeneration": 1 if current else 2,
                }
                if count
                else {"replicas": 0, "observedGeneration": 2},
            },
            labels={**labels, **rs_template["metadata"]["labels"]},
            annotations={
                "deployment.kubernetes.io/desired-replicas": str(replicas),
                "deployment.kubernetes.io/max-replicas": str(replicas + max(1, replicas // 4)),
                "deployment.kubernetes.io/revision": str(number),
            },
            owner=deploy,
            generation=1 if current else 2,
            updated=rolled + timedelta(minutes=3),
        )
        if current:
            c.last_pods = []
            for index in range(replicas):
                node = c.next_node()
                started = max(rolled, c.node_created) + timedelta(
                    minutes=2 + index, seconds=c.rng.randint(0, 59)
                )
                pod = c.pod(namespace, f"{rs_name}-{c.suffix()}", rs_template, rs, node, started)
                c.last_pods.append(pod)
    return deploy


def statefulset(
    c: Cluster,
    namespace: str,
    name: str,
    template: Doc,
    *,
    created: datetime,
    replicas: int,
    service_name: str,
    labels: dict[str, str],
    volume_claims: list[Doc],
    annotations: dict[str, str] | None = None,
) -> Doc:
    template = pod_template_defaults(template)
    revision = f"{name}-{c.suffix(10)}"
    selector = {
        "matchLabels": {
            k: v
            for k, v in template["metadata"]["labels"].items()
            if k.startswith("app.kubernetes.io/")
        }
    }
    sts = c.add(
        "apps/v1",
        "StatefulSet",
        name,
        namespace,
        created,
        {
            "spec": {
                "replicas": replicas,
                "selector": selector,
                "serviceName": service_name,
                "template": template,
                "volumeClaimTemplates": volume_claims,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "revisionHistoryLimit": 10,
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Retain",
                    "whenScaled": "Retain",
                },
            },
            "status": {
                "observedGeneration": 3,
                "replicas": replicas,
                "readyReplicas": replicas,
                "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        },
        labels=labels,
        annotations=annotations,
        generation=3,
    )
    for index in range(replicas):
        pod_name = f"{name}-{index}"
        c.pod(
            namespace,
            pod_name,
            template,
            sts,
            c.next_node(),
            c.node_created + timedelta(minutes=6 + index),
            labels={
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(index),
            },
        )
    return sts


def daemonset(
    c: Cluster,
    namespace: str,
    name: str,
    template: Doc,
    *,
    created: datetime,
    labels: dict[str, str],
    generation: int = 1,
    annotations: dict[str, str] | None = None,
) -> Doc:
    template = pod_template_defaults(template)
    count = len(c.nodes)
    revision_hash = c.suffix(c.rng.choice([9, 10]))
    selector = {
        "matchLabels": {
            k: v
            for k, v in template["metadata"]["labels"].items()
            if k in ("app", "k8s-app", "app.kubernetes.io/name")
        }
    }
    ds = c.add(
        "apps/v1",
        "DaemonSet",
        name,
        namespace,
        created,
        {
            "spec": {
                "selector": selector,
                "template": template,
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
                },
                "revisionHistoryLimit": 10,
            },
            "status": {
                "currentNumberScheduled": count,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": count,
                "numberReady": count,
                "observedGeneration": generation,
                "updatedNumberScheduled": count,
                "numberAvailable": count,
            },
        },
        labels=labels,
        annotations={
            "deprecated.daemonset.template.generation": str(generation),
            **(annotations or {}),
        },
        generation=generation,
    )
    for node in c.nodes:
        affinity = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {
                                    "key": "metadata.name",
                                    "operator": "In",
                                    "values": [node.name],
                                }
                            ]
                        }
                    ]
                }
            }
        }
        c.pod(
            namespace,
            f"{name}-{c.suffix()}",
            template,
            ds,
            node,
            c.node_created + timedelta(seconds=c.rng.randint(20, 90)),
            labels={
                "controller-revision-hash": revision_hash,
                "pod-template-generation": str(generation),
            },
            affinity=affinity,
        )
    return ds


def job(
    c: Cluster,
    namespace: str,
    name: str,
    template: Doc,
    *,
    created: datetime,
    duration: timedelta,
    labels: dict[str, str] | None = None,
    owner: Doc | None = None,
    annotations: dict[str, str] | None = None,
) -> Doc:
    """A completed Job (owned by ``owner``, a CronJob, when given) and its one pod."""
    template = pod_template_defaults(template, restart_policy="Never")
    controller_uid = c.uid()
    job_labels = {
        "batch.kubernetes.io/controller-uid": controller_uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": controller_uid,
        "job-name": name,
    }
    template["metadata"]["labels"] = {
        **job_labels,
        **(template["metadata"].get("labels") or {}),
    }
    finished = created + duration
    job = c.add(
        "batch/v1",
        "Job",
        name,
        namespace,
        created,
        {
            "spec": {
                "parallelism": 1,
                "completions": 1,
                "backoffLimit": 2,
                "completionMode": "NonIndexed",
                "suspend": False,
                "podReplacementPolicy": "TerminatingOrFailed",
                "manualSelector": False,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": controller_uid}},
                "template": template,
            },
            "status": {
                "startTime": ts(created),
                "completionTime": ts(finished),
                "succeeded": 1,
                "terminating": 0,
                "ready": 0,
                "uncountedTerminatedPods": {},
                "conditions": [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "lastProbeTime": ts(finished),
                        "lastTransitionTime": ts(finished),
                    },
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastProbeTime": ts(finished),
                        "lastTransitionTime": ts(finished),
                    },
                ],
            },
        },
        labels={**job_labels, **(labels or {})},
        annotations=annotations,
        owner=owner,
        generation=1,
        updated=finished,
    )
    # Job pods carry the same uid as the Job in their labels.
    job["metadata"]["uid"] = controller_uid
    c.pod(
        namespace,
        f"{name}-{c.suffix()}",
        template,
        job,
        c.next_node(),
        created + timedelta(seconds=1),
        finished=finished,
    )
    return job
