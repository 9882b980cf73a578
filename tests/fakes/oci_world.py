"""A typical OKE cluster and its surroundings, stored in a :class:`FakeOciApi`.

:func:`build_oke_world` adds a VCN-native cluster with a private endpoint, node pools spread over
a worker subnet, VCN-native pod networking, a public load-balancer subnet, security lists, NSGs
with rules, node images, a log group holding flow logs and the control-plane log, the tenancy's
audit configuration and Vault secrets (two versions each, their contents in
``api.secret_contents``: see :func:`secret_content`); :class:`OkeWorld` names every OCID for
assertions.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.oci_api import REGION, TENANCY, FakeOciApi

COMPARTMENT = "ocid1.compartment.oc1..fakeclusters"
VAULT = "ocid1.vault.oc1.eu-frankfurt-1.fakevault"


@dataclass
class OkeWorld:
    cluster_id: str
    compartment_id: str
    vcn_id: str
    subnets: dict[str, str]  # role (endpoint, workers, pods, lb) -> OCID
    security_lists: dict[str, str]  # role -> OCID
    nsgs: dict[str, str]  # role (endpoint, workers, pods) -> OCID
    node_pool_ids: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    log_group_id: str = ""
    flow_log_ids: list[str] = field(default_factory=list)
    control_plane_log_id: str = ""
    secret_ids: list[str] = field(default_factory=list)


def rule(
    direction: str, peer: str, protocol: str = "6", port: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A security rule in the API's shape (NSG form: with ``direction``)."""
    doc: dict[str, Any] = {
        "direction": direction.upper(),
        "protocol": protocol,
        "isStateless": False,
    }
    key = "source" if direction.upper() == "INGRESS" else "destination"
    doc[key] = peer
    doc[f"{key}Type"] = "CIDR_BLOCK"
    if port is not None:
        doc["tcpOptions"] = {"destinationPortRange": {"min": port, "max": port}}
    doc.update(extra)
    return doc


def secret_content(secret_name: str, version: int) -> str:
    """The base64 content :func:`build_oke_world` stores for a secret's version."""
    return base64.b64encode(f"{secret_name}-v{version}-s3cr3t".encode()).decode()


def _sl_rules(rules: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k != "direction"}
        for r in rules
        if r["direction"] == direction
    ]


def build_oke_world(
    api: FakeOciApi,
    *,
    node_pools: int = 2,
    nodes_per_pool: int = 2,
    secrets: int = 2,
    extra_logs: int = 0,
) -> OkeWorld:
    """Store a typical cluster in ``api`` and return its OCIDs."""
    c = COMPARTMENT
    vcn = api.add("vcn", {"compartmentId": c, "displayName": "oke-vcn", "cidrBlock": "10.0.0.0/16"})
    sl_rules = {
        "endpoint": [rule("ingress", "10.0.10.0/24", port=6443), rule("egress", "10.0.10.0/24")],
        "workers": [
            rule("ingress", "0.0.0.0/0", port=22),
            rule("ingress", "10.0.0.0/16", protocol="all"),
            rule("egress", "0.0.0.0/0", protocol="all"),
        ],
        "lb": [rule("ingress", "0.0.0.0/0", port=443)],
    }
    security_lists = {
        role: api.add(
            "securityList",
            {
                "compartmentId": c,
                "vcnId": vcn,
                "displayName": f"{role}-sl",
                "ingressSecurityRules": _sl_rules(rules, "INGRESS"),
                "egressSecurityRules": _sl_rules(rules, "EGRESS"),
            },
        )
        for role, rules in sl_rules.items()
    }
    cidrs = {"endpoint": "10.0.0.0/28", "workers": "10.0.10.0/24", "pods": "10.0.32.0/19"}
    cidrs["lb"] = "10.0.20.0/24"
    subnets = {
        role: api.add(
            "subnet",
            {
                "compartmentId": c,
                "vcnId": vcn,
                "displayName": f"{role}-subnet",
                "cidrBlock": cidr,
                "prohibitPublicIpOnVnic": role != "lb",
                "securityListIds": [security_lists["workers" if role == "pods" else role]],
            },
        )
        for role, cidr in cidrs.items()
    }
    nsgs = {
        role: api.add(
            "networkSecurityGroup", {"compartmentId": c, "vcnId": vcn, "displayName": f"{role}-nsg"}
        )
        for role in ("endpoint", "workers", "pods")
    }
    api.set_nsg_rules(nsgs["endpoint"], [rule("ingress", "10.0.10.0/24", port=6443)])
    api.set_nsg_rules(
        nsgs["workers"],
        [rule("ingress", "0.0.0.0/0", port=10250), rule("egress", "0.0.0.0/0", protocol="all")],
    )
    cluster = api.add(
        "cluster",
        {
            "name": "prod-oke",
            "compartmentId": c,
            "vcnId": vcn,
            "kubernetesVersion": "v1.30.1",
            "availableKubernetesUpgrades": ["v1.31.1"],
            "endpointConfig": {
                "subnetId": subnets["endpoint"],
                "nsgIds": [nsgs["endpoint"]],
                "isPublicIpEnabled": False,
            },
            "options": {"serviceLbSubnetIds": [subnets["lb"]]},
            "clusterPodNetworkOptions": [{"cniType": "OCI_VCN_IP_NATIVE"}],
            "type": "ENHANCED_CLUSTER",
        },
    )
    world = OkeWorld(cluster, c, vcn, subnets, security_lists, nsgs)
    for i in range(node_pools):
        image = api.add(
            "image",
            {
                "compartmentId": None,
                "displayName": f"Oracle-Linux-8.10-2026.0{1 + i % 9}.01-0-OKE-1.30.1",
                "operatingSystem": "Oracle Linux",
                "timeCreated": f"2026-0{1 + i % 9}-01T00:00:00.000Z",
            },
        )
        world.image_ids.append(image)
        pool_id = api.new_ocid("nodePool")
        nodes = [
            {
                "id": f"ocid1.instance.oc1.{REGION}.pool{i}node{n}",
                "name": f"oke-pool{i}-node{n}",
                "privateIp": f"10.0.10.{10 + i * 10 + n}",
                "publicIp": "203.0.113.7" if (i, n) == (0, 0) else None,
                "lifecycleState": "ACTIVE",
                "nodePoolId": pool_id,
                "subnetId": subnets["workers"],
            }
            for n in range(nodes_per_pool)
        ]
        api.add(
            "nodePool",
            {
                "id": pool_id,
                "name": f"pool-{i}",
                "compartmentId": c,
                "clusterId": cluster,
                "kubernetesVersion": "v1.29.1" if i == 0 else "v1.30.1",
                "nodeImageId": image,
                "nodeImageName": api.get(image)["displayName"],
                "nodeSource": {"sourceType": "IMAGE", "imageId": image, "sourceName": "img"},
                "nodeSourceDetails": {"sourceType": "IMAGE", "imageId": image},
                "nodeShape": "VM.Standard.E5.Flex",
                "subnetIds": [],
                "nodeConfigDetails": {
                    "size": nodes_per_pool,
                    "nsgIds": [nsgs["workers"]],
                    "placementConfigs": [
                        {"availabilityDomain": "AD-1", "subnetId": subnets["workers"]}
                    ],
                    "nodePoolPodNetworkOptionDetails": {
                        "cniType": "OCI_VCN_IP_NATIVE",
                        "podSubnetIds": [subnets["pods"]],
                        "podNsgIds": [nsgs["pods"]],
                    },
                },
                "nodes": nodes,
            },
        )
        world.node_pool_ids.append(pool_id)
    world.log_group_id = api.add("logGroup", {"compartmentId": c, "displayName": "oke-logs"})

    def log(name: str, service: str, resource: str, enabled: bool = True) -> str:
        return api.add(
            "log",
            {
                "logGroupId": world.log_group_id,
                "compartmentId": c,
                "displayName": name,
                "isEnabled": enabled,
                "logType": "SERVICE",
                "configuration": {
                    "compartmentId": c,
                    "source": {
                        "sourceType": "OCISERVICE",
                        "service": service,
                        "resource": resource,
                        "category": "all",
                    },
                },
            },
        )

    world.flow_log_ids.append(log("workers-flow", "flowlogs", subnets["workers"]))
    world.flow_log_ids.append(log("vcn-flow", "flowlogs", vcn, enabled=False))
    world.control_plane_log_id = log("cp", "oke-k8s-cp-prod", cluster)
    for i in range(extra_logs):
        log(f"bucket-{i}", "objectstorage", f"bucket-{i}")
    api.audit_retention_days[TENANCY] = 90
    for i in range(secrets):
        rotation = (
            {
                "rotationInterval": "P30D",
                "isScheduledRotationEnabled": True,
                "targetSystemDetails": {"targetSystemType": "ADB", "adbId": "ocid1.adb.fake"},
            }
            if i % 2 == 0
            else None
        )
        secret = api.add(
            "secret",
            {
                "compartmentId": c,
                "vaultId": VAULT,
                "keyId": "ocid1.key.oc1.fake",
                "secretName": f"db-password-{i}",
                "timeCreated": "2025-01-01T00:00:00.000Z",
                "rotationConfig": rotation,
                "currentVersionNumber": 2,
            },
        )
        for version in (1, 2):
            api.secret_contents[(secret, version)] = secret_content(f"db-password-{i}", version)
        api.secret_versions[secret] = [
            {
                "secretId": secret,
                "versionNumber": 1,
                "stages": ["PREVIOUS"],
                "timeCreated": "2025-01-01T00:00:00.000Z",
                "contentType": "BASE64",
            },
            {
                "secretId": secret,
                "versionNumber": 2,
                "stages": ["CURRENT", "LATEST"],
                "timeCreated": f"2026-0{1 + i % 9}-15T00:00:00.000Z",
                "contentType": "BASE64",
            },
        ]
        world.secret_ids.append(secret)
    return world
