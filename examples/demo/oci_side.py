"""The OCI side of shop-prod: what the OCI APIs say about the cluster, for the ``oke.*`` checks.

:func:`load_balancers` adds the LoadBalancer Services that only make sense next to the OCI side
(the admin tool's forgotten load balancer, the partner feed, the warehouse's internal endpoint);
:func:`oci_state` builds the :class:`OciState` a live ``okeguard snapshot`` would read through the
OCI SDK: the cluster, its VCN (subnets, security lists, NSGs, flow logs), the two node pools, the
tenancy's audit retention, the control-plane log and the shop's Vault secrets.

Both run after the Kubernetes objects exist, so the OCIDs, node names and IPs agree with what the
Nodes, the ingress-nginx Service and the kubeconfig already say, and everything else comes from
the same seeded RNG.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from builders import Cluster, Doc, at
from kit import CLUSTER, CLUSTER_CREATED, REGION, ocid, service

from okeguard.inventory.oci_model import (
    ClusterEndpoint,
    Direction,
    FlowLog,
    IcmpMatch,
    NodePool,
    Nsg,
    OciState,
    OkeCluster,
    PortRange,
    SecurityList,
    SecurityRule,
    Subnet,
    VaultSecret,
    WorkerNode,
)

KUBERNETES_VERSION = "v1.31.1"  # what the control plane and pool-apps run (and the Nodes report)
LEGACY_VERSION = "v1.29.10"

SECURITY_LIST_MODE = "service.beta.kubernetes.io/oci-load-balancer-security-list-management-mode"
RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"
INTERNAL = "service.beta.kubernetes.io/oci-load-balancer-internal"
SSL_PORTS = "service.beta.kubernetes.io/oci-load-balancer-ssl-ports"
TLS_SECRET = "service.beta.kubernetes.io/oci-load-balancer-tls-secret"
LB_NSGS = "oci.oraclecloud.com/oci-network-security-groups"
SUBNET1 = "service.beta.kubernetes.io/oci-load-balancer-subnet1"
BACKEND_NSG = "oci.oraclecloud.com/oci-backend-network-security-group"
NLB_NSGS = "oci-network-load-balancer.oraclecloud.com/oci-network-security-groups"

TCP = "6"
ICMP = "1"
VCN_CIDR = "10.0.0.0/16"
PARTNER = "192.0.2.64/26"  # the affiliate partner that pulls the search feed
NODE_PORTS = PortRange(30000, 32767)


def _find(docs: list[Doc], kind: str, namespace: str | None, name: str) -> Doc:
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == kind and meta.get("namespace") == namespace and meta["name"] == name:
            return doc
    raise LookupError(f"{kind} {namespace}/{name}")


def _etag(c: Cluster) -> str:
    return c.hex(64)


def _node_port(c: Cluster) -> int:
    return c.rng.randint(30000, 32767)


# --- Kubernetes: the LoadBalancer Services ------------------------------------------------------


def load_balancers(
    c: Cluster, internal_ca: Any, tls_secret: Any, subnets: dict[str, str], nsgs: dict[str, str]
) -> None:
    """Three LoadBalancer Services beside ingress-nginx's network load balancer.

    ``subnets`` and ``nsgs`` map the short names used here to OCIDs (see :func:`network_ids`).
    """
    docs = c.docs
    # The admin tool's own load balancer, from the VM lift in February 2025: it predates the
    # Ingress and nobody removed it. Classic LB, security lists managed by the CCM ("All", the
    # legacy default), public, TCP 443 passed through to the tool's own TLS.
    admin = _find(docs, "Service", "platform", "shop-admin")
    service(
        c,
        "platform",
        "shop-admin-lb",
        at("2025-02-20T17:12:30"),
        dict(admin["spec"]["selector"]),
        [{"name": "https", "port": 443, "targetPort": 443, "nodePort": _node_port(c)}],
        labels=dict(admin["metadata"]["labels"]),
        annotations={
            SECURITY_LIST_MODE: "All",
            "service.beta.kubernetes.io/oci-load-balancer-shape": "flexible",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-min": "10",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-max": "10",
        },
        spec={
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
        },
        status={"loadBalancer": {"ingress": [{"ip": "203.0.113.82", "ipMode": "VIP"}]}},
    )
    # The affiliate partner's search feed: restricted to the partner's range and served over TLS
    # by the load balancer, but created from an old snippet without a rule-management mode, so
    # the CCM writes its rules into the security lists.
    search = _find(docs, "Service", "storefront", "search")
    service(
        c,
        "storefront",
        "search-partner",
        at("2026-08-03T09:41:27"),
        dict(search["spec"]["selector"]),
        [{"name": "https", "port": 443, "targetPort": "http", "nodePort": _node_port(c)}],
        labels=dict(search["metadata"]["labels"]),
        annotations={
            "service.beta.kubernetes.io/oci-load-balancer-shape": "flexible",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-min": "10",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-max": "100",
            SSL_PORTS: "443",
            TLS_SECRET: "shop-tls",
        },
        spec={
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
            "loadBalancerSourceRanges": [PARTNER],
        },
        status={"loadBalancer": {"ingress": [{"ip": "203.0.113.115", "ipMode": "VIP"}]}},
    )
    # The warehouse system's endpoint for orders: internal, in the private worker subnet, rules in
    # its own NSG, TLS terminated at the load balancer with a certificate from ShopCo's CA.
    orders = _find(docs, "Service", "checkout", "orders")
    cert = c.certs.server(
        internal_ca,
        ["orders-internal.shopco.internal"],
        at("2026-09-01T10:00:00"),
        at("2027-09-01T10:00:00"),
    )
    tls_secret(
        "checkout", "orders-internal-tls", at("2026-09-01T10:05:12"), cert, internal_ca.cert_pem
    )
    service(
        c,
        "checkout",
        "orders-internal",
        at("2026-09-01T10:06:40"),
        dict(orders["spec"]["selector"]),
        [{"name": "https", "port": 443, "targetPort": "http", "nodePort": _node_port(c)}],
        labels=dict(orders["metadata"]["labels"]),
        annotations={
            INTERNAL: "true",
            SUBNET1: subnets["workers"],
            RULE_MODE: "NSG",
            LB_NSGS: nsgs["orders-lb"],
            BACKEND_NSG: nsgs["backends"],
            "service.beta.kubernetes.io/oci-load-balancer-shape": "flexible",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-min": "10",
            "service.beta.kubernetes.io/oci-load-balancer-shape-flex-max": "10",
            SSL_PORTS: "443",
            TLS_SECRET: "orders-internal-tls",
        },
        spec={
            "type": "LoadBalancer",
            "externalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": True,
        },
        status={"loadBalancer": {"ingress": [{"ip": "10.0.10.200", "ipMode": "VIP"}]}},
    )


# --- OCI ----------------------------------------------------------------------------------------


def network_ids(c: Cluster, docs: list[Doc]) -> dict[str, dict[str, str]]:
    """The OCIDs of the VCN's parts. The two NSGs ingress-nginx's Service already names (its
    network load balancer's and the backends') are taken from its annotations."""
    nginx = _find(docs, "Service", "platform", "ingress-nginx-controller")["metadata"]
    vcn = ocid(c, "vcn")
    return {
        "vcn": {"shop-prod-vcn": vcn},
        "subnets": {name: ocid(c, "subnet") for name in ("api", "lb", "workers", "workers-legacy")},
        "security_lists": {
            name: ocid(c, "securitylist") for name in ("api", "lb", "workers", "workers-legacy")
        },
        "nsgs": {
            "workers": ocid(c, "networksecuritygroup"),
            "backends": nginx["annotations"][BACKEND_NSG],
            "nlb": nginx["annotations"][NLB_NSGS],
            "orders-lb": ocid(c, "networksecuritygroup"),
        },
    }


def _rule(
    direction: Direction,
    peer: str,
    protocol: str = TCP,
    ports: tuple[int, int] | None = None,
    description: str | None = None,
    peer_type: str = "CIDR_BLOCK",
    icmp: IcmpMatch | None = None,
) -> SecurityRule:
    return SecurityRule(
        direction=direction,
        protocol=protocol,
        peer=peer,
        peer_type=peer_type,
        ports=None if ports is None else PortRange(*ports),
        description=description,
        icmp=icmp,
    )


def _egress_all(description: str = "all egress") -> SecurityRule:
    return _rule("egress", "0.0.0.0/0", "all", description=description)


def oci_state(
    c: Cluster, docs: list[Doc], ids: dict[str, dict[str, str]], cluster_ocid: str, compartment: str
) -> OciState:
    """What okeguard's OCI collector reads about shop-prod at the capture time."""
    vcn = ids["vcn"]["shop-prod-vcn"]
    sn = ids["subnets"]
    sl = ids["security_lists"]
    nsg = ids["nsgs"]
    nsg_ref = "NETWORK_SECURITY_GROUP"

    # Security lists, as the quick-create wizard of February 2025 left them, plus later "fixes".
    security_lists = {
        sl["api"]: SecurityList(
            sl["api"],
            "seclist-KubernetesAPIendpoint",
            vcn,
            _etag(c),
            (
                _rule("ingress", "0.0.0.0/0", ports=(6443, 6443), description="kubectl access"),
                _rule("ingress", "10.0.10.0/24", ports=(6443, 6443), description="workers to API"),
                _rule("ingress", "10.0.10.0/24", ports=(12250, 12250), description="workers"),
                _rule("ingress", "10.0.30.0/24", ports=(6443, 6443), description="legacy workers"),
                _rule("ingress", "10.0.30.0/24", ports=(12250, 12250), description="legacy"),
                _rule(
                    "egress",
                    "all-fra-services-in-oracle-services-network",
                    TCP,
                    ports=(443, 443),
                    peer_type="SERVICE_CIDR_BLOCK",
                ),
                _rule("egress", "10.0.10.0/24", "all", description="API to workers"),
                _rule("egress", "10.0.30.0/24", "all", description="API to legacy workers"),
            ),
        ),
        sl["lb"]: SecurityList(
            sl["lb"],
            "seclist-loadbalancers",
            vcn,
            _etag(c),
            (
                _rule("ingress", "0.0.0.0/0", ports=(80, 80), description="http"),
                _rule("ingress", "0.0.0.0/0", ports=(443, 443), description="https"),
                _rule(
                    "ingress",
                    "0.0.0.0/0",
                    ports=(NODE_PORTS.min, NODE_PORTS.max),
                    description="NodePorts (copied from the NodePort how-to, 2025-03)",
                ),
                _rule("egress", "10.0.10.0/24", ports=(30000, 32767), description="to NodePorts"),
                _rule("egress", "10.0.10.0/24", ports=(10256, 10256), description="health"),
            ),
        ),
        sl["workers"]: SecurityList(
            sl["workers"],
            "seclist-workers",
            vcn,
            _etag(c),
            (
                _rule("ingress", VCN_CIDR, "all", description="inside the VCN"),
                _rule(
                    "ingress",
                    "0.0.0.0/0",
                    ICMP,
                    description="path MTU discovery",
                    icmp=IcmpMatch(3, 4),
                ),
                _egress_all(),
            ),
        ),
        sl["workers-legacy"]: SecurityList(
            sl["workers-legacy"],
            "seclist-workers-public",
            vcn,
            _etag(c),
            (
                _rule("ingress", VCN_CIDR, "all", description="inside the VCN"),
                _rule("ingress", "0.0.0.0/0", ports=(22, 22), description="ssh for the migration"),
                _rule(
                    "ingress",
                    "0.0.0.0/0",
                    ICMP,
                    description="path MTU discovery",
                    icmp=IcmpMatch(3, 4),
                ),
                _egress_all(),
            ),
        ),
    }

    subnets = {
        sn[key]: Subnet(sn[key], name, vcn, cidr, private, (sl[key],), _etag(c))
        for key, name, cidr, private in (
            ("api", "subnet-k8s-api", "10.0.0.0/28", False),
            ("lb", "subnet-loadbalancers", "10.0.20.0/24", False),
            ("workers", "subnet-workers", "10.0.10.0/24", True),
            ("workers-legacy", "subnet-workers-public", "10.0.30.0/24", False),
        )
    }

    nsgs = {
        nsg["workers"]: Nsg(
            nsg["workers"],
            "nsg-workers",
            vcn,
            _etag(c),
            (
                _rule(
                    "ingress", nsg["workers"], "all", peer_type=nsg_ref, description="node to node"
                ),
                _rule("ingress", "10.0.0.0/28", "all", description="control plane"),
                _rule("egress", "0.0.0.0/0", "all", description="all egress"),
            ),
        ),
        nsg["backends"]: Nsg(
            nsg["backends"],
            "nsg-lb-backends",
            vcn,
            _etag(c),
            (
                _rule("ingress", nsg["nlb"], ports=(31380, 31380), peer_type=nsg_ref),
                _rule("ingress", nsg["nlb"], ports=(31443, 31443), peer_type=nsg_ref),
                _rule("ingress", nsg["nlb"], ports=(32111, 32111), peer_type=nsg_ref),
                _rule("ingress", nsg["orders-lb"], ports=(30000, 32767), peer_type=nsg_ref),
            ),
        ),
        nsg["nlb"]: Nsg(
            nsg["nlb"],
            "nsg-ingress-nlb",
            vcn,
            _etag(c),
            (
                _rule("ingress", "0.0.0.0/0", ports=(80, 80), description="http"),
                _rule("ingress", "0.0.0.0/0", ports=(443, 443), description="https"),
                _rule("egress", nsg["backends"], ports=(31380, 31443), peer_type=nsg_ref),
                _rule("egress", nsg["backends"], ports=(32111, 32111), peer_type=nsg_ref),
            ),
        ),
        nsg["orders-lb"]: Nsg(
            nsg["orders-lb"],
            "nsg-orders-internal-lb",
            vcn,
            _etag(c),
            (
                _rule("ingress", "10.0.0.0/16", ports=(443, 443), description="warehouse via VPN"),
                _rule("egress", nsg["backends"], ports=(30000, 32767), peer_type=nsg_ref),
            ),
        ),
    }

    cluster = OkeCluster(
        id=cluster_ocid,
        name=CLUSTER,
        compartment_id=compartment,
        vcn_id=vcn,
        kubernetes_version=KUBERNETES_VERSION,
        available_upgrades=("v1.32.1",),
        endpoint=ClusterEndpoint(subnet_id=sn["api"], is_public_ip_enabled=True, nsg_ids=()),
        cni_type="FLANNEL_OVERLAY",
        lb_subnet_ids=(sn["lb"],),
        etag=_etag(c),
    )

    # pool-apps: the three nodes the Kubernetes side shows.
    nodes = [d for d in docs if d["kind"] == "Node"]
    apps_nodes = tuple(
        WorkerNode(
            id=n["spec"]["providerID"],
            name=n["metadata"]["labels"]["displayName"],
            private_ip=n["metadata"]["labels"]["internal_addr"],
            public_ip=None,
        )
        for n in nodes
    )
    pool_id = ocid(c, "nodepool")
    legacy_id = ocid(c, "nodepool")
    short = cluster_ocid[-11:]
    pools = (
        NodePool(
            id=pool_id,
            name="pool-apps",
            kubernetes_version=KUBERNETES_VERSION,
            subnet_ids=(sn["workers"],),
            nsg_ids=(nsg["workers"], nsg["backends"]),
            image_id=ocid(c, "image"),
            image_name="Oracle-Linux-8.10-2026.10.08-0-OKE-1.31.1-812",
            image_created=at("2026-10-09T04:12:37"),
            nodes=apps_nodes,
            etag=_etag(c),
        ),
        # pool-legacy: the pool the cluster was created with, in the public subnet of the
        # quick-create wizard. Its last node was cordoned, drained and deleted from Kubernetes in
        # March 2025 with its kubelet stopped, but the pool was never scaled down: the instance
        # still runs, with a public IP and SSH open to the internet.
        NodePool(
            id=legacy_id,
            name="pool-legacy",
            kubernetes_version=LEGACY_VERSION,
            subnet_ids=(sn["workers-legacy"],),
            nsg_ids=(),
            image_id=ocid(c, "image"),
            image_name="Oracle-Linux-8.9-2025.01.21-0-OKE-1.29.10-769",
            image_created=at("2025-01-22T02:41:09"),
            nodes=(
                WorkerNode(
                    id=ocid(c, "instance"),
                    name=f"oke-c{short}-n{c.suffix(11)}-s{c.suffix(11)}-0",
                    private_ip="10.0.30.14",
                    public_ip="203.0.113.201",
                ),
            ),
            etag=_etag(c),
        ),
    )

    flow_logs = (
        FlowLog(
            id=ocid(c, "log"),
            name="flowlogs-subnet-workers",
            resource_id=sn["workers"],
            enabled=True,
            active=True,
        ),
    )

    vault = ocid(c, "vault")
    secrets = (
        # rotated by an OCI Function every 60 days; the mirrored catalog-db Secret follows it
        VaultSecret(
            id=ocid(c, "vaultsecret"),
            name="shop-prod/catalog-db-password",
            compartment_id=compartment,
            vault_id=vault,
            current_version_created=at("2026-10-15T09:11:42"),
            rotation_enabled=True,
            rotation_interval_days=60,
            target_system="FUNCTION",
            etag=_etag(c),
            current_version_number=7,
        ),
        # the postgres superuser password, set when the cluster was built and never rotated
        VaultSecret(
            id=ocid(c, "vaultsecret"),
            name="shop-prod/postgres-superuser",
            compartment_id=compartment,
            vault_id=vault,
            current_version_created=CLUSTER_CREATED + timedelta(days=2, hours=3),
            rotation_enabled=False,
            etag=_etag(c),
            current_version_number=1,
            freeform_tags={"okeguard-length": "40"},
        ),
    )
    return OciState(
        region=REGION,
        cluster=cluster,
        node_pools=pools,
        subnets=subnets,
        security_lists=security_lists,
        nsgs=nsgs,
        flow_logs=flow_logs,
        audit_retention_days=90,
        control_plane_log_enabled=False,
        vault_secrets=secrets,
    )
