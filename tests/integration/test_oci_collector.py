"""The OCI collector, with the real ``oci`` SDK talking to the fake OCI API server."""

from __future__ import annotations

import fnmatch
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import oci
import pytest

from okeguard.config import ClusterConfig, OciAuthConfig
from okeguard.inventory.oci import collect_oci
from okeguard.inventory.oci_clients import policy_statement
from okeguard.inventory.oci_model import OciState, PortRange, oci_state_from_dict, oci_state_to_dict
from tests.fakes.oci_api import REGION, FakeOciApi
from tests.fakes.oci_world import COMPARTMENT, OkeWorld, build_oke_world


def sdk_client(cls: Any, api: FakeOciApi, config_path: Path) -> Any:
    config = oci.config.from_file(str(config_path))
    return cls(config, service_endpoint=api.url, retry_strategy=oci.retry.NoneRetryStrategy())


# -- the fake itself -------------------------------------------------------------------------


def test_fake_requires_a_signed_request(oci_api: FakeOciApi, world: OkeWorld) -> None:
    request = urllib.request.Request(f"{oci_api.url}/20180222/clusters/{world.cluster_id}")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 401
    assert oci_api.requests[-1].authorized is False


def test_fake_serves_the_sdk_shapes_with_etags(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    response = ce.get_cluster(world.cluster_id)
    assert response.headers["etag"] == oci_api.etags[world.cluster_id]
    cluster = response.data
    assert cluster.endpoint_config.subnet_id == world.subnets["endpoint"]
    assert cluster.cluster_pod_network_options[0].cni_type == "OCI_VCN_IP_NATIVE"
    assert cluster.options.service_lb_subnet_ids == [world.subnets["lb"]]
    pool = ce.get_node_pool(world.node_pool_ids[0]).data
    assert pool.nodes[0].public_ip == "203.0.113.7"
    assert pool.node_config_details.node_pool_pod_network_option_details.pod_subnet_ids == [
        world.subnets["pods"]
    ]
    logging_client = sdk_client(oci.logging.LoggingManagementClient, oci_api, oci_config)
    logs = logging_client.list_logs(world.log_group_id).data
    assert {log.configuration.source.service for log in logs} == {"flowlogs", "oke-k8s-cp-prod"}
    assert all(r.authorized for r in oci_api.requests)


def test_fake_pages_lists_with_opc_next_page(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.max_page_size = 1
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    first = ce.list_node_pools(COMPARTMENT, cluster_id=world.cluster_id)
    assert len(first.data) == 1 and first.headers["opc-next-page"] == "1"
    assert "nodes" not in oci_api.requests[-1].path
    every = oci.pagination.list_call_get_all_results(
        ce.list_node_pools, COMPARTMENT, cluster_id=world.cluster_id
    ).data
    assert [p.id for p in every] == world.node_pool_ids
    assert len(oci_api.requests_to("/20180222/nodePools")) == 1 + len(world.node_pool_ids)


def test_fake_updates_need_the_current_etag(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    sl_id = world.security_lists["workers"]
    etag = vn.get_security_list(sl_id).headers["etag"]
    details = oci.core.models.UpdateSecurityListDetails(ingress_security_rules=[])
    oci_api.update(sl_id, displayName="changed-behind-our-back")
    with pytest.raises(oci.exceptions.ServiceError) as raised:
        vn.update_security_list(sl_id, details, if_match=etag)
    assert raised.value.status == 412
    assert oci_api.get(sl_id)["ingressSecurityRules"]  # nothing written
    fresh = vn.get_security_list(sl_id).headers["etag"]
    updated = vn.update_security_list(sl_id, details, if_match=fresh)
    assert updated.data.ingress_security_rules == []
    assert updated.headers["etag"] != fresh
    assert oci_api.requests_to(f"*/securityLists/{sl_id}", "PUT")[-1].if_match == fresh


def test_fake_faults_and_missing_resources(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    oci_api.fail("/20160918/subnets/*", 503, times=1)
    with pytest.raises(oci.exceptions.ServiceError) as raised:
        vn.get_subnet(world.subnets["workers"])
    assert (raised.value.status, raised.value.code) == (503, "ServiceUnavailable")
    assert vn.get_subnet(world.subnets["workers"]).data.cidr_block == "10.0.10.0/24"
    oci_api.fail("/20160918/networkSecurityGroups/*", 403)
    with pytest.raises(oci.exceptions.ServiceError) as raised:
        vn.get_network_security_group(world.nsgs["workers"])
    assert (raised.value.status, raised.value.code) == (403, "NotAuthorizedOrNotFound")
    oci_api.clear_faults()
    oci_api.remove(world.security_lists["lb"])
    with pytest.raises(oci.exceptions.ServiceError) as raised:
        vn.get_security_list(world.security_lists["lb"])
    assert (raised.value.status, raised.value.code) == (404, "NotAuthorizedOrNotFound")
    assert oci_api.count("/20160918/subnets/*") == 2


# -- the collector ---------------------------------------------------------------------------

GROUP_NETWORK_POLICY = (
    f"Allow group <group> to read virtual-network-family in compartment id {COMPARTMENT}"
)


def collect(api: FakeOciApi, world: OkeWorld, config_path: Path, **kwargs: Any) -> OciState:
    cluster = ClusterConfig(
        name="prod", cluster_id=world.cluster_id, region=REGION, compartments=(COMPARTMENT,)
    )
    auth = OciAuthConfig(mode="config_file", config_file=str(config_path))
    kwargs.setdefault("retry_base_sleep", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return collect_oci(cluster, auth, service_endpoints=api.service_endpoints(), **kwargs)


def test_a_full_collection_matches_the_fake(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    state = collect(oci_api, world, oci_config)
    assert state.gaps == ()
    cluster = state.cluster
    assert cluster is not None
    assert (cluster.id, cluster.compartment_id, cluster.vcn_id) == (
        world.cluster_id,
        COMPARTMENT,
        world.vcn_id,
    )
    assert cluster.kubernetes_version == "v1.30.1"
    assert cluster.available_upgrades == ("v1.31.1",)
    assert cluster.endpoint is not None
    assert cluster.endpoint.subnet_id == world.subnets["endpoint"]
    assert cluster.endpoint.nsg_ids == (world.nsgs["endpoint"],)
    assert cluster.endpoint.is_public_ip_enabled is False
    assert cluster.cni_type == "OCI_VCN_IP_NATIVE"
    assert cluster.lb_subnet_ids == (world.subnets["lb"],)
    assert cluster.etag == oci_api.etags[world.cluster_id]

    assert [p.id for p in state.node_pools] == world.node_pool_ids
    first = state.node_pools[0]
    assert first.kubernetes_version == "v1.29.1"
    assert first.subnet_ids == (world.subnets["workers"],)
    assert first.nsg_ids == (world.nsgs["workers"],)
    assert first.pod_subnet_ids == (world.subnets["pods"],)
    assert first.pod_nsg_ids == (world.nsgs["pods"],)
    assert first.image_id == world.image_ids[0]
    assert first.image_name == oci_api.get(world.image_ids[0])["displayName"]
    assert first.image_created == datetime(2026, 1, 1, tzinfo=UTC)
    assert [n.public_ip for n in first.nodes] == ["203.0.113.7", None]
    assert first.etag == oci_api.etags[first.id]

    assert set(state.subnets) == set(world.subnets.values())
    lb = state.subnets[world.subnets["lb"]]
    assert lb.prohibit_public_ip_on_vnic is False
    assert lb.security_list_ids == (world.security_lists["lb"],)
    assert set(state.security_lists) == set(world.security_lists.values())
    workers_sl = state.security_lists[world.security_lists["workers"]]
    assert workers_sl.etag == oci_api.etags[workers_sl.id]
    ssh = workers_sl.rules[0]
    assert (ssh.direction, ssh.peer, ssh.ports) == ("ingress", "0.0.0.0/0", PortRange(22, 22))
    assert [r.direction for r in workers_sl.rules] == ["ingress", "ingress", "egress"]
    assert workers_sl.rules[1].all_ports
    assert set(state.nsgs) == set(world.nsgs.values())
    kubelet = state.nsgs[world.nsgs["workers"]].rules[0]
    assert (kubelet.peer, kubelet.ports) == ("0.0.0.0/0", PortRange(10250, 10250))
    assert state.nsgs[world.nsgs["pods"]].rules == ()

    assert {(f.resource_id, f.enabled) for f in state.flow_logs} == {
        (world.subnets["workers"], True),
        (world.vcn_id, False),
    }
    assert state.audit_retention_days == 90
    assert state.control_plane_log_enabled is True
    secrets = {s.id: s for s in state.vault_secrets}
    assert set(secrets) == set(world.secret_ids)
    rotated = secrets[world.secret_ids[0]]
    assert rotated.rotation_enabled and rotated.rotation_interval_days == 30
    assert rotated.target_system == "ADB"
    assert rotated.current_version_created == datetime(2026, 1, 15, tzinfo=UTC)
    assert secrets[world.secret_ids[1]].rotation_enabled is False
    assert oci_state_from_dict(oci_state_to_dict(state)) == state


def test_requests_per_cluster_are_counted_and_never_repeated(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    collect(oci_api, world, oci_config)
    # cluster 1, node pools 1 + 2, images 2, subnets 4, security lists 3, NSGs 3 x 2,
    # log groups 1, logs 1, audit 1, secrets 1 + versions 2
    assert oci_api.count() == 25
    paths = [r.path for r in oci_api.requests]
    assert len(paths) == len(set(paths))
    assert all(r.authorized for r in oci_api.requests)


def test_lists_are_followed_over_every_page(oci_api: FakeOciApi, oci_config: Path) -> None:
    world = build_oke_world(oci_api, node_pools=5, secrets=5, extra_logs=4)
    oci_api.max_page_size = 2
    state = collect(oci_api, world, oci_config)
    assert state.gaps == ()
    assert [p.id for p in state.node_pools] == world.node_pool_ids
    assert {s.id for s in state.vault_secrets} == set(world.secret_ids)
    assert len(state.flow_logs) == 2 and state.control_plane_log_enabled is True
    assert len(oci_api.requests_to("/20180222/nodePools")) == 3
    assert len(oci_api.requests_to("/20180608/secrets")) == 3
    assert len(oci_api.requests_to("/20200531/logGroups/*/logs")) == 4
    pages = [r.query.get("page") for r in oci_api.requests_to("/20180222/nodePools")]
    assert pages == [None, ["2"], ["4"]]


class Rendezvous:
    """Holds each request whose path matches until ``parties`` of them are in the server at once,
    then lets them all through; gives up (and lets every request through) after ``timeout``.
    ``met`` says whether they ever were: no clock decides, only what was in flight."""

    def __init__(self, patterns: tuple[str, ...], parties: int, timeout: float = 30.0) -> None:
        self.patterns, self.parties, self.timeout = patterns, parties, timeout
        self.held = self.most = 0
        self.met = self.gave_up = False
        self._changed = threading.Condition()

    def __call__(self, path: str) -> float:
        """Stands in for the fake's per-path delay: waits here, then answers "no delay"."""
        if not any(fnmatch.fnmatchcase(path, p) for p in self.patterns):
            return 0.0
        with self._changed:
            self.held += 1
            self.most = max(self.most, self.held)
            if self.held >= self.parties:
                self.met = True
                self._changed.notify_all()
            if not self._changed.wait_for(lambda: self.met or self.gave_up, self.timeout):
                self.gave_up = True
                self._changed.notify_all()
            self.held -= 1
        return 0.0


def test_independent_calls_run_concurrently(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With four workers, four of the slow independent reads (subnets, NSGs, images) are in the
    server at the same time: each is held until the others arrive, which they only do when
    the collector does not wait for one before starting the next."""
    slow = ("/20160918/subnets/*", "/20160918/networkSecurityGroups/*", "/20160918/images/*")
    rendezvous = Rendezvous(slow, parties=4)
    monkeypatch.setattr(oci_api, "_delay_for", rendezvous)
    state = collect(oci_api, world, oci_config, max_workers=4)
    delayed = sum(oci_api.count(pattern) for pattern in slow)
    assert state.gaps == () and delayed == 12
    assert rendezvous.met and not rendezvous.gave_up, f"at most {rendezvous.most} at once"


def test_a_forbidden_read_becomes_a_gap_with_the_policy_to_add(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.fail("/20160918/securityLists/*", 403)
    state = collect(oci_api, world, oci_config)
    assert state.security_lists == {}
    gaps = state.gaps_for("security_list")
    assert {g.ocid for g in gaps} == set(world.security_lists.values())
    assert all("NotAuthorizedOrNotFound" in g.reason for g in gaps)
    assert {g.policy for g in gaps} == {GROUP_NETWORK_POLICY}
    assert [g.area for g in state.gaps] == ["security_list"] * 3
    assert len(state.subnets) == 4 and len(state.nsgs) == 3  # the rest was read
    assert oci_api.count("/20160918/securityLists/*") == 3  # a 403 is not retried


def test_an_unreadable_cluster_is_a_gap_and_the_rest_is_still_read(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.fail("/20180222/clusters/*", 404)
    state = collect(oci_api, world, oci_config)
    assert state.cluster is None and state.node_pools == ()
    (gap,) = state.gaps
    assert (gap.area, gap.ocid) == ("cluster", world.cluster_id)
    assert gap.policy == "Allow group <group> to read cluster-family in compartment <compartment>"
    assert state.audit_retention_days == 90 and len(state.vault_secrets) == 2
    assert state.control_plane_log_enabled is None


def test_server_errors_are_retried_then_become_gaps(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.fail("/20160918/subnets/*", 500, times=2)
    oci_api.fail("/20190901/configuration", 503)
    state = collect(oci_api, world, oci_config, retry_attempts=3)
    assert len(state.subnets) == 4 and state.gaps_for("subnet") == []
    (gap,) = state.gaps
    assert gap.area == "audit" and gap.policy is None
    assert "503 ServiceUnavailable" in gap.reason
    assert oci_api.count("/20190901/configuration") == 3
    assert state.audit_retention_days is None and state.cluster is not None


def test_throttling_is_retried(oci_api: FakeOciApi, world: OkeWorld, oci_config: Path) -> None:
    oci_api.fail("/20180222/clusters/*", 429, times=2)
    oci_api.fail("/20180608/secrets", 429, times=1)
    state = collect(oci_api, world, oci_config)
    assert state.gaps == () and state.cluster is not None
    assert len(oci_api.requests_to("/20180222/clusters/*")) == 3
    assert len(state.vault_secrets) == 2


def test_a_slow_endpoint_times_out_into_a_gap(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.delay("/20190901/configuration", 2.0)
    started = time.monotonic()
    state = collect(oci_api, world, oci_config, timeout=0.4, retry_attempts=2)
    assert time.monotonic() - started < 3.0
    (gap,) = state.gaps
    assert gap.area == "audit" and "timed out" in gap.reason
    assert state.cluster is not None and len(state.node_pools) == 2


def test_a_missing_security_list_is_a_gap_for_that_ocid(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    oci_api.remove(world.security_lists["lb"])
    state = collect(oci_api, world, oci_config)
    (gap,) = state.gaps
    assert (gap.area, gap.ocid) == ("security_list", world.security_lists["lb"])
    assert gap.policy == GROUP_NETWORK_POLICY
    assert set(state.security_lists) == {
        world.security_lists["endpoint"],
        world.security_lists["workers"],
    }
    assert state.gaps_for("security_list", world.security_lists["workers"]) == []


def test_a_cluster_without_an_ocid_is_one_gap() -> None:
    state = collect_oci(ClusterConfig(name="kind-only"), OciAuthConfig())
    assert state.cluster is None
    assert [g.area for g in state.gaps] == ["cluster"]


def test_policies_name_the_principal_of_each_auth_mode() -> None:
    cluster = "ocid1.cluster.oc1.eu-frankfurt-1.abc"
    assert policy_statement("nsg", "instance_principal", COMPARTMENT, cluster) == (
        f"Allow dynamic-group <dynamic-group> to read virtual-network-family in compartment id {COMPARTMENT}"
    )
    workload = policy_statement("vault_secrets", "workload_identity", COMPARTMENT, cluster)
    assert workload is not None
    assert workload.startswith(
        f"Allow any-user to inspect secret-family in compartment id {COMPARTMENT} where all {{"
    )
    assert "request.principal.type = 'workload'" in workload
    assert f"request.principal.cluster_id = '{cluster}'" in workload
    assert policy_statement("audit", "config_file", COMPARTMENT, cluster) == (
        "Allow group <group> to read audit-events in tenancy"
    )
