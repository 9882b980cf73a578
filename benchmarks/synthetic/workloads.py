"""Workloads with realistic pod templates: containers, env, probes, volumes, security contexts."""

from __future__ import annotations

from synthetic.base import NODES, PLAIN_ENV, SECURITY_PROFILES, Doc, Gen


def _security(g: Gen, profile: str) -> tuple[Doc, Doc]:
    """(pod securityContext, container securityContext) for a security profile."""
    if profile == "hardened":
        uid = g.rng.choice((1000, 10001, 65532))
        pod = {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        return pod, {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    if profile == "partial":
        return {"runAsNonRoot": True}, {"allowPrivilegeEscalation": False}
    if profile == "unset":
        return {}, {}
    container: Doc = {"runAsUser": 0}
    if g.rng.random() < 0.3:
        container["privileged"] = True
    if g.rng.random() < 0.5:
        container["capabilities"] = {
            "add": g.rng.sample(["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "NET_BIND_SERVICE"], 2)
        }
    return {}, container


def _env(g: Gen, app: str) -> list[Doc]:
    env: list[Doc] = [
        {"name": name, "value": g.token(g.rng.randrange(4, 24))}
        for name in g.rng.sample(PLAIN_ENV, g.rng.randrange(2, 7))
    ]
    env.append(
        {
            "name": "POD_NAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        }
    )
    for key in g.rng.sample(
        ["DB_PASSWORD", "API_TOKEN", "REDIS_PASSWORD", "JWT_SIGNING_KEY"], g.rng.randrange(0, 3)
    ):
        env.append(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets", "key": key.lower()}},
            }
        )
    env.append(
        {
            "name": "APP_CONFIG",
            "valueFrom": {"configMapKeyRef": {"name": f"{app}-config", "key": "app.properties"}},
        }
    )
    roll = g.rng.random()
    if roll < 0.03:  # literal credential-like values that the scan must flag
        env.append({"name": "STRIPE_API_KEY", "value": "sk_live_" + g.token(24)})
    elif roll < 0.04:
        env.append({"name": "AWS_ACCESS_KEY_ID", "value": "AKIA" + g.token(16).upper()})
    elif roll < 0.042:
        env.append({"name": "SIGNING_CERT", "value": g.fake_private_key()})
    return env


def _probe(g: Gen, port: int) -> Doc:
    return {
        "httpGet": {
            "path": g.rng.choice(("/healthz", "/ready", "/livez")),
            "port": port,
            "scheme": "HTTP",
        },
        "initialDelaySeconds": g.rng.choice((0, 5, 10)),
        "periodSeconds": 10,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def _container(
    g: Gen, name: str, app: str, profile: str, mounts: list[Doc], *, init: bool = False
) -> Doc:
    port = g.rng.choice((8080, 8443, 9090, 3000))
    cpu = g.rng.choice((50, 100, 250, 500))
    memory = g.rng.choice((64, 128, 256, 512, 1024))
    container: Doc = {
        "name": name,
        "image": g.image_ref(),
        "imagePullPolicy": g.rng.choice(("IfNotPresent", "Always")),
        "env": _env(g, app),
        "resources": {
            "requests": {"cpu": f"{cpu}m", "memory": f"{memory}Mi"},
            "limits": {"cpu": f"{cpu * 2}m", "memory": f"{memory * 2}Mi"},
        },
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if init:
        container["command"] = ["/bin/sh", "-c", f"/opt/{app}/migrate --wait"]
    else:
        container["args"] = [f"--port={port}", "--log-format=json"]
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        container["livenessProbe"] = _probe(g, port)
        container["readinessProbe"] = _probe(g, port)
    container["securityContext"] = _security(g, profile)[1]
    return container


def _volumes(g: Gen, app: str, kind: str) -> tuple[list[Doc], list[Doc]]:
    """(volumes, volumeMounts of the main container)."""
    volumes: list[Doc] = [
        {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if g.rng.random() < 0.5:
        volumes.append({"name": "tls", "secret": {"secretName": f"{app}-tls", "defaultMode": 420}})
    if g.rng.random() < (0.6 if kind == "DaemonSet" else 0.03):
        path = g.rng.choice(
            (
                "/var/log",
                "/var/lib/docker/containers",
                "/var/run/docker.sock",
                "/proc",
                "/etc/ssl/certs",
                "/",
            )
        )
        volumes.append({"name": "host", "hostPath": {"path": path, "type": ""}})
    mounts = [
        {"name": v["name"], "mountPath": f"/mnt/{v['name']}", "readOnly": v["name"] != "tmp"}
        for v in volumes
    ]
    return volumes, mounts


def pod_template(g: Gen, app: str, labels: Doc, kind: str) -> Doc:
    profile = g.pick(SECURITY_PROFILES)
    volumes, mounts = _volumes(g, app, kind)
    count = g.rng.choices((1, 2, 3), (60, 30, 10))[0]
    names = ["app", "sidecar", "metrics"][:count]
    spec: Doc = {
        "containers": [
            _container(g, name, app, profile, mounts if i == 0 else mounts[:1])
            for i, name in enumerate(names)
        ],
        "volumes": volumes,
        "restartPolicy": "OnFailure" if kind in ("Job", "CronJob") else "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler",
        "securityContext": _security(g, profile)[0],
    }
    if g.rng.random() < 0.25:
        spec["initContainers"] = [_container(g, "migrate", app, profile, mounts[:1], init=True)]
    if g.rng.random() < 0.6:
        spec["serviceAccountName"] = spec["serviceAccount"] = app
    if profile == "hardened" and g.rng.random() < 0.5:
        spec["automountServiceAccountToken"] = False
    if profile == "dangerous" or kind == "DaemonSet":
        for key in g.rng.sample(["hostNetwork", "hostPID", "hostIPC"], g.rng.randrange(0, 3)):
            spec[key] = True
    if g.rng.random() < 0.2:
        spec["nodeSelector"] = {
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
        }
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}
    if g.rng.random() < 0.01:
        annotations |= {
            "okeguard.io/exempt": "k8s.run-as-root,k8s.writable-root-fs",
            "okeguard.io/exempt-reason": "vendor image, tracked in SEC-412",
        }
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def workload(g: Gen, kind: str, namespace: str, name: str) -> Doc:
    labels = {"app": name, "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": namespace}
    template = pod_template(g, name, dict(labels), kind)
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    meta = g.metadata(name, namespace, labels=labels, generation=g.rng.randrange(1, 40))
    replicas = g.rng.choice((1, 2, 3, 3, 5))
    spec: Doc
    status: Doc
    if kind == "Deployment":
        meta["annotations"] = {"deployment.kubernetes.io/revision": str(meta["generation"])}
        spec = {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        }
        status = {
            "observedGeneration": meta["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
        }
    elif kind == "StatefulSet":
        claim = {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "oci-bv",
                "resources": {"requests": {"storage": "50Gi"}},
            },
        }
        spec = {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "volumeClaimTemplates": [claim],
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
        }
        status = {
            "observedGeneration": meta["generation"],
            "replicas": replicas,
            "readyReplicas": replicas,
            "currentRevision": f"{name}-{g.suffix(10)}",
        }
    elif kind == "DaemonSet":
        spec = {
            "selector": {"matchLabels": {"app": name}},
            "template": template,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "revisionHistoryLimit": 10,
        }
        template["spec"]["tolerations"] = [{"operator": "Exists"}]
        status = {
            "currentNumberScheduled": NODES,
            "desiredNumberScheduled": NODES,
            "numberReady": NODES,
            "observedGeneration": meta["generation"],
        }
    elif kind == "Job":
        spec = {
            "backoffLimit": 6,
            "completions": 1,
            "parallelism": 1,
            "ttlSecondsAfterFinished": 86400,
            "template": template,
        }
        status = {
            "succeeded": 1,
            "startTime": meta["creationTimestamp"],
            "completionTime": meta["creationTimestamp"],
        }
    else:
        schedule = f"{g.rng.randrange(60)} {g.rng.randrange(24)} * * *"
        spec = {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "suspend": False,
            "jobTemplate": {"metadata": {}, "spec": {"backoffLimit": 2, "template": template}},
        }
        status = {"lastScheduleTime": g.created(2)}
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec, "status": status}
