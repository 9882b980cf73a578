"""shop-legacy: ShopCo's old staging cluster, the demo fleet's second cluster (``legacy.jsonl``).

It was created in September 2020, before OKE had VCN-native clusters, and never migrated: it has
no ``endpoint_config``, so its Kubernetes API endpoint is public and cannot be made private. It
still runs the nightly data export against the production read replica, so nobody dared to
rebuild it. Everything else about it is in order, so the scan reports little more than the
legacy endpoint: a small, clean cluster next to shop-prod's story.

It has its own seeded RNG (:data:`SEED`), so it never disturbs ``snapshot.jsonl``'s bytes, and it
reuses the same builders and conventions as shop-prod.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from builders import Cluster, Doc, Image, at, pod_template_defaults, ts
from controllers import daemonset, deployment, job
from kit import (
    CAPTURED_AT,
    HARDENED,
    HARDENED_POD,
    IMAGES,
    MIRROR,
    OKE,
    REGION,
    SHOP,
    TMP_VOLUME,
    app_container,
    app_labels,
    default_deny,
    from_namespace,
    from_secret,
    network_policy,
    ocid,
    probe,
    pull_secret,
    service,
    template,
)
from oke_system import node_infos, node_template

from okeguard.inventory.model import KubeconfigUser
from okeguard.inventory.oci_model import (
    FlowLog,
    IcmpMatch,
    NodePool,
    Nsg,
    OciState,
    OkeCluster,
    SecurityList,
    SecurityRule,
    Subnet,
    WorkerNode,
)

SEED = 20200915
CLUSTER = "shop-legacy"
CLUSTER_CREATED = at("2020-09-15T10:31:27")
NODES_CREATED = at("2026-11-03T07:15:44")  # pool-staging cycled onto the October node image
# Kept current: the control plane and the pool were upgraded to the newest version OKE offers.
KUBERNETES_VERSION = "v1.32.1"
VCN_CIDR = "10.1.0.0/16"
TCP = "6"
ICMP = "1"

LEGACY_IMAGES = {
    "kube-proxy": Image(f"{OKE}/oke-public-kube-proxy", "v1.32.1-1", 94_207_000),
    "calico-node": Image(f"{MIRROR}/calico/node", "v3.28.2", 389_671_000),
    "calico-cni": Image(f"{MIRROR}/calico/cni", "v3.28.2", 209_318_000),
    "fluent-bit": Image(f"{MIRROR}/fluent/fluent-bit", "3.1.9", 86_442_000),
    "node-exporter": Image(f"{MIRROR}/prometheus/node-exporter", "v1.8.2", 23_126_000),
    "data-export": Image(f"{SHOP}/data-export", "1.6.2", 142_905_000),
}


# --- kube-system --------------------------------------------------------------------------------


def _host(name: str, path: str, kind: str = "") -> Doc:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def kube_system(c: Cluster, created: Any) -> None:
    """What OKE runs (CoreDNS, kube-proxy, flannel), Calico in policy-only mode (installed with
    the cluster, as Oracle's docs said for flannel clusters), and the node agents the old
    platform team set up in 2020: Fluent Bit ships container logs to OCI Logging, node-exporter
    is scraped by the operations team's Prometheus VM. Node agents need the host, which is why
    they live in ``kube-system``; they still drop what they do not need."""
    ns = "kube-system"
    oke = {"addonmanager.kubernetes.io/mode": "Reconcile"}
    for sa in ("coredns", "kube-proxy", "flannel", "calico-node"):
        c.service_account(ns, sa, created, labels=oke if sa != "calico-node" else None)
    for sa in ("fluent-bit", "node-exporter"):
        c.service_account(ns, sa, at("2020-09-16T09:12:40"), automount=sa == "fluent-bit")

    dns_labels = {"k8s-app": "kube-dns"}
    deployment(
        c,
        ns,
        "coredns",
        template(
            dns_labels,
            {
                "serviceAccountName": "coredns",
                "priorityClassName": "system-cluster-critical",
                "containers": [
                    {
                        "name": "coredns",
                        "image": c.ref(IMAGES["coredns"], "tag"),
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53},
                        ],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": True,
                        },
                        "livenessProbe": probe("/health", port=8080, delay=60),
                    }
                ],
            },
        ),
        created=created,
        rollouts=[created, NODES_CREATED - timedelta(minutes=9)],
        replicas=2,
        labels={**dns_labels, "kubernetes.io/name": "CoreDNS", **oke},
    )
    service(
        c,
        ns,
        "kube-dns",
        created,
        dns_labels,
        [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "targetPort": 53},
        ],
        cluster_ip="10.96.5.5",
        labels={**dns_labels, "kubernetes.io/name": "CoreDNS", **oke},
    )

    node_critical = {
        "priorityClassName": "system-node-critical",
        "hostNetwork": True,
        "tolerations": [{"operator": "Exists"}],
    }
    daemonset(
        c,
        ns,
        "kube-proxy",
        template(
            {"k8s-app": "kube-proxy"},
            {
                **node_critical,
                "serviceAccountName": "kube-proxy",
                "containers": [
                    {
                        "name": "kube-proxy",
                        "image": c.ref(LEGACY_IMAGES["kube-proxy"], "tag"),
                        "command": [
                            "/usr/local/bin/kube-proxy",
                            "--hostname-override=$(NODE_NAME)",
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "lib-modules", "mountPath": "/lib/modules"}],
                    }
                ],
                "volumes": [_host("lib-modules", "/lib/modules")],
            },
        ),
        created=created,
        labels={"k8s-app": "kube-proxy", **oke},
        generation=9,
    )
    daemonset(
        c,
        ns,
        "kube-flannel-ds",
        template(
            {"app": "flannel", "tier": "node"},
            {
                **node_critical,
                "serviceAccountName": "flannel",
                "containers": [
                    {
                        "name": "kube-flannel",
                        "image": c.ref(IMAGES["flannel"], "tag"),
                        "command": ["/opt/bin/flanneld"],
                        "args": ["--ip-masq", "--kube-subnet-mgr"],
                        "securityContext": {
                            "privileged": False,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
                        },
                        "volumeMounts": [{"name": "run", "mountPath": "/run/flannel"}],
                    }
                ],
                "volumes": [_host("run", "/run/flannel")],
            },
        ),
        created=created,
        labels={"app": "flannel", "tier": "node", **oke},
        generation=6,
    )
    daemonset(
        c,
        ns,
        "calico-node",
        template(
            {"k8s-app": "calico-node"},
            {
                **node_critical,
                "serviceAccountName": "calico-node",
                "initContainers": [
                    {
                        "name": "install-cni",
                        "image": c.ref(LEGACY_IMAGES["calico-cni"], "pinned"),
                        "command": ["/opt/cni/bin/install"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "cni-net-dir", "mountPath": "/host/etc/cni/net.d"}
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "calico-node",
                        "image": c.ref(LEGACY_IMAGES["calico-node"], "pinned"),
                        "env": [
                            {"name": "DATASTORE_TYPE", "value": "kubernetes"},
                            {"name": "CALICO_NETWORKING_BACKEND", "value": "none"},
                            {"name": "CLUSTER_TYPE", "value": "k8s"},
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "var-run-calico", "mountPath": "/var/run/calico"},
                            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                        ],
                    }
                ],
                "volumes": [
                    _host("cni-net-dir", "/etc/cni/net.d"),
                    _host("var-run-calico", "/var/run/calico"),
                    _host("lib-modules", "/lib/modules"),
                ],
            },
        ),
        created=created + timedelta(minutes=38),
        labels={"k8s-app": "calico-node"},
        generation=7,
    )

    agent_security = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    daemonset(
        c,
        ns,
        "fluent-bit",
        template(
            {"app.kubernetes.io/name": "fluent-bit"},
            {
                "serviceAccountName": "fluent-bit",
                "priorityClassName": "system-node-critical",
                "tolerations": [{"operator": "Exists"}],
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "fluent-bit",
                        "image": c.ref(LEGACY_IMAGES["fluent-bit"], "pinned"),
                        "args": ["--config=/fluent-bit/etc/fluent-bit.yaml"],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "128Mi"},
                        },
                        # reads the root-owned logs under /var/log, so it runs as root
                        "securityContext": {**agent_security, "runAsUser": 0},
                        "volumeMounts": [
                            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
                            {"name": "state", "mountPath": "/var/fluent-bit/state"},
                        ],
                    }
                ],
                "volumes": [
                    _host("varlog", "/var/log"),
                    _host("state", "/var/fluent-bit/state", "DirectoryOrCreate"),
                ],
            },
        ),
        created=at("2020-09-16T09:14:02"),
        labels={"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/part-of": "logging"},
        generation=11,
    )
    daemonset(
        c,
        ns,
        "node-exporter",
        template(
            {"app.kubernetes.io/name": "node-exporter"},
            {
                "serviceAccountName": "node-exporter",
                "hostNetwork": True,
                "hostPID": True,
                "tolerations": [{"operator": "Exists"}],
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 65534,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "node-exporter",
                        "image": c.ref(LEGACY_IMAGES["node-exporter"], "pinned"),
                        "args": ["--path.rootfs=/host", "--web.listen-address=:9100"],
                        "ports": [{"name": "metrics", "containerPort": 9100}],
                        "resources": {
                            "requests": {"cpu": "20m", "memory": "32Mi"},
                            "limits": {"memory": "64Mi"},
                        },
                        "securityContext": agent_security,
                        "volumeMounts": [
                            {
                                "name": "root",
                                "mountPath": "/host",
                                "readOnly": True,
                                "mountPropagation": "HostToContainer",
                            }
                        ],
                    }
                ],
                "volumes": [_host("root", "/")],
            },
        ),
        created=at("2020-09-16T09:16:48"),
        labels={
            "app.kubernetes.io/name": "node-exporter",
            "app.kubernetes.io/part-of": "monitoring",
        },
        generation=8,
    )


# --- staging ------------------------------------------------------------------------------------


def staging(c: Cluster) -> None:
    """Staging copies of the storefront and the catalog, and the nightly data export."""
    ns = "staging"
    created = at("2020-09-15T11:02:19")
    pull_secret(c, ns, created)
    # The export's read-only user on the production read replica, rotated with the replica's
    # credentials at the start of November.
    c.secret(
        ns,
        "export-db",
        created,
        "Opaque",
        {"username": "export_ro", "password": c.hex(24)},
        annotations={"okeguard.io/rotated-at": "2026-11-02T06:00:00Z"},
        updated=at("2026-11-02T06:00:00"),
    )
    for sa in ("web", "catalog", "data-export"):
        c.service_account(ns, sa, created, automount=False, image_pull_secrets=["ocir-pull"])

    for name, image, version, port in (
        ("web", IMAGES["web"], "4.12.0", 8080),
        ("catalog", IMAGES["catalog"], "2.7.3", 8081),
    ):
        labels = app_labels(name, "storefront", version, "frontend" if name == "web" else "api")
        deployment(
            c,
            ns,
            name,
            template(
                labels,
                {
                    "serviceAccountName": name,
                    "securityContext": HARDENED_POD,
                    "containers": [app_container(name, c.ref(image, "pinned"), port=port)],
                    "volumes": [dict(TMP_VOLUME)],
                },
            ),
            created=created + timedelta(minutes=3),
            rollouts=[at("2026-09-30T13:20:05"), at("2026-11-12T10:41:37")],
            replicas=1,
            labels=labels,
        )
        service(
            c,
            ns,
            name,
            created + timedelta(minutes=3),
            {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name},
            [{"name": "http", "port": 80, "targetPort": "http"}],
            labels=labels,
        )

    default_deny(c, ns, created)
    network_policy(
        c,
        ns,
        "catalog-from-web",
        created,
        {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "catalog"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [from_namespace(ns, {"app.kubernetes.io/name": "web"})],
                    "ports": [{"protocol": "TCP", "port": 8081}],
                }
            ],
        },
    )

    # The nightly data export: reads yesterday's orders from the production read replica and
    # writes them to Object Storage for the finance team. It is why the cluster still exists.
    labels = app_labels("data-export", "reporting", "1.6.2", "batch")
    export = {
        "name": "export",
        "image": c.ref(LEGACY_IMAGES["data-export"], "pinned"),
        "args": ["--since", "yesterday", "--bucket", "shopco-finance-exports"],
        "env": [
            {"name": "DB_HOST", "value": "postgres-replica.prod.shopco.internal"},
            from_secret("DB_USER", "export-db", "username"),
            from_secret("DB_PASSWORD", "export-db", "password"),
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": dict(HARDENED),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    job_template = pod_template_defaults(
        template(
            labels,
            {
                "restartPolicy": "Never",
                "serviceAccountName": "data-export",
                "securityContext": HARDENED_POD,
                "containers": [export],
                "volumes": [dict(TMP_VOLUME)],
            },
        ),
        restart_policy="Never",
    )
    last_run = at("2026-11-20T02:00:00")  # 03:00 in Berlin
    duration = timedelta(minutes=22, seconds=c.rng.randint(5, 55))
    cron = c.add(
        "batch/v1",
        "CronJob",
        "data-export",
        ns,
        at("2020-10-02T15:47:11"),
        {
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": "Europe/Berlin",
                "concurrencyPolicy": "Forbid",
                "suspend": False,
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {
                    "metadata": {"labels": dict(job_template["metadata"]["labels"])},
                    "spec": {"backoffLimit": 1, "template": job_template},
                },
            },
            "status": {
                "lastScheduleTime": ts(last_run),
                "lastSuccessfulTime": ts(last_run + duration),
            },
        },
        labels=labels,
        generation=14,
        updated=last_run + duration,
    )
    job(
        c,
        ns,
        f"data-export-{int(last_run.timestamp()) // 60}",
        job_template,
        created=last_run,
        duration=duration,
        owner=cron,
        labels=labels,
    )


# --- the OCI side -------------------------------------------------------------------------------


def _rule(direction: str, peer: str, protocol: str = TCP, **kw: Any) -> SecurityRule:
    return SecurityRule(direction=direction, protocol=protocol, peer=peer, **kw)  # type: ignore[arg-type]


def oci_state(c: Cluster, cluster_ocid: str, compartment: str) -> OciState:
    """A legacy cluster (no endpoint_config) whose network is otherwise what P3, P4 and P16 ask
    for: workers in a private subnet behind an NSG, a flow log on the whole VCN."""
    vcn = ocid(c, "vcn")
    sn = {key: ocid(c, "subnet") for key in ("workers", "lb")}
    sl = {key: ocid(c, "securitylist") for key in ("workers", "lb")}
    nsg_id = ocid(c, "networksecuritygroup")
    security_lists = {
        sl["workers"]: SecurityList(
            sl["workers"],
            "seclist-staging-workers",
            vcn,
            c.hex(64),
            (
                _rule("ingress", VCN_CIDR, "all", description="inside the VCN"),
                _rule(
                    "ingress",
                    "0.0.0.0/0",
                    ICMP,
                    description="path MTU discovery",
                    icmp=IcmpMatch(3, 4),
                ),
                _rule("egress", "0.0.0.0/0", "all", description="all egress"),
            ),
        ),
        sl["lb"]: SecurityList(sl["lb"], "seclist-staging-lb", vcn, c.hex(64), ()),
    }
    subnets = {
        sn[key]: Subnet(sn[key], name, vcn, cidr, private, (sl[key],), c.hex(64))
        for key, name, cidr, private in (
            ("workers", "subnet-staging-workers", "10.1.10.0/24", True),
            ("lb", "subnet-staging-lb", "10.1.20.0/24", True),
        )
    }
    nsgs = {
        nsg_id: Nsg(
            nsg_id,
            "nsg-staging-workers",
            vcn,
            c.hex(64),
            (
                _rule(
                    "ingress",
                    nsg_id,
                    "all",
                    peer_type="NETWORK_SECURITY_GROUP",
                    description="node to node",
                ),
                _rule("egress", "0.0.0.0/0", "all", description="all egress"),
            ),
        )
    }
    cluster = OkeCluster(
        id=cluster_ocid,
        name=CLUSTER,
        compartment_id=compartment,
        vcn_id=vcn,
        kubernetes_version=KUBERNETES_VERSION,
        available_upgrades=(),
        endpoint=None,  # created in 2020, before VCN-native clusters: no endpoint_config
        cni_type="FLANNEL_OVERLAY",
        lb_subnet_ids=(sn["lb"],),
        etag=c.hex(64),
    )
    nodes = tuple(
        WorkerNode(
            id=d["spec"]["providerID"],
            name=d["metadata"]["labels"]["displayName"],
            private_ip=d["metadata"]["labels"]["internal_addr"],
            public_ip=None,
        )
        for d in c.docs
        if d["kind"] == "Node"
    )
    pool = NodePool(
        id=ocid(c, "nodepool"),
        name="pool-staging",
        kubernetes_version=KUBERNETES_VERSION,
        subnet_ids=(sn["workers"],),
        nsg_ids=(nsg_id,),
        image_id=ocid(c, "image"),
        image_name="Oracle-Linux-8.10-2026.10.08-0-OKE-1.32.1-815",
        image_created=at("2026-10-09T04:31:52"),
        nodes=nodes,
        etag=c.hex(64),
    )
    flow_log = FlowLog(
        id=ocid(c, "log"), name="flowlogs-staging-vcn", resource_id=vcn, enabled=True, active=True
    )
    return OciState(
        region=REGION,
        cluster=cluster,
        node_pools=(pool,),
        subnets=subnets,
        security_lists=security_lists,
        nsgs=nsgs,
        flow_logs=(flow_log,),
        audit_retention_days=90,  # tenancy-wide: the same setting shop-prod reports
        control_plane_log_enabled=True,
        vault_secrets=(),
    )


# --- the cluster --------------------------------------------------------------------------------


def build() -> tuple[list[Doc], list[KubeconfigUser], OciState, str]:
    """shop-legacy's documents, its kubeconfig user, its OCI state and its API server URL."""
    c = Cluster(SEED, CLUSTER_CREATED, CAPTURED_AT)
    c.node_created = NODES_CREATED
    cluster_ocid = ocid(c, "cluster")
    compartment = ocid(c, "compartment", region=None)
    for address, cidr, first in (("10.1.10.12", "10.244.0.", 1), ("10.1.10.29", "10.244.0.", 129)):
        c.add_node(address, cidr, first)

    cluster_ca = c.certs.authority(
        "cluster-ca",
        "Oracle Container Engine for Kubernetes",
        CLUSTER_CREATED,
        CLUSTER_CREATED + timedelta(days=10 * 365),
    )
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        c.namespace(name, CLUSTER_CREATED, cluster_ca.cert_pem)
    c.namespace(
        "staging",
        at("2020-09-15T11:02:14"),
        cluster_ca.cert_pem,
        {
            "shopco.example/team": "platform",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        },
    )
    service(
        c,
        "default",
        "kubernetes",
        CLUSTER_CREATED,
        {},
        [{"name": "https", "port": 443, "targetPort": 6443}],
        cluster_ip="10.96.0.1",
        labels={"component": "apiserver", "provider": "kubernetes"},
    )

    kube_system(c, CLUSTER_CREATED + timedelta(minutes=5))
    staging(c)

    node = node_template(compartment)
    node["metadata"]["labels"].update(
        {
            "name": "pool-staging",
            "node.info/kubeletVersion": "v1.32",
            "beta.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
            "node.kubernetes.io/instance-type": "VM.Standard.E4.Flex",
        }
    )
    node["metadata"]["labels"].pop("node.info.ds_proxymux_client")
    node["status"]["nodeInfo"].update(
        kubeProxyVersion=KUBERNETES_VERSION,
        kubeletVersion=KUBERNETES_VERSION,
        containerRuntimeVersion="cri-o://1.32.1-1.el8",
    )
    c.node_docs(node, node_infos(c, cluster_ocid), [IMAGES["pause"]])

    oci = oci_state(c, cluster_ocid, compartment)
    user = KubeconfigUser(
        name=f"user-{cluster_ocid[-11:]}",
        auth=("exec",),
        exec_command="oci",
        exec_args=(
            "ce",
            "cluster",
            "generate-token",
            "--cluster-id",
            cluster_ocid,
            "--region",
            REGION,
        ),
    )
    server = f"https://c{cluster_ocid[-11:]}.{REGION}.clusters.oci.oraclecloud.com:6443"
    return c.docs, [user], oci, server
