"""Builders of live-looking Kubernetes objects for the demo snapshot (used by ``generate.py``).

Everything is derived from one seeded RNG, so regenerating the demo gives the same bytes: uids,
resource versions, pod names and IPs come from the RNG, image digests are hashes of the image
name, and certificates use keys derived from the RNG with deterministic ECDSA signatures.

The objects carry what the API server would return: uids, creation timestamps, resource versions,
generations, the fields the API server defaults, owner references (Deployment -> ReplicaSet ->
Pod, StatefulSet/DaemonSet -> Pod, CronJob -> Job -> Pod), and status.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from certificates import Certificates

Doc = dict[str, Any]

# Characters Kubernetes uses for generated name suffixes and pod-template hashes.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def ts(when: datetime) -> str:
    """RFC 3339 in UTC, as the API server writes timestamps."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(text: str) -> datetime:
    """``2025-02-10T09:14:03`` (UTC) as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Image:
    """A container image as the registry and the nodes know it."""

    repo: str  # fully qualified, e.g. fra.ocir.io/shopco/cart or docker.io/library/redis
    tag: str
    size: int  # bytes, as Node.status.images[].sizeBytes reports it

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(f"{self.repo}:{self.tag}".encode()).hexdigest()

    @property
    def by_tag(self) -> str:
        return f"{self.repo}:{self.tag}"

    @property
    def by_digest(self) -> str:
        return f"{self.repo}@{self.digest}"

    @property
    def pinned(self) -> str:
        """Tag and digest, the way Renovate pins images: ``repo:tag@sha256:…``."""
        return f"{self.repo}:{self.tag}@{self.digest}"


@dataclass
class Node:
    name: str
    ip: str
    pod_cidr_base: str  # e.g. "10.244.0." for a /25 starting at .0
    first_host: int
    images: set[Image] = field(default_factory=set)
    next_ip: int = 0

    def allocate_pod_ip(self) -> str:
        self.next_ip += 1
        return f"{self.pod_cidr_base}{self.first_host + self.next_ip}"


# ------------------------------------------------------------------------------------------------
# the cluster being built


class Cluster:
    """Collects the documents of one cluster and hands out uids, versions and names."""

    def __init__(self, seed: int, created: datetime, captured_at: datetime) -> None:
        self.rng = random.Random(seed)
        self.created = created
        self.captured_at = captured_at
        self.docs: list[Doc] = []
        self.nodes: list[Node] = []
        self.images_by_ref: dict[str, Image] = {}
        self.automount: dict[tuple[str, str], bool | None] = {}
        self.certs = Certificates(self.rng)
        self.node_created = created
        self.last_pods: list[Doc] = []  # the pods of the last deployment() call
        self._rr = 0

    # --- identity -------------------------------------------------------------------------------

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def suffix(self, length: int = 5) -> str:
        return "".join(self.rng.choice(NAME_ALPHABET) for _ in range(length))

    def hex(self, length: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(length))

    def resource_version(self, updated: datetime) -> str:
        # etcd revisions grow with time; roughly one write every few seconds in this cluster.
        seconds = max(0, int((updated - self.created).total_seconds()))
        return str(41_000 + seconds // 6 + self.rng.randrange(6))

    def meta(
        self,
        name: str,
        namespace: str | None,
        created: datetime,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        owner: Doc | None = None,
        generation: int | None = None,
        updated: datetime | None = None,
    ) -> Doc:
        meta: Doc = {"name": name}
        if namespace is not None:
            meta["namespace"] = namespace
        meta["uid"] = self.uid()
        meta["resourceVersion"] = self.resource_version(updated or created)
        if generation is not None:
            meta["generation"] = generation
        meta["creationTimestamp"] = ts(created)
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        if owner is not None:
            meta["ownerReferences"] = [owner_ref(owner)]
        return meta

    def add(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        created: datetime,
        body: Doc | None = None,
        **meta_kwargs: Any,
    ) -> Doc:
        doc: Doc = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": self.meta(name, namespace, created, **meta_kwargs),
        }
        doc.update(body or {})
        self.docs.append(doc)
        return doc

    # --- images ---------------------------------------------------------------------------------

    def ref(self, image: Image, style: str) -> str:
        """The string a manifest uses for ``image``: ``pinned``, ``digest``, ``tag`` or ``short``
        (a Docker Hub short name such as ``redis:latest``)."""
        if style == "pinned":
            text = image.pinned
        elif style == "digest":
            text = image.by_digest
        elif style == "tag":
            text = image.by_tag
        elif style == "short":
            text = image.by_tag.removeprefix("docker.io/").removeprefix("library/")
        else:
            raise ValueError(style)
        self.images_by_ref[text] = image
        return text

    # --- namespaces and accounts ----------------------------------------------------------------

    def namespace(
        self, name: str, created: datetime, ca_pem: str, labels: dict[str, str] | None = None
    ) -> None:
        all_labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
        self.add(
            "v1",
            "Namespace",
            name,
            None,
            created,
            {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
            labels=all_labels,
        )
        self.service_account(name, "default", created)
        self.add(
            "v1",
            "ConfigMap",
            "kube-root-ca.crt",
            name,
            created,
            {"data": {"ca.crt": ca_pem}},
            annotations={
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
            },
        )

    def service_account(
        self,
        namespace: str,
        name: str,
        created: datetime,
        *,
        automount: bool | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        secrets: list[str] | None = None,
        image_pull_secrets: list[str] | None = None,
    ) -> None:
        body: Doc = {}
        if automount is not None:
            body["automountServiceAccountToken"] = automount
        if secrets:
            body["secrets"] = [{"name": s} for s in secrets]
        if image_pull_secrets:
            body["imagePullSecrets"] = [{"name": s} for s in image_pull_secrets]
        self.add(
            "v1",
            "ServiceAccount",
            name,
            namespace,
            created,
            body,
            labels=labels,
            annotations=annotations,
        )
        self.automount[(namespace, name)] = automount

    def secret(
        self,
        namespace: str,
        name: str,
        created: datetime,
        type_: str,
        data: dict[str, str | bytes],
        **meta_kwargs: Any,
    ) -> None:
        body = {"type": type_, "data": {k: b64(v) for k, v in data.items()}}
        self.add("v1", "Secret", name, namespace, created, body, **meta_kwargs)

    # --- pods -----------------------------------------------------------------------------------

    def add_node(self, name: str, cidr_base: str, first_host: int) -> Node:
        node = Node(name, name, cidr_base, first_host)
        self.nodes.append(node)
        return node

    def next_node(self) -> Node:
        node = self.nodes[self._rr % len(self.nodes)]
        self._rr += 1
        return node

    def pod(
        self,
        namespace: str,
        name: str,
        template: Doc,
        owner: Doc,
        node: Node,
        created: datetime,
        *,
        labels: dict[str, str] | None = None,
        finished: datetime | None = None,
        affinity: Doc | None = None,
    ) -> Doc:
        """A Pod stamped from ``template`` (already defaulted), scheduled on ``node``.

        ``finished`` makes it a completed Job pod (phase Succeeded).
        """
        spec = copy.deepcopy(template["spec"])
        spec.setdefault("enableServiceLinks", True)
        spec["nodeName"] = node.name
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        sa = spec.get("serviceAccountName") or "default"
        spec["serviceAccountName"] = sa
        spec["serviceAccount"] = sa
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = self.automount.get((namespace, sa))
        if automount is None or automount:
            volume = f"kube-api-access-{self.suffix()}"
            spec.setdefault("volumes", []).append(_api_access_volume(volume))
            for field_name in ("initContainers", "containers"):
                for container in spec.get(field_name) or ():
                    container.setdefault("volumeMounts", []).append(
                        {
                            "name": volume,
                            "readOnly": True,
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                        }
                    )
        if affinity is not None:
            spec["affinity"] = affinity
        tolerations = spec.setdefault("tolerations", [])
        for default in DEFAULT_TOLERATIONS:
            if not any(t.get("key") == default["key"] for t in tolerations):
                tolerations.append(dict(default))

        host_network = bool(spec.get("hostNetwork"))
        pod_ip = node.ip if host_network else node.allocate_pod_ip()
        started = created + timedelta(seconds=self.rng.randint(3, 40))
        status = self._pod_status(spec, node, pod_ip, created, started, finished)
        for field_name in ("initContainers", "containers"):
            for container in spec.get(field_name) or ():
                node.images.add(self.images_by_ref[container["image"]])
        meta_labels = {**(template["metadata"].get("labels") or {}), **(labels or {})}
        annotations = template["metadata"].get("annotations")
        return self.add(
            "v1",
            "Pod",
            name,
            namespace,
            created,
            {"spec": spec, "status": status},
            labels=meta_labels,
            annotations=annotations,
            owner=owner,
            updated=finished or started,
        )

    def _container_status(
        self, container: Doc, started: datetime, finished: datetime | None, init: bool
    ) -> Doc:
        image = self.images_by_ref[container["image"]]
        shown = image.by_digest if "@" in container["image"] else image.by_tag
        status: Doc = {
            "name": container["name"],
            "image": shown,
            "imageID": image.by_digest,
            "containerID": f"cri-o://{self.hex(64)}",
        }
        if init or finished is not None:
            end = finished or started + timedelta(seconds=self.rng.randint(1, 8))
            status.update(
                ready=False,
                restartCount=0,
                started=False,
                state={
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": ts(started),
                        "finishedAt": ts(end),
                        "containerID": status["containerID"],
                    }
                },
            )
        else:
            status.update(
                ready=True,
                restartCount=self.rng.choice([0, 0, 0, 0, 1]),
                started=True,
                state={"running": {"startedAt": ts(started + timedelta(seconds=9))}},
            )
        status["lastState"] = {}
        return status

    def _pod_status(
        self,
        spec: Doc,
        node: Node,
        pod_ip: str,
        created: datetime,
        started: datetime,
        finished: datetime | None,
    ) -> Doc:
        done = finished is not None
        ready_time = ts(finished if finished is not None else started + timedelta(seconds=12))
        conditions: list[Doc] = [
            {
                "type": "PodReadyToStartContainers",
                "status": "False" if done else "True",
                "lastTransitionTime": ready_time,
            },
            {
                "type": "Initialized",
                "status": "True",
                "lastTransitionTime": ts(started),
                **({"reason": "PodCompleted"} if done else {}),
            },
            {
                "type": "Ready",
                "status": "False" if done else "True",
                "lastTransitionTime": ready_time,
                **({"reason": "PodCompleted"} if done else {}),
            },
            {
                "type": "ContainersReady",
                "status": "False" if done else "True",
                "lastTransitionTime": ready_time,
                **({"reason": "PodCompleted"} if done else {}),
            },
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created)},
        ]
        for condition in conditions:
            condition.setdefault("lastProbeTime", None)
        status: Doc = {
            "phase": "Succeeded" if done else "Running",
            "conditions": conditions,
            "hostIP": node.ip,
            "hostIPs": [{"ip": node.ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": ts(created),
        }
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                self._container_status(c, started, None, init=True) for c in spec["initContainers"]
            ]
        status["containerStatuses"] = [
            self._container_status(c, started, finished, init=False) for c in spec["containers"]
        ]
        status["qosClass"] = _qos_class(spec["containers"])
        return status

    # --- nodes ----------------------------------------------------------------------------------

    def node_docs(self, template: Doc, infos: list[Doc], extra_images: list[Image]) -> None:
        """The Node objects, with ``status.images`` from the pods scheduled on each node."""
        for node, info in zip(self.nodes, infos, strict=True):
            images = sorted(node.images | set(extra_images), key=lambda i: (-i.size, i.repo))
            doc = copy.deepcopy(template)
            doc["metadata"]["labels"].update(info.pop("labels"))
            doc["metadata"]["annotations"].update(info.pop("annotations"))
            doc["spec"].update(info.pop("spec"))
            doc["status"]["addresses"] = [
                {"type": "InternalIP", "address": node.ip},
                {"type": "Hostname", "address": doc["metadata"]["labels"]["hostname"]},
            ]
            doc["status"]["nodeInfo"].update(info.pop("nodeInfo"))
            heartbeat = info.pop("heartbeat")
            for condition in doc["status"]["conditions"]:
                condition["lastHeartbeatTime"] = heartbeat
                condition["lastTransitionTime"] = ts(self.node_created + timedelta(seconds=41))
            doc["status"]["images"] = [
                {"names": [image.by_digest, image.by_tag], "sizeBytes": image.size}
                for image in images
            ]
            self.add(
                "v1",
                "Node",
                node.name,
                None,
                self.node_created,
                {"spec": doc["spec"], "status": doc["status"]},
                labels=doc["metadata"]["labels"],
                annotations=doc["metadata"]["annotations"],
                updated=self.captured_at - timedelta(seconds=self.rng.randint(5, 50)),
            )


def owner_ref(owner: Doc) -> Doc:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _api_access_volume(name: str) -> Doc:
    return {
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def _qos_class(containers: list[Doc]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(
        r.get("limits") and (r.get("requests") or r["limits"]) == r["limits"] for r in resources
    ):
        return "Guaranteed"
    return "Burstable"


def pod_template_defaults(template: Doc, restart_policy: str = "Always") -> Doc:
    """The template with the fields the API server defaults, as ``kubectl get -o json`` shows it."""
    template = copy.deepcopy(template)
    template.setdefault("metadata", {}).setdefault("labels", {})
    spec = template["spec"]
    spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for field_name in ("initContainers", "containers"):
        for container in spec.get(field_name) or ():
            latest = (
                container["image"].endswith(":latest")
                or ":" not in container["image"].rsplit("/", 1)[-1]
            )
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            for port in container.get("ports") or ():
                port.setdefault("protocol", "TCP")
    for volume in spec.get("volumes") or ():
        for key in ("secret", "configMap"):
            if key in volume:
                volume[key].setdefault("defaultMode", 420)
        if "emptyDir" in volume:
            volume["emptyDir"] = volume["emptyDir"] or {}
    return template
