"""The OCI collector, with the real ``oci`` SDK talking to the fake OCI API server."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oci
import pytest

from tests.fakes.oci_api import FakeOciApi, running_fake_oci_api
from tests.fakes.oci_world import COMPARTMENT, OkeWorld, build_oke_world


@pytest.fixture(scope="module")
def oci_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI config file with a throwaway RSA API key (one per module: key generation is slow)."""
    return FakeOciApi().write_config(tmp_path_factory.mktemp("oci"))


@pytest.fixture
def oci_api() -> Iterator[FakeOciApi]:
    with running_fake_oci_api() as api:
        yield api


@pytest.fixture
def world(oci_api: FakeOciApi) -> OkeWorld:
    return build_oke_world(oci_api)


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
