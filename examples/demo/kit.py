"""The shop's constants and conventions, and small helpers for the documents every area needs.

Times, the image catalogue (with the sizes the nodes report), the hardened security context the
shop's own services use, and builders for Services, Ingresses, NetworkPolicies and RBAC.
"""

from __future__ import annotations

import json
from typing import Any

from builders import Cluster, Doc, Image, at, b64

SEED = 20261120
CLUSTER = "shop-prod"
CLUSTER_CREATED = at("2025-02-10T09:14:03")
NODES_CREATED = at("2026-10-28T06:40:12")  # node pool cycled onto the October node image
CAPTURED_AT = at("2026-11-20T08:00:00")
REGION = "eu-frankfurt-1"
OKE = "fra.ocir.io/axoxdievda5j"  # where OKE's own system images come from
SHOP = "fra.ocir.io/shopco"
MIRROR = "fra.ocir.io/shopco/mirror"  # third-party images, mirrored into OCIR

IMAGES = {
    # OKE system images
    "pause": Image(f"{OKE}/oke-public-pause", "3.10", 744_000),
    "coredns": Image(f"{OKE}/oke-public-coredns", "v1.11.3", 61_224_000),
    "kube-proxy": Image(f"{OKE}/oke-public-kube-proxy", "v1.31.1-1", 93_811_000),
    "flannel": Image(f"{OKE}/oke-public-flannel", "v0.26.1-1", 84_640_000),
    "flannel-cni": Image(f"{OKE}/oke-public-flannel-cni-plugin", "v1.5.1-flannel2", 11_403_000),
    "proxymux": Image(f"{OKE}/oke-public-proxymux-cli", "v1.31.1-3", 134_250_000),
    "csi-node": Image(f"{OKE}/oke-public-cloud-provider-oci", "v1.31.1", 372_918_000),
    "csi-registrar": Image(f"{OKE}/oke-public-csi-node-driver-registrar", "v2.12.0", 29_877_000),
    # the shop's own images
    "web": Image(f"{SHOP}/storefront-web", "4.12.0", 48_205_000),
    "cart": Image(f"{SHOP}/cart", "1.14.2", 31_766_000),
    "catalog": Image(f"{SHOP}/catalog", "2.7.3", 88_430_000),
    "search": Image(f"{SHOP}/search", "3.8.0", 1_387_654_321),  # ranking model baked in
    "orders": Image(f"{SHOP}/orders", "5.3.1", 92_118_000),
    "payments": Image(f"{SHOP}/payments-gateway", "1.9.4", 41_907_000),
    "shop-admin": Image(f"{SHOP}/shop-admin", "0.9.17", 412_880_000),
    "report": Image(f"{SHOP}/report-runner", "2.4.1", 176_340_000),
    # mirrored third-party images
    "busybox-mirror": Image(f"{MIRROR}/busybox", "1.36.1", 4_269_000),
    "postgres": Image(f"{MIRROR}/postgres", "16.4-bookworm", 438_512_000),
    "ingress-nginx": Image(f"{MIRROR}/ingress-nginx/controller", "v1.11.3", 284_913_000),
    "cert-manager": Image(f"{MIRROR}/jetstack/cert-manager-controller", "v1.16.1", 70_530_000),
    "cert-manager-webhook": Image(f"{MIRROR}/jetstack/cert-manager-webhook", "v1.16.1", 58_771_000),
    # straight from Docker Hub
    "redis": Image("docker.io/library/redis", "latest", 117_204_000),
    "flyway": Image("docker.io/flyway/flyway", "10.20.1", 385_063_000),
    "busybox": Image("docker.io/library/busybox", "1.36", 4_270_000),
}

HARDENED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
HARDENED = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
TMP_VOLUME = {"name": "tmp", "emptyDir": {}}


def probe(path: str, port: int | str = "http", delay: int = 5) -> Doc:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": delay,
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def from_secret(name: str, secret: str, key: str) -> Doc:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def app_container(
    name: str,
    image: str,
    *,
    port: int = 8080,
    env_vars: list[Doc] | None = None,
    mounts: list[Doc] | None = None,
    cpu: str = "100m",
    memory: str = "256Mi",
    security: Doc | None = None,
) -> Doc:
    """A container the shop's way: hardened, with probes, requests and a writable /tmp."""
    container: Doc = {"name": name, "image": image}
    if env_vars:
        container["env"] = env_vars
    container["ports"] = [{"name": "http", "containerPort": port}]
    container["resources"] = {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"memory": memory},
    }
    container["readinessProbe"] = probe("/readyz")
    container["livenessProbe"] = probe("/healthz", delay=15)
    container["securityContext"] = dict(security if security is not None else HARDENED)
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *(mounts or [])]
    return container


def app_labels(name: str, part_of: str, version: str, component: str = "api") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": part_of,
        "app.kubernetes.io/managed-by": "argocd",
    }


def template(labels: dict[str, str], spec: Doc, annotations: dict[str, str] | None = None) -> Doc:
    metadata: Doc = {
        "labels": {k: v for k, v in labels.items() if k != "app.kubernetes.io/managed-by"}
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


def ocid(c: Cluster, kind: str, region: str | None = REGION) -> str:
    body = "".join(c.rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(52))
    return f"ocid1.{kind}.oc1.{region or ''}.aaaaaaaa{body}"


def service(
    c: Cluster,
    namespace: str,
    name: str,
    created: Any,
    selector: dict[str, str],
    ports: list[Doc],
    *,
    cluster_ip: str | None = None,
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> Doc:
    spec: Doc = {
        **({"selector": selector} if selector else {}),
        "ports": [{"protocol": "TCP", **p} for p in ports],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    ip = cluster_ip or f"10.96.{c.rng.randint(1, 254)}.{c.rng.randint(2, 254)}"
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]
    spec.update(extra.pop("spec", {}))
    status = extra.pop("status", {"loadBalancer": {}})
    return c.add(
        "v1",
        "Service",
        name,
        namespace,
        created,
        {"spec": spec, "status": status},
        labels=labels,
        **extra,
    )


def network_policy(c: Cluster, namespace: str, name: str, created: Any, spec: Doc) -> None:
    c.add(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        name,
        namespace,
        created,
        {"spec": spec},
        generation=1,
    )


def default_deny(c: Cluster, namespace: str, created: Any) -> None:
    network_policy(
        c,
        namespace,
        "default-deny-ingress",
        created,
        {"podSelector": {}, "policyTypes": ["Ingress"]},
    )


def from_namespace(namespace: str, pod_labels: dict[str, str] | None = None) -> Doc:
    peer: Doc = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": pod_labels}
    return peer


INGRESS_NGINX_PODS = {
    "app.kubernetes.io/name": "ingress-nginx",
    "app.kubernetes.io/component": "controller",
}


def ingress(
    c: Cluster,
    namespace: str,
    name: str,
    created: Any,
    rules: list[tuple[str, list[tuple[str, str, int]]]],
    tls: list[Doc] | None,
    **meta: Any,
) -> None:
    spec: Doc = {"ingressClassName": "nginx"}
    if tls:
        spec["tls"] = tls
    spec["rules"] = [
        {
            "host": host,
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": "Prefix",
                        "backend": {"service": {"name": svc, "port": {"number": port}}},
                    }
                    for path, svc, port in paths
                ]
            },
        }
        for host, paths in rules
    ]
    status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.47"}]}}
    c.add(
        "networking.k8s.io/v1",
        "Ingress",
        name,
        namespace,
        created,
        {"spec": spec, "status": status},
        generation=meta.pop("generation", 1),
        **meta,
    )


def rbac(
    c: Cluster, kind: str, name: str, namespace: str | None, created: Any, body: Doc, **meta: Any
) -> None:
    c.add("rbac.authorization.k8s.io/v1", kind, name, namespace, created, body, **meta)


def binding(
    c: Cluster,
    name: str,
    role: tuple[str, str],
    subjects: list[Doc],
    created: Any,
    namespace: str | None = None,
    **meta: Any,
) -> None:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    body = {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role[0], "name": role[1]},
        "subjects": subjects,
    }
    rbac(c, kind, name, namespace, created, body, **meta)


def user(name: str) -> Doc:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}


def group(name: str) -> Doc:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def service_account(namespace: str, name: str) -> Doc:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def docker_config(c: Cluster) -> str:
    auth = f"shopco/oracleidentitycloudservice/ci@shopco.example:{c.hex(20)}"
    return json.dumps({"auths": {"fra.ocir.io": {"auth": b64(auth)}}})


# ------------------------------------------------------------------------------------------------


def pull_secret(c: Cluster, namespace: str, created: str) -> None:
    """The OCIR image-pull Secret every application namespace carries."""
    c.secret(
        namespace,
        "ocir-pull",
        created,
        "kubernetes.io/dockerconfigjson",
        {".dockerconfigjson": docker_config(c)},
    )
