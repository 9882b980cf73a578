"""What keeps the shop running: ``platform`` (ingress, cert-manager, the legacy admin tool)
and ``batch`` (the nightly report, a one-off migration).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from builders import Cluster, at, pod_template_defaults, ts
from controllers import deployment, job
from kit import (
    HARDENED,
    HARDENED_POD,
    IMAGES,
    INGRESS_NGINX_PODS,
    TMP_VOLUME,
    app_labels,
    binding,
    from_secret,
    ingress,
    ocid,
    probe,
    pull_secret,
    rbac,
    service,
    service_account,
    template,
)

# --- platform: ingress, certificates, and the legacy admin tool ---------------------------------


def platform(
    c: Cluster,
    admin_cert: Any,
    internal_ca: Any,
    public_ca: Any,
    tls_secret: Any,
    cluster_ca_pem: str,
) -> None:
    ns = "platform"
    created = at("2025-02-13T08:50:00")

    def helm(release: str, chart: str) -> dict[str, Any]:
        return {
            "labels": {"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": chart},
            "annotations": {
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": ns,
            },
        }

    c.service_account(
        ns,
        "ingress-nginx",
        created,
        automount=True,
        **helm("ingress-nginx", "ingress-nginx-4.11.3"),
    )
    c.service_account(
        ns, "cert-manager", created, automount=True, **helm("cert-manager", "cert-manager-v1.16.1")
    )
    c.service_account(
        ns,
        "cert-manager-webhook",
        created,
        automount=True,
        **helm("cert-manager", "cert-manager-v1.16.1"),
    )
    c.service_account(ns, "shop-admin", at("2025-02-20T17:11:48"))
    c.service_account(ns, "ci-deployer", at("2025-02-13T09:30:02"), secrets=["ci-deployer-token"])
    pull_secret(c, ns, created)
    # A long-lived token for CI, made before anyone knew about TokenRequest; it is in CI's kubeconfig.
    c.secret(
        ns,
        "ci-deployer-token",
        at("2025-02-13T09:30:02"),
        "kubernetes.io/service-account-token",
        {
            "ca.crt": cluster_ca_pem,
            "namespace": ns,
            "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6I" + c.hex(600),
        },
        annotations={
            "kubernetes.io/service-account.name": "ci-deployer",
            "kubernetes.io/service-account.uid": c.uid(),
        },
    )
    c.secret(
        ns,
        "shop-admin-env",
        at("2025-02-20T17:11:48"),
        "Opaque",
        {
            "ADMIN_PASSWORD": c.hex(16),
            "SMTP_PASSWORD": c.hex(20),
            "DATABASE_URL": f"postgres://shop_admin:{c.hex(16)}@postgres.data:5432/shop",
        },
        labels={"app": "shop-admin"},
    )
    tls_secret(ns, "shop-admin-tls", at("2025-09-29T08:03:12"), admin_cert, public_ca.cert_pem)
    tls_secret(ns, "shopco-internal-ca", at("2025-02-13T10:00:00"), internal_ca)
    for release, revision, when in (
        ("ingress-nginx", 7, "2026-10-14T11:02:44"),
        ("cert-manager", 4, "2026-09-02T08:15:10"),
    ):
        c.secret(
            ns,
            f"sh.helm.release.v1.{release}.v{revision}",
            at(when),
            "helm.sh/release.v1",
            {"release": c.hex(1200)},
            labels={
                "name": release,
                "owner": "helm",
                "status": "deployed",
                "version": str(revision),
            },
        )

    c.add(
        "v1",
        "ConfigMap",
        "ingress-nginx-controller",
        ns,
        created,
        {
            "data": {
                "allow-snippet-annotations": "false",
                "use-forwarded-headers": "true",
                "hsts": "true",
                "ssl-protocols": "TLSv1.2 TLSv1.3",
            }
        },
        **helm("ingress-nginx", "ingress-nginx-4.11.3"),
    )
    c.add(
        "v1",
        "ConfigMap",
        "shop-admin-config",
        ns,
        at("2025-02-20T17:11:48"),
        {
            "data": {
                "admin.ini": "[server]\nport = 80\nbase_url = http://admin.shopco.example\n\n[backup]\ndocker_socket = /var/run/docker.sock\n",
            }
        },
        labels={"app": "shop-admin"},
    )

    # ingress-nginx, mirrored into OCIR and hardened (NET_BIND_SERVICE is not a dangerous capability).
    labels = {
        **INGRESS_NGINX_PODS,
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/part-of": "ingress-nginx",
        "app.kubernetes.io/version": "1.11.3",
        "helm.sh/chart": "ingress-nginx-4.11.3",
        "app.kubernetes.io/managed-by": "Helm",
    }
    controller = {
        "name": "controller",
        "image": c.ref(IMAGES["ingress-nginx"], "pinned"),
        "args": [
            "/nginx-ingress-controller",
            "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--election-id=ingress-nginx-leader",
            "--controller-class=k8s.io/ingress-nginx",
            "--ingress-class=nginx",
            "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller",
            "--validating-webhook=:8443",
            "--validating-webhook-certificate=/usr/local/certificates/cert",
            "--validating-webhook-key=/usr/local/certificates/key",
        ],
        "env": [
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            },
        ],
        "ports": [
            {"name": "http", "containerPort": 80},
            {"name": "https", "containerPort": 443},
            {"name": "webhook", "containerPort": 8443},
        ],
        "resources": {
            "requests": {"cpu": "200m", "memory": "256Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": probe("/healthz", port=10254),
        "livenessProbe": probe("/healthz", port=10254, delay=10),
        "securityContext": {
            **HARDENED,
            "runAsUser": 101,
            "runAsGroup": 82,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
        "volumeMounts": [
            {"name": "webhook-cert", "mountPath": "/usr/local/certificates/", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "nginx-conf", "mountPath": "/etc/nginx"},
        ],
    }
    deployment(
        c,
        ns,
        "ingress-nginx-controller",
        template(
            labels,
            {
                "serviceAccountName": "ingress-nginx",
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "terminationGracePeriodSeconds": 300,
                "containers": [controller],
                "volumes": [
                    {"name": "webhook-cert", "secret": {"secretName": "ingress-nginx-admission"}},
                    dict(TMP_VOLUME),
                    {"name": "nginx-conf", "emptyDir": {}},
                ],
            },
        ),
        created=at("2025-02-13T08:55:31"),
        rollouts=[at("2025-02-13T08:55:31"), at("2025-11-05T10:21:09"), at("2026-10-14T11:02:52")],
        replicas=2,
        labels=labels,
        annotations={
            "meta.helm.sh/release-name": "ingress-nginx",
            "meta.helm.sh/release-namespace": ns,
        },
    )
    ip = "10.96.118.40"
    service(
        c,
        ns,
        "ingress-nginx-controller",
        at("2025-02-13T08:55:31"),
        INGRESS_NGINX_PODS | {"app.kubernetes.io/instance": "ingress-nginx"},
        [
            {"name": "http", "port": 80, "targetPort": "http", "nodePort": 31380},
            {"name": "https", "port": 443, "targetPort": "https", "nodePort": 31443},
        ],
        cluster_ip=ip,
        labels=labels,
        annotations={
            "meta.helm.sh/release-name": "ingress-nginx",
            "meta.helm.sh/release-namespace": ns,
            "oci.oraclecloud.com/load-balancer-type": "nlb",
            "oci.oraclecloud.com/security-rule-management-mode": "NSG",
            "oci.oraclecloud.com/oci-backend-network-security-group": ocid(
                c, "networksecuritygroup"
            ),
            "oci-network-load-balancer.oraclecloud.com/oci-network-security-groups": ocid(
                c, "networksecuritygroup"
            ),
        },
        spec={
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32111,
            "allocateLoadBalancerNodePorts": True,
        },
        status={"loadBalancer": {"ingress": [{"ip": "203.0.113.47", "ipMode": "VIP"}]}},
    )
    service(
        c,
        ns,
        "ingress-nginx-controller-admission",
        at("2025-02-13T08:55:31"),
        INGRESS_NGINX_PODS | {"app.kubernetes.io/instance": "ingress-nginx"},
        [{"name": "https-webhook", "port": 443, "targetPort": "webhook"}],
        labels=labels,
    )

    for name, image, port, args in (
        (
            "cert-manager",
            "cert-manager",
            9402,
            [
                "--v=2",
                "--cluster-resource-namespace=$(POD_NAMESPACE)",
                "--leader-election-namespace=platform",
                "--acme-http01-solver-image="
                + IMAGES["cert-manager"].repo.replace("controller", "acmesolver")
                + ":v1.16.1",
            ],
        ),
        (
            "cert-manager-webhook",
            "cert-manager-webhook",
            10250,
            [
                "--v=2",
                "--secure-port=10250",
                "--dynamic-serving-ca-secret-namespace=$(POD_NAMESPACE)",
                "--dynamic-serving-ca-secret-name=cert-manager-webhook-ca",
            ],
        ),
    ):
        labels = {
            "app.kubernetes.io/name": name.replace("cert-manager-", "")
            if name != "cert-manager"
            else "cert-manager",
            "app.kubernetes.io/instance": "cert-manager",
            "app.kubernetes.io/component": "controller" if name == "cert-manager" else "webhook",
            "app.kubernetes.io/version": "v1.16.1",
            "helm.sh/chart": "cert-manager-v1.16.1",
            "app.kubernetes.io/managed-by": "Helm",
        }
        container = {
            "name": name.replace("cert-manager", "cert-manager-controller")
            if name == "cert-manager"
            else name,
            "image": c.ref(IMAGES[image], "pinned"),
            "args": args,
            "env": [
                {
                    "name": "POD_NAMESPACE",
                    "valueFrom": {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
                    },
                }
            ],
            "ports": [
                {
                    "name": "http-metrics" if name == "cert-manager" else "https",
                    "containerPort": port,
                }
            ],
            "resources": {
                "requests": {"cpu": "10m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            },
            "securityContext": dict(HARDENED),
        }
        deployment(
            c,
            ns,
            name,
            template(
                labels,
                {
                    "serviceAccountName": name,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "enableServiceLinks": False,
                    "containers": [container],
                },
            ),
            created=at("2025-02-13T09:02:17"),
            rollouts=[at("2025-02-13T09:02:17"), at("2026-09-02T08:15:22")],
            replicas=1,
            labels=labels,
            annotations={
                "meta.helm.sh/release-name": "cert-manager",
                "meta.helm.sh/release-namespace": ns,
            },
        )
        service(
            c,
            ns,
            name,
            at("2025-02-13T09:02:17"),
            {
                k: labels[k]
                for k in (
                    "app.kubernetes.io/name",
                    "app.kubernetes.io/instance",
                    "app.kubernetes.io/component",
                )
            },
            [
                {
                    "name": "tcp-prometheus-servicemonitor" if name == "cert-manager" else "https",
                    "port": port if name == "cert-manager" else 443,
                    "targetPort": port,
                }
            ],
            labels=labels,
        )

    # The admin tool, lifted from the old VM setup in February 2025: it runs as root, privileged,
    # on the host network, and talks to the node's container runtime socket for "backups".
    labels = {"app": "shop-admin", "tier": "internal"}
    admin = {
        "name": "admin",
        "image": c.ref(IMAGES["shop-admin"], "pinned"),
        "envFrom": [{"secretRef": {"name": "shop-admin-env"}}],
        "env": [{"name": "ADMIN_CONFIG", "value": "/etc/shop-admin/admin.ini"}],
        "ports": [{"name": "http", "containerPort": 80}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "securityContext": {
            "runAsUser": 0,
            "privileged": True,
            "capabilities": {"add": ["NET_ADMIN"]},
        },
        "volumeMounts": [
            {"name": "docker-sock", "mountPath": "/var/run/docker.sock"},
            {"name": "config", "mountPath": "/etc/shop-admin"},
        ],
    }
    deployment(
        c,
        ns,
        "shop-admin",
        template(
            labels,
            {
                "serviceAccountName": "shop-admin",
                "hostNetwork": True,
                "dnsPolicy": "ClusterFirstWithHostNet",
                "imagePullSecrets": [{"name": "ocir-pull"}],
                "containers": [admin],
                "volumes": [
                    {
                        "name": "docker-sock",
                        "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"},
                    },
                    {"name": "config", "configMap": {"name": "shop-admin-config"}},
                ],
            },
        ),
        created=at("2025-02-20T17:11:48"),
        rollouts=[at("2025-02-20T17:11:48"), at("2025-06-11T19:40:02")],
        replicas=1,
        labels=labels,
    )
    service(
        c,
        ns,
        "shop-admin",
        at("2025-02-20T17:11:48"),
        labels,
        [{"name": "http", "port": 80, "targetPort": 80}],
        labels=labels,
    )
    # It had TLS until its certificate expired in September; the tls section was deleted instead
    # of renewing it, so the admin UI is now plain HTTP.
    ingress(
        c,
        ns,
        "shop-admin",
        at("2025-02-20T17:20:03"),
        [("admin.shopco.example", [("/", "shop-admin", 80)])],
        None,
        annotations={"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0"},
        generation=4,
        updated=at("2026-09-30T07:12:40"),
    )

    rbac(
        c,
        "Role",
        "ingress-nginx",
        ns,
        at("2025-02-13T08:55:31"),
        {
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
                {
                    "apiGroups": [""],
                    "resources": ["configmaps", "pods", "secrets", "endpoints"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": ["ingress-nginx-leader"],
                    "verbs": ["get", "update"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create"],
                },
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ]
        },
        **helm("ingress-nginx", "ingress-nginx-4.11.3"),
    )
    binding(
        c,
        "ingress-nginx",
        ("Role", "ingress-nginx"),
        [service_account(ns, "ingress-nginx")],
        at("2025-02-13T08:55:31"),
        namespace=ns,
        **helm("ingress-nginx", "ingress-nginx-4.11.3"),
    )
    rbac(
        c,
        "Role",
        "cert-manager:leaderelection",
        ns,
        at("2025-02-13T09:02:17"),
        {
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": ["cert-manager-controller"],
                    "verbs": ["get", "update", "patch"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create"],
                },
            ]
        },
        **helm("cert-manager", "cert-manager-v1.16.1"),
    )
    binding(
        c,
        "cert-manager:leaderelection",
        ("Role", "cert-manager:leaderelection"),
        [service_account(ns, "cert-manager")],
        at("2025-02-13T09:02:17"),
        namespace=ns,
        **helm("cert-manager", "cert-manager-v1.16.1"),
    )


# --- batch: the nightly report and a one-off migration ------------------------------------------


def batch(c: Cluster) -> None:
    ns = "batch"
    created = at("2025-06-03T11:22:40")
    pull_secret(c, ns, created)
    c.secret(
        ns,
        "report-db",
        created,
        "Opaque",
        {"username": "reporting", "password": c.hex(24)},
        annotations={"okeguard.io/rotated-at": "2026-11-02T06:00:00Z"},
        updated=at("2026-11-02T06:00:00"),
    )
    # The accounting partner's SFTP upload key, pasted into a ConfigMap "for now".
    c.add(
        "v1",
        "ConfigMap",
        "nightly-report-config",
        ns,
        created,
        {
            "data": {
                "report.yaml": "timezone: Europe/Berlin\nsources:\n  orders: postgres.data/orders\n  catalog: postgres.data/catalog\nupload:\n  host: sftp.accounting-partner.example\n  user: shopco\n  key: /etc/report/sftp_ed25519\n",
                "sftp_ed25519": c.certs.openssh_key(),
            }
        },
        labels={"app.kubernetes.io/name": "nightly-report"},
        updated=at("2025-06-03T11:40:19"),
    )
    # It needed to list pods once, so the namespace's default ServiceAccount got "view".
    binding(
        c,
        "report-reader",
        ("ClusterRole", "view"),
        [service_account(ns, "default")],
        at("2025-06-04T08:15:00"),
        namespace=ns,
    )

    labels = app_labels("nightly-report", "reporting", "2.4.1", "batch")
    report = {
        "name": "report",
        "image": c.ref(IMAGES["report"], "tag"),
        "args": ["--config", "/etc/report/report.yaml", "--date", "yesterday"],
        "env": [
            {"name": "DB_HOST", "value": "postgres.data"},
            from_secret("DB_USER", "report-db", "username"),
            from_secret("DB_PASSWORD", "report-db", "password"),
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
        "securityContext": dict(HARDENED),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": "/etc/report", "readOnly": True},
        ],
    }
    job_template = template(
        labels,
        {
            "restartPolicy": "Never",
            "securityContext": HARDENED_POD,
            "imagePullSecrets": [{"name": "ocir-pull"}],
            "containers": [report],
            "volumes": [
                dict(TMP_VOLUME),
                {
                    "name": "config",
                    "configMap": {"name": "nightly-report-config", "defaultMode": 0o400},
                },
            ],
        },
    )
    job_template = pod_template_defaults(job_template, restart_policy="Never")
    schedule_times = [at(f"2026-11-{day}T01:30:00") for day in (17, 18, 19)]
    cron = c.add(
        "batch/v1",
        "CronJob",
        "nightly-report",
        ns,
        at("2025-06-03T11:41:02"),
        {
            "spec": {
                "schedule": "30 2 * * *",
                "timeZone": "Europe/Berlin",
                "concurrencyPolicy": "Forbid",
                "suspend": False,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "metadata": {"labels": dict(job_template["metadata"]["labels"])},
                    "spec": {"backoffLimit": 2, "template": job_template},
                },
            },
            "status": {
                "lastScheduleTime": ts(schedule_times[-1]),
                "lastSuccessfulTime": ts(schedule_times[-1] + timedelta(minutes=14, seconds=38)),
            },
        },
        labels=labels,
        generation=3,
        updated=schedule_times[-1] + timedelta(minutes=14, seconds=40),
    )
    for when in schedule_times:
        job_name = f"nightly-report-{int(when.timestamp()) // 60}"
        job(
            c,
            ns,
            job_name,
            job_template,
            created=when,
            duration=timedelta(minutes=14, seconds=c.rng.randint(5, 55)),
            owner=cron,
            labels=labels,
        )

    # A one-off schema migration for orders, run from Flyway's public image.
    labels = {"app.kubernetes.io/name": "orders-migrate", "app.kubernetes.io/part-of": "checkout"}
    migrate = {
        "name": "flyway",
        "image": c.ref(IMAGES["flyway"], "tag"),
        "args": [
            "-url=jdbc:postgresql://postgres.data:5432/orders",
            "-locations=filesystem:/flyway/sql",
            "migrate",
        ],
        "env": [
            from_secret("FLYWAY_USER", "report-db", "username"),
            from_secret("FLYWAY_PASSWORD", "report-db", "password"),
        ],
        "resources": {
            "requests": {"cpu": "200m", "memory": "512Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": dict(HARDENED),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "sql", "mountPath": "/flyway/sql", "readOnly": True},
        ],
    }
    job(
        c,
        ns,
        "orders-migrate-v42",
        template(
            labels,
            {
                "automountServiceAccountToken": False,
                "securityContext": HARDENED_POD,
                "containers": [migrate],
                "volumes": [
                    dict(TMP_VOLUME),
                    {"name": "sql", "configMap": {"name": "orders-migrations-v42"}},
                ],
            },
        ),
        created=at("2026-11-12T14:03:27"),
        duration=timedelta(seconds=48),
        labels=labels,
    )
    c.add(
        "v1",
        "ConfigMap",
        "orders-migrations-v42",
        ns,
        at("2026-11-12T14:03:20"),
        {
            "data": {
                "V42__order_gift_cards.sql": "ALTER TABLE orders ADD COLUMN gift_card_id uuid NULL;\nCREATE INDEX CONCURRENTLY orders_gift_card_idx ON orders (gift_card_id);\n",
            }
        },
        labels=labels,
    )
