"""Cluster-wide RBAC: the built-in roles and bindings, the add-ons', and the shop's own."""

from __future__ import annotations

from typing import Any

from builders import Cluster, Doc, at
from kit import CLUSTER_CREATED, binding, group, rbac, service_account, user

# --- cluster-wide RBAC --------------------------------------------------------------------------


def cluster_rbac(c: Cluster) -> None:
    boot: dict[str, Any] = {
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }
    t0 = CLUSTER_CREATED

    def cluster_role(name: str, rules: list[Doc], created: Any = t0, **meta: Any) -> None:
        rbac(c, "ClusterRole", name, None, created, {"rules": rules}, **meta)

    cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
        **boot,
    )
    read = ["get", "list", "watch"]
    rbac(
        c,
        "ClusterRole",
        "view",
        None,
        t0,
        {
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
                ]
            },
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": [
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": [""],
                    "resources": [
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                    "verbs": read,
                },
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": read},
                {
                    "apiGroups": ["apps"],
                    "resources": [
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                    "verbs": read,
                },
                {
                    "apiGroups": ["batch"],
                    "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                    "verbs": read,
                },
                {
                    "apiGroups": ["networking.k8s.io"],
                    "resources": ["ingresses", "ingresses/status", "networkpolicies"],
                    "verbs": read,
                },
            ],
        },
        labels={
            "kubernetes.io/bootstrapping": "rbac-defaults",
            "rbac.authorization.k8s.io/aggregate-to-edit": "true",
        },
        annotations=boot["annotations"],
    )
    cluster_role(
        "system:public-info-viewer",
        [
            {
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }
        ],
        **boot,
    )
    cluster_role(
        "system:node-proxier",
        [
            {"apiGroups": [""], "resources": ["endpoints", "services"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": read},
            {
                "apiGroups": ["", "events.k8s.io"],
                "resources": ["events"],
                "verbs": ["create", "patch", "update"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
        **boot,
    )
    cluster_role(
        "system:controller:clusterrole-aggregation-controller",
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "verbs": ["escalate", "get", "list", "patch", "update", "watch"],
            },
        ],
        **boot,
    )
    cluster_role(
        "system:coredns",
        [
            {
                "apiGroups": [""],
                "resources": ["endpoints", "services", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
        labels={
            "kubernetes.io/bootstrapping": "rbac-defaults",
            "addonmanager.kubernetes.io/mode": "Reconcile",
        },
    )
    cluster_role(
        "flannel",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
        labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
    )
    cluster_role(
        "csi-oci-node",
        [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
            {
                "apiGroups": [""],
                "resources": ["persistentvolumes"],
                "verbs": ["get", "list", "watch", "update"],
            },
            {
                "apiGroups": ["storage.k8s.io"],
                "resources": ["volumeattachments", "csinodes"],
                "verbs": ["get", "list", "watch"],
            },
        ],
        labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
    )
    cluster_role(
        "ingress-nginx",
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps", "endpoints", "nodes", "pods", "secrets", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["services"], "verbs": read},
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses", "ingressclasses"],
                "verbs": read,
            },
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses/status"],
                "verbs": ["update"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch", "get"],
            },
        ],
        at("2025-02-13T08:55:31"),
        labels={"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/managed-by": "Helm"},
    )
    cluster_role(
        "cert-manager-controller",
        [
            {
                "apiGroups": ["cert-manager.io"],
                "resources": [
                    "certificates",
                    "certificates/status",
                    "certificaterequests",
                    "certificaterequests/status",
                    "issuers",
                    "clusterissuers",
                ],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            },
            {
                "apiGroups": ["acme.cert-manager.io"],
                "resources": ["orders", "challenges"],
                "verbs": ["get", "list", "watch", "create", "update", "delete"],
            },
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get", "list", "watch", "create", "update", "delete", "patch"],
            },
            {
                "apiGroups": [""],
                "resources": ["pods", "services"],
                "verbs": ["get", "list", "watch", "create", "delete"],
            },
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses"],
                "verbs": ["get", "list", "watch", "create", "delete", "update"],
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
        at("2025-02-13T09:02:17"),
        labels={
            "app.kubernetes.io/instance": "cert-manager",
            "app.kubernetes.io/managed-by": "Helm",
        },
    )
    # CI deploys everything everywhere: every verb on the workload resources, cluster-wide.
    cluster_role(
        "ci-deployer",
        [
            {
                "apiGroups": ["", "apps", "batch", "networking.k8s.io"],
                "resources": [
                    "deployments",
                    "statefulsets",
                    "daemonsets",
                    "services",
                    "configmaps",
                    "secrets",
                    "jobs",
                    "cronjobs",
                    "ingresses",
                    "networkpolicies",
                ],
                "verbs": ["*"],
            },
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
        ],
        at("2025-02-13T09:30:02"),
    )

    binding(
        c, "cluster-admin", ("ClusterRole", "cluster-admin"), [group("system:masters")], t0, **boot
    )
    binding(
        c,
        "system:node-proxier",
        ("ClusterRole", "system:node-proxier"),
        [service_account("kube-system", "kube-proxy")],
        t0,
        **boot,
    )
    binding(
        c,
        "system:controller:clusterrole-aggregation-controller",
        ("ClusterRole", "system:controller:clusterrole-aggregation-controller"),
        [service_account("kube-system", "clusterrole-aggregation-controller")],
        t0,
        **boot,
    )
    binding(
        c,
        "system:coredns",
        ("ClusterRole", "system:coredns"),
        [service_account("kube-system", "coredns")],
        t0,
        labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
    )
    binding(
        c,
        "flannel",
        ("ClusterRole", "flannel"),
        [service_account("kube-system", "flannel")],
        t0,
        labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
    )
    binding(
        c,
        "csi-oci-node",
        ("ClusterRole", "csi-oci-node"),
        [service_account("kube-system", "csi-oci-node-sa")],
        t0,
        labels={"addonmanager.kubernetes.io/mode": "Reconcile"},
    )
    binding(
        c,
        "ingress-nginx",
        ("ClusterRole", "ingress-nginx"),
        [service_account("platform", "ingress-nginx")],
        at("2025-02-13T08:55:31"),
        labels={"app.kubernetes.io/managed-by": "Helm"},
    )
    binding(
        c,
        "cert-manager-controller",
        ("ClusterRole", "cert-manager-controller"),
        [service_account("platform", "cert-manager")],
        at("2025-02-13T09:02:17"),
        labels={"app.kubernetes.io/managed-by": "Helm"},
    )
    # "Temporary" while the cluster was being set up, twenty-one months ago.
    binding(
        c,
        "alice-cluster-admin",
        ("ClusterRole", "cluster-admin"),
        [user("alice@shopco.example")],
        at("2025-02-10T10:02:51"),
    )
    binding(
        c,
        "ci-deployer",
        ("ClusterRole", "ci-deployer"),
        [service_account("platform", "ci-deployer")],
        at("2025-02-13T09:30:02"),
    )
    # A status-page prototype reads pod status without credentials.
    binding(
        c,
        "status-page-view",
        ("ClusterRole", "view"),
        [user("system:anonymous")],
        at("2025-08-07T15:48:30"),
    )
