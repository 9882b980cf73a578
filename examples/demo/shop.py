"""The shop itself: ``storefront`` (what customers see), ``checkout`` and ``data``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from builders import Cluster, Doc, at, ts
from controllers import deployment, statefulset
from kit import (
    HARDENED,
    HARDENED_POD,
    IMAGES,
    INGRESS_NGINX_PODS,
    TMP_VOLUME,
    app_container,
    app_labels,
    binding,
    default_deny,
    from_namespace,
    from_secret,
    group,
    ingress,
    network_policy,
    ocid,
    pull_secret,
    service,
    template,
)

# --- storefront: the shop the customers see -----------------------------------------------------


def storefront(c: Cluster, cert: Any, chain_ca: Any) -> None:
    ns = "storefront"
    created = at("2025-02-12T13:20:00")
    for sa in ("web", "cart", "catalog", "search"):
        c.service_account(ns, sa, created, automount=False, labels={"app.kubernetes.io/name": sa})
    pull_secret(c, ns, created)
    # An old Secret, but rotated in October: the annotation keeps it from being stale.
    c.secret(
        ns,
        "catalog-db",
        at("2025-02-14T16:02:11"),
        "Opaque",
        {"username": "catalog", "password": c.hex(32)},
        annotations={"okeguard.io/rotated-at": "2026-10-15T09:12:00Z"},
        labels={"app.kubernetes.io/name": "catalog"},
        updated=at("2026-10-15T09:12:00"),
    )
    c.secret(
        ns,
        "cart-session",
        at("2026-09-30T10:44:02"),
        "Opaque",
        {"signing-key": c.hex(64)},
        labels={"app.kubernetes.io/name": "cart"},
    )
    c.secret(
        ns,
        "shop-tls",
        at("2025-02-14T09:00:31"),
        "kubernetes.io/tls",
        {"tls.crt": cert.cert_pem + chain_ca.cert_pem, "tls.key": cert.key_pem},
        labels={"controller.cert-manager.io/fao": "true"},
        annotations={
            "cert-manager.io/alt-names": "shopco.example,www.shopco.example",
            "cert-manager.io/certificate-name": "shop-tls",
            "cert-manager.io/common-name": "shopco.example",
            "cert-manager.io/ip-sans": "",
            "cert-manager.io/issuer-group": "cert-manager.io",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/issuer-name": "public-acme",
            "cert-manager.io/uri-sans": "",
        },
        updated=at("2026-10-25T03:12:50"),
    )
    c.add(
        "v1",
        "ConfigMap",
        "web-config",
        ns,
        at("2025-02-12T13:20:00"),
        {
            "data": {
                "API_BASE_URL": "https://shopco.example/api",
                "FEATURE_FLAGS": "wishlist,gift-cards,klarna",
                "CDN_ORIGIN": "https://objectstorage.eu-frankfurt-1.oraclecloud.com/n/shopco/b/static/o",
            }
        },
        labels={"app.kubernetes.io/name": "web"},
        updated=at("2026-11-03T10:14:22"),
    )
    c.add(
        "v1",
        "ConfigMap",
        "search-config",
        ns,
        at("2025-03-20T15:31:09"),
        {
            "data": {
                "ranking.yaml": "model: /models/ltr-2026-10\nboost:\n  in_stock: 1.4\n  margin: 1.1\n",
            }
        },
        labels={"app.kubernetes.io/name": "search"},
    )

    def deploy(
        name: str,
        image: str,
        version: str,
        rollouts: list[str],
        replicas: int,
        *,
        env_vars: list[Doc] | None = None,
        init: list[Doc] | None = None,
        component: str = "api",
        memory: str = "256Mi",
        port: int = 8080,
    ) -> None:
        labels = app_labels(name, "storefront", version, component)
        spec: Doc = {
            "serviceAccountName": name,
            "automountServiceAccountToken": False,
            "securityContext": HARDENED_POD,
            "imagePullSecrets": [{"name": "ocir-pull"}],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                }
            ],
            "containers": [app_container(name, image, env_vars=env_vars, memory=memory, port=port)],
            "volumes": [dict(TMP_VOLUME)],
        }
        if init:
            spec["initContainers"] = init
        deployment(
            c,
            ns,
            name,
            template(labels, spec),
            created=at(rollouts[0]),
            rollouts=[at(r) for r in rollouts],
            replicas=replicas,
            labels=labels,
        )
        service(
            c,
            ns,
            name,
            at(rollouts[0]),
            {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name},
            [{"name": "http", "port": 80, "targetPort": "http"}],
            labels=labels,
        )

    deploy(
        "web",
        c.ref(IMAGES["web"], "pinned"),
        "4.12.0",
        ["2025-02-12T14:02:11", "2026-09-17T09:40:03", "2026-11-03T10:15:40"],
        3,
        component="frontend",
        env_vars=[
            {"name": "CART_URL", "value": "http://cart"},
            {"name": "CATALOG_URL", "value": "http://catalog"},
            {"name": "SEARCH_URL", "value": "http://search"},
        ],
    )
    deploy(
        "cart",
        c.ref(IMAGES["cart"], "digest"),
        "1.14.2",
        ["2025-02-12T14:05:52", "2026-10-06T12:01:19"],
        2,
        env_vars=[
            {"name": "REDIS_ADDR", "value": "redis.data:6379"},
            from_secret("SESSION_SIGNING_KEY", "cart-session", "signing-key"),
        ],
    )
    wait = {
        "name": "wait-for-postgres",
        "image": c.ref(IMAGES["busybox-mirror"], "pinned"),
        "command": ["sh", "-c", "until nc -z postgres.data 5432; do sleep 2; done"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "16Mi"}},
        "securityContext": dict(HARDENED),
    }
    deploy(
        "catalog",
        c.ref(IMAGES["catalog"], "pinned"),
        "2.7.3",
        ["2025-02-12T14:06:30", "2026-08-11T08:22:47", "2026-10-21T13:37:05"],
        2,
        init=[wait],
        env_vars=[
            {"name": "DB_HOST", "value": "postgres.data"},
            {"name": "DB_NAME", "value": "catalog"},
            from_secret("DB_USER", "catalog-db", "username"),
            from_secret("DB_PASSWORD", "catalog-db", "password"),
        ],
    )
    deploy(
        "search",
        c.ref(IMAGES["search"], "pinned"),
        "3.8.0",
        ["2025-03-20T15:31:09", "2026-10-30T16:05:44"],
        2,
        memory="2Gi",
        env_vars=[
            {"name": "CATALOG_URL", "value": "http://catalog"},
            {"name": "RANKING_CONFIG", "value": "/etc/search/ranking.yaml"},
        ],
    )

    ingress(
        c,
        ns,
        "storefront",
        at("2025-02-14T09:00:00"),
        [
            (
                "shopco.example",
                [
                    ("/api/cart", "cart", 80),
                    ("/api/catalog", "catalog", 80),
                    ("/api/search", "search", 80),
                    ("/", "web", 80),
                ],
            ),
            ("www.shopco.example", [("/", "web", 80)]),
        ],
        [{"hosts": ["shopco.example", "www.shopco.example"], "secretName": "shop-tls"}],
        annotations={
            "cert-manager.io/cluster-issuer": "public-acme",
            "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        },
        generation=3,
    )

    created = at("2025-02-12T14:10:00")
    default_deny(c, ns, created)
    network_policy(
        c,
        ns,
        "allow-from-ingress-nginx",
        created,
        {
            "podSelector": {
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/name",
                        "operator": "In",
                        "values": ["web", "cart", "catalog", "search"],
                    }
                ]
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [from_namespace("platform", INGRESS_NGINX_PODS)],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    network_policy(
        c,
        ns,
        "allow-web-to-apis",
        created,
        {
            "podSelector": {
                "matchExpressions": [
                    {
                        "key": "app.kubernetes.io/name",
                        "operator": "In",
                        "values": ["cart", "catalog", "search"],
                    }
                ]
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}},
                        from_namespace("checkout"),
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    binding(
        c,
        "storefront-developers-view",
        ("ClusterRole", "view"),
        [group(ocid(c, "group", region=None))],
        at("2025-02-12T13:30:00"),
        namespace=ns,
    )


# --- checkout: orders and payments --------------------------------------------------------------


def checkout(c: Cluster, cert: Any, chain_ca: Any) -> None:
    ns = "checkout"
    created = at("2025-02-12T13:20:00")
    for sa in ("orders", "payments-gateway"):
        c.service_account(ns, sa, created, automount=False, labels={"app.kubernetes.io/name": sa})
    pull_secret(c, ns, created)
    c.secret(
        ns,
        "orders-db",
        at("2026-09-01T07:58:13"),
        "Opaque",
        {"username": "orders", "password": c.hex(32)},
        labels={"app.kubernetes.io/name": "orders"},
    )
    stripe_key = (
        "sk_"
        + "live_"
        + "".join(
            c.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            for _ in range(99)
        )
    )
    # Rotated on 9 October; the same evening's hotfix pasted the new key into the Deployment too.
    c.secret(
        ns,
        "payments-gateway-stripe",
        at("2026-10-09T20:55:12"),
        "Opaque",
        {"api-key": stripe_key, "webhook-secret": "whsec_" + c.hex(32)},
        labels={"app.kubernetes.io/name": "payments-gateway"},
    )
    # Uploaded by hand a year ago; nothing renews it.
    c.secret(
        ns,
        "checkout-tls",
        at("2025-12-04T10:17:33"),
        "kubernetes.io/tls",
        {"tls.crt": cert.cert_pem + chain_ca.cert_pem, "tls.key": cert.key_pem},
    )

    def deploy(
        name: str,
        image: str,
        version: str,
        rollouts: list[str],
        env_vars: list[Doc],
        mounts: list[Doc] | None = None,
        volumes: list[Doc] | None = None,
    ) -> None:
        labels = app_labels(name, "checkout", version)
        spec: Doc = {
            "serviceAccountName": name,
            "automountServiceAccountToken": False,
            "securityContext": HARDENED_POD,
            "imagePullSecrets": [{"name": "ocir-pull"}],
            "containers": [
                app_container(
                    name, image, env_vars=env_vars, mounts=mounts, cpu="200m", memory="512Mi"
                )
            ],
            "volumes": [dict(TMP_VOLUME), *(volumes or [])],
        }
        deployment(
            c,
            ns,
            name,
            template(labels, spec),
            created=at(rollouts[0]),
            rollouts=[at(r) for r in rollouts],
            replicas=2,
            labels=labels,
        )
        service(
            c,
            ns,
            name,
            at(rollouts[0]),
            {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name},
            [{"name": "http", "port": 80, "targetPort": "http"}],
            labels=labels,
        )

    deploy(
        "orders",
        c.ref(IMAGES["orders"], "pinned"),
        "5.3.1",
        ["2025-02-12T14:30:12", "2026-07-14T09:03:55", "2026-11-10T15:47:21"],
        [
            {"name": "DB_HOST", "value": "postgres.data"},
            {"name": "DB_NAME", "value": "orders"},
            from_secret("DB_USER", "orders-db", "username"),
            {"name": "DB_PASSWORD_FILE", "value": "/var/run/secrets/orders-db/password"},
            {"name": "PAYMENTS_URL", "value": "http://payments-gateway"},
        ],
        mounts=[{"name": "orders-db", "mountPath": "/var/run/secrets/orders-db", "readOnly": True}],
        volumes=[{"name": "orders-db", "secret": {"secretName": "orders-db"}}],
    )
    # Last Tuesday someone debugged a stuck order in production with `kubectl debug` and a busybox
    # from Docker Hub; the ephemeral container stays in the pod until the pod is replaced.
    debugged = c.last_pods[0]
    debug_image = c.ref(IMAGES["busybox"], "short")
    debugger = {
        "name": "debugger-" + c.suffix(),
        "image": debug_image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "stdin": True,
        "tty": True,
        "targetContainerName": "orders",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    debugged["spec"]["ephemeralContainers"] = [debugger]
    debug_start = at("2026-11-17T16:42:09")
    debugged["status"]["ephemeralContainerStatuses"] = [
        {
            "name": debugger["name"],
            "image": IMAGES["busybox"].by_tag,
            "imageID": IMAGES["busybox"].by_digest,
            "containerID": f"cri-o://{c.hex(64)}",
            "ready": False,
            "restartCount": 0,
            "lastState": {},
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": ts(debug_start),
                    "finishedAt": ts(debug_start + timedelta(minutes=23)),
                }
            },
        }
    ]
    debugged["metadata"]["resourceVersion"] = c.resource_version(
        debug_start + timedelta(minutes=23)
    )
    node = next(n for n in c.nodes if n.name == debugged["spec"]["nodeName"])
    node.images.add(IMAGES["busybox"])

    # The Stripe key is in a Secret, but the October hotfix also pasted it in as a literal.
    deploy(
        "payments-gateway",
        c.ref(IMAGES["payments"], "pinned"),
        "1.9.4",
        ["2025-02-12T14:31:40", "2026-10-09T21:18:06"],
        [
            {"name": "STRIPE_API_KEY", "value": stripe_key},
            from_secret("STRIPE_WEBHOOK_SECRET", "payments-gateway-stripe", "webhook-secret"),
            {"name": "ORDERS_URL", "value": "http://orders"},
            {"name": "STRIPE_API_VERSION", "value": "2026-09-30"},
        ],
    )

    ingress(
        c,
        ns,
        "checkout",
        at("2025-02-14T09:05:10"),
        [
            (
                "checkout.shopco.example",
                [("/api/orders", "orders", 80), ("/webhooks/stripe", "payments-gateway", 80)],
            ),
        ],
        [{"hosts": ["checkout.shopco.example"], "secretName": "checkout-tls"}],
        annotations={
            "nginx.ingress.kubernetes.io/ssl-redirect": "true",
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        },
    )

    created = at("2025-02-12T14:35:00")
    default_deny(c, ns, created)
    network_policy(
        c,
        ns,
        "allow-from-ingress-nginx",
        created,
        {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [from_namespace("platform", INGRESS_NGINX_PODS)],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    network_policy(
        c,
        ns,
        "allow-storefront-to-orders",
        created,
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "orders"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [from_namespace("storefront", {"app.kubernetes.io/name": "web"})],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    network_policy(
        c,
        ns,
        "allow-orders-to-payments",
        created,
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "payments-gateway"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "orders"}}}
                    ],
                    "ports": [{"protocol": "TCP", "port": 8080}],
                }
            ],
        },
    )
    binding(
        c,
        "checkout-developers-view",
        ("ClusterRole", "view"),
        [group(ocid(c, "group", region=None))],
        at("2025-02-12T13:30:00"),
        namespace=ns,
    )


# --- data: postgres and redis -------------------------------------------------------------------


def data(c: Cluster, cert: Any, ca: Any, cm_annotations: Any) -> None:
    ns = "data"
    created = at("2025-02-12T13:40:00")
    for sa in ("postgres", "redis"):
        c.service_account(ns, sa, created, automount=False, labels={"app.kubernetes.io/name": sa})
    pull_secret(c, ns, created)
    # Created with the database in February 2025 and never rotated since.
    c.secret(
        ns,
        "postgres-superuser",
        at("2025-02-12T13:41:27"),
        "Opaque",
        {"username": "postgres", "password": c.hex(24)},
        labels={"app.kubernetes.io/name": "postgres"},
    )
    c.secret(
        ns,
        "postgres-tls",
        at("2025-03-01T10:00:04"),
        "kubernetes.io/tls",
        {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem, "ca.crt": ca.cert_pem},
        **cm_annotations(
            "postgres-tls",
            "shopco-internal-ca",
            [
                "postgres.data.svc.cluster.local",
                "postgres.data.svc",
                "postgres-0.postgres.data.svc.cluster.local",
            ],
        ),
        updated=at("2026-03-01T10:00:05"),
    )
    c.add(
        "v1",
        "ConfigMap",
        "postgres-config",
        ns,
        created,
        {
            "data": {
                "postgresql.conf": "listen_addresses = '*'\nmax_connections = 200\nshared_buffers = 2GB\nssl = on\nssl_cert_file = '/tls/tls.crt'\nssl_key_file = '/tls/tls.key'\npassword_encryption = scram-sha-256\n",
            }
        },
        labels={"app.kubernetes.io/name": "postgres"},
    )

    labels = app_labels("postgres", "shop", "16.4", "database")
    pod_sc = {**HARDENED_POD, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999}
    postgres = {
        "name": "postgres",
        "image": c.ref(IMAGES["postgres"], "pinned"),
        "args": ["-c", "config_file=/etc/postgresql/postgresql.conf"],
        "env": [
            from_secret("POSTGRES_PASSWORD", "postgres-superuser", "password"),
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-U", "postgres"]},
            "initialDelaySeconds": 5,
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        # Writable root filesystem, knowingly: exempted below with a reason and a ticket.
        "securityContext": {**HARDENED, "readOnlyRootFilesystem": False},
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "config", "mountPath": "/etc/postgresql"},
            {"name": "tls", "mountPath": "/tls", "readOnly": True},
        ],
    }
    statefulset(
        c,
        ns,
        "postgres",
        template(
            labels,
            {
                "serviceAccountName": "postgres",
                "automountServiceAccountToken": False,
                "securityContext": pod_sc,
                "imagePullSecrets": [{"name": "ocir-pull"}],
                "containers": [postgres],
                "volumes": [
                    {"name": "config", "configMap": {"name": "postgres-config"}},
                    {"name": "tls", "secret": {"secretName": "postgres-tls", "defaultMode": 0o400}},
                ],
            },
        ),
        created=at("2025-02-12T13:42:10"),
        replicas=1,
        service_name="postgres",
        labels=labels,
        annotations={
            "okeguard.io/exempt": "k8s.writable-root-fs",
            "okeguard.io/exempt-reason": "postgres entrypoint writes /var/run/postgresql; read-only root planned with the PG 17 upgrade (PLAT-412)",
        },
        volume_claims=[
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "oci-bv",
                    "resources": {"requests": {"storage": "200Gi"}},
                    "volumeMode": "Filesystem",
                },
                "status": {"phase": "Pending"},
            }
        ],
    )
    service(
        c,
        ns,
        "postgres",
        created,
        {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "postgres"},
        [{"name": "postgres", "port": 5432, "targetPort": "postgres"}],
        cluster_ip="None",
        labels=labels,
    )

    # Set up from a quickstart: hardened, but the image is Docker Hub's redis:latest.
    labels = app_labels("redis", "shop", "latest", "cache")
    redis = {
        "name": "redis",
        "image": c.ref(IMAGES["redis"], "short"),
        "args": [
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "768mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        "ports": [{"name": "redis", "containerPort": 6379}],
        "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        "securityContext": dict(HARDENED),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    deployment(
        c,
        ns,
        "redis",
        template(
            labels,
            {
                "serviceAccountName": "redis",
                "automountServiceAccountToken": False,
                "securityContext": {
                    **HARDENED_POD,
                    "runAsUser": 999,
                    "runAsGroup": 999,
                    "fsGroup": 999,
                },
                "containers": [redis],
                "volumes": [{"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            },
        ),
        created=at("2025-02-13T10:02:55"),
        rollouts=[at("2025-02-13T10:02:55")],
        replicas=1,
        labels=labels,
    )
    service(
        c,
        ns,
        "redis",
        created,
        {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "redis"},
        [{"name": "redis", "port": 6379, "targetPort": "redis"}],
        labels=labels,
    )

    default_deny(c, ns, created)
    network_policy(
        c,
        ns,
        "allow-postgres-clients",
        created,
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        from_namespace("storefront", {"app.kubernetes.io/name": "catalog"}),
                        from_namespace("checkout", {"app.kubernetes.io/name": "orders"}),
                        from_namespace("batch"),
                    ],
                    "ports": [{"protocol": "TCP", "port": 5432}],
                }
            ],
        },
    )
    network_policy(
        c,
        ns,
        "allow-redis-clients",
        created,
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [from_namespace("storefront", {"app.kubernetes.io/name": "cart"})],
                    "ports": [{"protocol": "TCP", "port": 6379}],
                }
            ],
        },
    )
