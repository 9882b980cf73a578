"""What the remediation integration tests share: a live cluster behind the fake Kubernetes API, a
request approved the usual way (alice asks, bob approves naming the full plan hash), the stored
request and its audit trail read back, and the checks that the trail still verifies."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update

from okeguard.audit.chain import verify_chain
from okeguard.audit.crosscheck import crosscheck
from okeguard.audit.models import RemediationRequest
from okeguard.config import ChecksConfig, ClusterConfig, Config, OciAuthConfig, RemediationConfig
from okeguard.remediations import workflow
from okeguard.remediations.kube_writer import MERGE_PATCH, open_kube_writer
from okeguard.remediations.live import LiveCluster
from okeguard.remediations.plan import Plan
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.oci_api import REGION, FakeOciApi
from tests.fakes.oci_world import COMPARTMENT
from tests.helpers import after_lease
from tests.integration.database import Database

ANOTHER_RUN = "other-host:4242:feedbeef"


# -- the cluster -------------------------------------------------------------------------------
def cluster_config(kube_api: FakeKubeApi) -> ClusterConfig:
    """The cluster ``fake``, reached through the fake API's kubeconfig (context ``fake``)."""
    assert kube_api.kubeconfig_path is not None
    return ClusterConfig(name="fake", context="fake", kubeconfig=str(kube_api.kubeconfig_path))


def live_cluster(
    kube_api: FakeKubeApi, settings: RemediationConfig, *, checks: ChecksConfig | None = None
) -> LiveCluster:
    """The cluster ``fake`` read and written live, with these remediation (and check) settings."""
    cluster = cluster_config(kube_api)
    config = Config(remediation=settings, checks=checks or ChecksConfig(), clusters=(cluster,))
    return LiveCluster(config, cluster)


def oci_live_cluster(
    kube_api: FakeKubeApi,
    oci_api: FakeOciApi,
    cluster_id: str,
    oci_config: Path,
    settings: RemediationConfig,
) -> LiveCluster:
    """Cluster "prod" on the fake Kubernetes API and the fake OCI API (``cluster_id`` there)."""
    assert kube_api.kubeconfig_path is not None
    cluster = ClusterConfig(
        name="prod",
        context="fake",
        kubeconfig=str(kube_api.kubeconfig_path),
        cluster_id=cluster_id,
        region=REGION,
        compartments=(COMPARTMENT,),
    )
    auth = OciAuthConfig(mode="config_file", config_file=str(oci_config))
    config = Config(remediation=settings, clusters=(cluster,), oci=auth)
    return LiveCluster(config, cluster, oci_api.service_endpoints())


def someone_patches(
    live: LiveCluster, kind: str, name: str, patch: dict[str, Any], *, namespace: str = "shop"
) -> None:
    """Another person changes an object through the API (a merge patch, as kubectl would)."""
    writer = open_kube_writer("fake", kubeconfig=live.cluster.kubeconfig)
    try:
        writer.patch(kind, namespace, name, patch, content_type=MERGE_PATCH)
    finally:
        writer.close()


# -- requests ----------------------------------------------------------------------------------
def approved(database: Database, plan: Plan, *, settings: RemediationConfig) -> int:
    """The id of a request for ``plan`` made by alice and approved by bob with the full hash."""
    request = workflow.request_fix(database.sessions, plan, "alice", settings)
    workflow.decide(
        database.sessions, request.id, "bob", settings, approve=True, plan_hash=plan.hash
    )
    return request.id


def reconcile_after_lease(
    database: Database, live: LiveCluster, *, actor: str = "reconciler"
) -> list[workflow.ApplyResult]:
    """Reconcile as ``actor`` at a time every run's lease has run out."""
    return workflow.reconcile(database.sessions, actor, lambda _: live, now=after_lease())


def held_by_another_run(database: Database, request_id: int, lease_until: datetime) -> None:
    """What another process's claim leaves in the request's row: its owner id and its lease."""
    with database.sessions.begin() as session:
        session.execute(
            update(RemediationRequest)
            .where(RemediationRequest.id == request_id)
            .values(owner=ANOTHER_RUN, lease_until=lease_until)
        )


def request_row(database: Database, request_id: int) -> RemediationRequest:
    """The stored request, detached from its session (its columns as read now)."""
    with database.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        session.expunge(request)
        return request


def request_events(database: Database, request_id: int) -> list[dict[str, Any]]:
    """The request's audit events, oldest first (``action``, ``payload``, ``actor``, ``at``)."""
    with database.sessions() as session:
        return workflow.request_events(session, request_id)


def request_actions(database: Database, request_id: int) -> list[str]:
    """The actions of the request's audit events, oldest first."""
    return [e["action"] for e in request_events(database, request_id)]


# -- the audit trail ---------------------------------------------------------------------------
def assert_chain_ok(database: Database) -> None:
    """The hash chain verifies."""
    with database.sessions() as session:
        assert verify_chain(session) is None


def assert_audit_ok(database: Database) -> None:
    """The hash chain verifies and the request rows agree with it."""
    with database.sessions() as session:
        assert verify_chain(session) is None
        assert crosscheck(session) == []
