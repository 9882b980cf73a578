"""``make-endpoint-private``: turn off the public IP of a VCN-native cluster's API endpoint.

One operation, ``oci.set-endpoint-public`` with ``value: False`` (``update_cluster_endpoint_config``
guarded by the cluster etag pinned in the plan, followed to the end of its work request); the
undo sets it back to True. A legacy cluster (not VCN-native) has no endpoint to make private.
"""

from __future__ import annotations

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.remediations.plan import Operation, Plan, PlanError
from okeguard.remediations.planners import planner

REMEDIATION = "make-endpoint-private"


@planner("make-endpoint-private")
def plan_make_endpoint_private(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan disabling the endpoint's public IP (PlanError when there is nothing to do)."""
    if variant != "default":
        raise PlanError(f"{REMEDIATION} has one variant, 'default'")
    if finding.check_id != "oke.public-api-endpoint":
        raise PlanError(f"{REMEDIATION} does not fix {finding.check_id}")
    state = inventory.oci
    if state is None or state.cluster is None:
        raise PlanError("the OKE cluster was not read: scan again with the cluster's OCID set")
    cluster = state.cluster
    endpoint = cluster.endpoint
    if endpoint is None:
        raise PlanError(
            f"cluster {cluster.name} is not VCN-native (no endpoint_config): its endpoint cannot "
            "be made private; migrate it to a VCN-native cluster (see oke.legacy-endpoint)"
        )
    if not endpoint.is_public_ip_enabled:
        subnet = state.subnets.get(endpoint.subnet_id)
        where = subnet.name if subnet else endpoint.subnet_id
        raise PlanError(
            f"the endpoint has no public IP; its subnet {where!r} allows public IPs: move the "
            "endpoint to a private subnet (no automatic fix)"
        )
    op = Operation(
        action="oci.set-endpoint-public",
        target={"kind": "Cluster", "ocid": cluster.id, "name": cluster.name},
        params={"value": False, "etag": cluster.etag},
        undo={"value": True},
        description=f"set endpoint_config.is_public_ip_enabled to false on cluster {cluster.name}",
    )
    diff = "\n".join(
        [
            f"--- cluster {cluster.name} ({cluster.id}) endpoint_config",
            f"+++ cluster {cluster.name} endpoint_config (planned)",
            "-is_public_ip_enabled: true",
            "+is_public_ip_enabled: false",
        ]
    )
    risks = (
        "kubectl, CI pipelines and anything else using the public endpoint lose access: they "
        "must reach the private endpoint first (a Bastion session, a VPN or FastConnect, or "
        "Cloud Shell private access) and use a kubeconfig generated for the private endpoint "
        "(`oci ce cluster create-kubeconfig --kube-endpoint PRIVATE_ENDPOINT`)",
        "if okeguard itself reaches the cluster through the public endpoint, it cannot roll this "
        "back through Kubernetes; the rollback uses only the OCI API",
    )
    return Plan.of(
        finding,
        REMEDIATION,
        (op,),
        diff,
        risks=risks,
        verify={"is_public_ip_enabled": False},
    )
