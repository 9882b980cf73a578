"""The non-workload kinds: Namespaces, Secrets, ConfigMaps, RBAC, NetworkPolicies and Nodes."""

from __future__ import annotations

import hashlib

from synthetic.base import APPS, PLAIN_ENV, TEAMS, Doc, Gen, b64


def namespace(g: Gen, name: str) -> Doc:
    labels = {"kubernetes.io/metadata.name": name}
    if g.rng.random() < 0.4:
        labels["pod-security.kubernetes.io/enforce"] = g.rng.choice(("restricted", "baseline"))
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": g.metadata(name, None, labels=labels),
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def secret(g: Gen, namespace: str, app: str, index: int) -> Doc:
    roll = g.rng.random()
    annotations: Doc = {}
    if roll < 0.10:
        kind, name = "kubernetes.io/tls", f"{app}-tls-{index}"
        data = {"tls.crt": b64(g.rng.choice(g.certificates)), "tls.key": b64(g.fake_private_key())}
    elif roll < 0.20:
        kind, name = "kubernetes.io/service-account-token", f"{app}-token-{g.suffix()}"
        annotations = {
            "kubernetes.io/service-account.name": app,
            "kubernetes.io/service-account.uid": g.uid(),
        }
        jwt = ".".join(b64(g.rng.randbytes(n)).rstrip("=") for n in (36, 420, 256))
        data = {"ca.crt": b64(g.certificates[-1]), "namespace": b64(namespace), "token": b64(jwt)}
    else:
        kind, name = "Opaque", f"{app}-secrets-{index}"
        keys = g.rng.sample(
            [
                "db_password",
                "api_token",
                "redis_password",
                "jwt_signing_key",
                "smtp_password",
                "webhook_secret",
            ],
            g.rng.randrange(1, 6),
        )
        data = {key: b64(g.token(g.rng.randrange(16, 64))) for key in keys}
        if g.rng.random() < 0.2:
            annotations = {"okeguard.io/rotated-at": g.created(60)}
    meta = g.metadata(name, namespace, labels={"app": app}, annotations=annotations)
    return {"apiVersion": "v1", "kind": "Secret", "type": kind, "metadata": meta, "data": data}


def config_map(g: Gen, namespace: str, app: str, index: int) -> Doc:
    lines = [
        f"{app}.{key}={g.token(g.rng.randrange(4, 40))}"
        for key in g.rng.sample(PLAIN_ENV + tuple(APPS), g.rng.randrange(5, 25))
    ]
    data = {
        "app.properties": "\n".join(lines) + "\n",
        "LOG_LEVEL": g.rng.choice(("info", "debug", "warn")),
    }
    if g.rng.random() < 0.02:  # a private key pasted into a ConfigMap: the scan must flag it
        data["deploy_key.pem"] = g.fake_private_key()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": g.metadata(f"{app}-config-{index}", namespace, labels={"app": app}),
        "data": data,
    }


READ_RULE = {
    "apiGroups": [""],
    "resources": ["pods", "services", "configmaps"],
    "verbs": ["get", "list", "watch"],
}


def _rules(g: Gen) -> list[Doc]:
    rules = [
        READ_RULE,
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": g.rng.sample(["get", "list", "watch", "update", "patch"], 3),
        },
    ]
    roll = g.rng.random()
    if roll < 0.03:
        rules.append({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    elif roll < 0.05:
        rules.append(
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["rolebindings"],
                "verbs": ["create", "bind"],
            }
        )
    return rules


def _subjects(g: Gen, namespace: str, app: str) -> list[Doc]:
    roll = g.rng.random()
    if roll < 0.05:
        return [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]
    if roll < 0.6:
        return [{"kind": "ServiceAccount", "name": app, "namespace": namespace}]
    if roll < 0.8:
        return [
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": f"{g.rng.choice(TEAMS)}-engineers",
            }
        ]
    return [
        {
            "kind": "User",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": f"{g.token(6).lower()}@shop.example",
        }
    ]


def rbac(g: Gen, namespaces: list[str], count: int) -> list[Doc]:
    """Roles (35%), RoleBindings (45%), ClusterRoles (10%) and ClusterRoleBindings (10%)."""
    api = "rbac.authorization.k8s.io/v1"
    n_roles, n_bindings, n_cluster_roles = (
        round(count * 0.35),
        round(count * 0.45),
        round(count * 0.10),
    )
    n_cluster_bindings = count - n_roles - n_bindings - n_cluster_roles
    docs: list[Doc] = []
    roles: list[tuple[str, str]] = []
    for i in range(n_roles):
        ns = g.rng.choice(namespaces)
        roles.append((ns, f"{g.rng.choice(APPS)}-role-{i}"))
        docs.append(
            {
                "apiVersion": api,
                "kind": "Role",
                "metadata": g.metadata(roles[-1][1], ns),
                "rules": _rules(g),
            }
        )
    cluster_roles = [f"shop:{g.rng.choice(TEAMS)}-{i}" for i in range(n_cluster_roles)]
    for name in cluster_roles:
        docs.append(
            {
                "apiVersion": api,
                "kind": "ClusterRole",
                "metadata": g.metadata(name, None),
                "rules": _rules(g),
            }
        )
    for i in range(n_bindings):
        roll = g.rng.random()
        if roll < 0.7 and roles:
            ns, role = g.rng.choice(roles)
            ref = {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": role if roll > 0.02 else f"missing-{i}",
            }
        else:
            ns = g.rng.choice(namespaces)
            ref = {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": g.rng.choice(("view", "edit", "admin", *cluster_roles[:20])),
            }
        app = g.rng.choice(APPS)
        docs.append(
            {
                "apiVersion": api,
                "kind": "RoleBinding",
                "metadata": g.metadata(f"{app}-binding-{i}", ns),
                "roleRef": ref,
                "subjects": _subjects(g, ns, app),
            }
        )
    for i in range(n_cluster_bindings):
        if i < 5:
            role, subjects = (
                "cluster-admin",
                [
                    {
                        "kind": "User",
                        "apiGroup": "rbac.authorization.k8s.io",
                        "name": f"admin{i}@shop.example",
                    }
                ],
            )
        elif i == 5:
            role, subjects = (
                "view",
                [
                    {
                        "kind": "Group",
                        "apiGroup": "rbac.authorization.k8s.io",
                        "name": "system:unauthenticated",
                    }
                ],
            )
        else:
            role = g.rng.choice(cluster_roles or ["view"])
            subjects = _subjects(g, g.rng.choice(namespaces), g.rng.choice(APPS))
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
        docs.append(
            {
                "apiVersion": api,
                "kind": "ClusterRoleBinding",
                "metadata": g.metadata(f"crb-{i}", None),
                "roleRef": ref,
                "subjects": subjects,
            }
        )
    return docs


def network_policy(g: Gen, namespace: str, apps: list[str]) -> Doc:
    if g.rng.random() < 0.7 or not apps:
        selector: Doc = {}  # default deny: every pod in the namespace
        ingress: list[Doc] = []
    else:  # allows some apps only, so other pods stay uncovered
        selector = {
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": apps[: max(1, len(apps) // 2)]}
            ]
        }
        ingress = [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                        }
                    }
                ],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            }
        ]
    spec = {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": g.metadata("default-deny-ingress", namespace),
        "spec": spec,
    }


def node(g: Gen, index: int) -> Doc:
    name = f"10.0.{10 + index}.{g.rng.randrange(2, 250)}"
    images = [
        {
            "names": [
                f"{repo}@sha256:{hashlib.sha256(f'{repo}:{tag}'.encode()).hexdigest()}",
                f"{repo}:{tag}",
            ],
            "sizeBytes": size,
        }
        for repo, tag, size in g.rng.sample(g.images, 120)
    ]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
        "topology.kubernetes.io/zone": f"US-ASHBURN-AD-{index % 3 + 1}",
    }
    status = {
        "addresses": [
            {"type": "InternalIP", "address": name},
            {"type": "Hostname", "address": name},
        ],
        "capacity": {"cpu": "8", "memory": "65544956Ki", "pods": "110"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastTransitionTime": g.created(30),
            }
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.31.1",
            "containerRuntimeVersion": "cri-o://1.31.1",
            "osImage": "Oracle Linux Server 8.10",
            "architecture": "amd64",
        },
        "images": images,
    }
    spec = {
        "providerID": f"ocid1.instance.oc1.iad.{g.token(60).lower()}",
        "podCIDR": f"10.244.{index}.0/25",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": g.metadata(name, None, labels=labels),
        "spec": spec,
        "status": status,
    }
