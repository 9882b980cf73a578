"""The fake OCI API's write paths, driven through the real ``oci`` SDK clients."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import oci
import pytest
import requests

from tests.fakes.oci_api import FakeOciApi
from tests.fakes.oci_world import COMPARTMENT, OkeWorld, rule, secret_content

core = oci.core.models
ce_models = oci.container_engine.models
vault_models = oci.vault.models


def sdk_client(cls: Any, api: FakeOciApi, config_path: Path, retry: Any = None) -> Any:
    """A real SDK client pointed at the fake; no retries unless ``retry`` is given."""
    config = oci.config.from_file(str(config_path))
    strategy = retry if retry is not None else oci.retry.NoneRetryStrategy()
    return cls(config, service_endpoint=api.url, retry_strategy=strategy)


def service_error(call: Any, *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as raised:
        call(*args, **kwargs)
    return raised.value


def nsg_details(world: OkeWorld, name: str = "new-nsg") -> Any:
    return core.CreateNetworkSecurityGroupDetails(
        compartment_id=COMPARTMENT, vcn_id=world.vcn_id, display_name=name
    )


def sdk_rule(port: int) -> Any:
    return core.AddSecurityRuleDetails(
        direction="INGRESS",
        protocol="6",
        source="10.0.0.0/16",
        source_type="CIDR_BLOCK",
        tcp_options=core.TcpOptions(destination_port_range=core.PortRange(min=port, max=port)),
    )


# -- network security groups ----------------------------------------------------------------


def test_nsg_create_retried_with_the_same_token_creates_once(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    before = len(oci_api.of_kind("networkSecurityGroup"))
    first = vn.create_network_security_group(nsg_details(world), opc_retry_token="tok-1")
    again = vn.create_network_security_group(nsg_details(world), opc_retry_token="tok-1")
    assert first.data.id == again.data.id
    assert first.data.lifecycle_state == "AVAILABLE"
    assert first.headers["etag"] == vn.get_network_security_group(first.data.id).headers["etag"]
    assert len(oci_api.of_kind("networkSecurityGroup")) == before + 1
    assert vn.list_network_security_group_security_rules(first.data.id).data == []
    error = service_error(
        vn.create_network_security_group, nsg_details(world, "other"), opc_retry_token="tok-1"
    )
    assert (error.status, error.code) == (409, "InvalidatedRetryToken")
    posts = oci_api.requests_to("/20160918/networkSecurityGroups", "POST")
    assert [r.retry_token for r in posts] == ["tok-1"] * 3
    assert posts[0].body == {
        "compartmentId": COMPARTMENT,
        "vcnId": world.vcn_id,
        "displayName": "new-nsg",
    }
    assert len(oci_api.of_kind("networkSecurityGroup")) == before + 1


def test_a_lost_create_answer_retried_by_the_sdk_creates_once(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    retry = oci.retry.RetryStrategyBuilder(
        max_attempts=3,
        retry_base_sleep_time_seconds=0.01,
        retry_max_wait_between_calls_seconds=0.05,
    ).get_retry_strategy()
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config, retry=retry)
    before = len(oci_api.of_kind("networkSecurityGroup"))
    oci_api.fail("*/networkSecurityGroups", 503, times=1, after_apply=True)
    created = vn.create_network_security_group(nsg_details(world))  # the SDK makes the token
    posts = oci_api.requests_to("/20160918/networkSecurityGroups", "POST")
    assert len(posts) == 2
    assert posts[0].retry_token and posts[0].retry_token == posts[1].retry_token
    assert len(oci_api.of_kind("networkSecurityGroup")) == before + 1
    assert oci_api.get(created.data.id)["displayName"] == "new-nsg"


def test_nsg_create_rejects_an_unknown_vcn(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    details = core.CreateNetworkSecurityGroupDetails(compartment_id=COMPARTMENT, vcn_id="nope")
    error = service_error(vn.create_network_security_group, details)
    assert (error.status, error.code) == (400, "RelatedResourceNotAuthorizedOrNotFound")


def test_nsg_delete_checks_the_etag_and_use(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    created = vn.create_network_security_group(nsg_details(world), opc_retry_token="tok-del")
    nsg_id = created.data.id
    error = service_error(vn.delete_network_security_group, nsg_id, if_match="etag-stale")
    assert (error.status, error.code) == (412, "NoEtagMatch")
    in_use = service_error(vn.delete_network_security_group, world.nsgs["endpoint"])
    assert in_use.status == 409
    deleted = vn.delete_network_security_group(nsg_id, if_match=created.headers["etag"])
    assert deleted.status == 204
    assert service_error(vn.get_network_security_group, nsg_id).status == 404
    assert nsg_id not in oci_api.nsg_rules
    retried = service_error(
        vn.create_network_security_group, nsg_details(world), opc_retry_token="tok-del"
    )
    assert (retried.status, retried.code) == (409, "InvalidatedRetryToken")
    assert (
        oci_api.requests_to(f"*/networkSecurityGroups/{nsg_id}", "DELETE")[-1].if_match
        == (created.headers["etag"])
    )


def test_nsg_rules_add_at_most_25_remove_and_update(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    nsg_id = world.nsgs["pods"]
    etag = vn.get_network_security_group(nsg_id).headers["etag"]

    too_many = core.AddNetworkSecurityGroupSecurityRulesDetails(
        security_rules=[sdk_rule(1000 + i) for i in range(26)]
    )
    error = service_error(vn.add_network_security_group_security_rules, nsg_id, too_many)
    assert (error.status, error.code) == (400, "InvalidParameter")
    assert vn.list_network_security_group_security_rules(nsg_id).data == []
    assert vn.get_network_security_group(nsg_id).headers["etag"] == etag

    details = core.AddNetworkSecurityGroupSecurityRulesDetails(
        security_rules=[sdk_rule(1000 + i) for i in range(25)]
    )
    added = vn.add_network_security_group_security_rules(nsg_id, details).data.security_rules
    assert len(added) == 25 and len({r.id for r in added}) == 25
    assert all(r.is_valid and r.direction == "INGRESS" for r in added)
    assert added[0].tcp_options.destination_port_range.min == 1000
    listed = oci.pagination.list_call_get_all_results(
        vn.list_network_security_group_security_rules, nsg_id
    ).data
    assert [r.id for r in listed] == [r.id for r in added]
    after_add = vn.get_network_security_group(nsg_id).headers["etag"]
    assert after_add != etag

    remove = core.RemoveNetworkSecurityGroupSecurityRulesDetails(
        security_rule_ids=[added[0].id, added[1].id]
    )
    vn.remove_network_security_group_security_rules(nsg_id, remove)
    remaining = oci.pagination.list_call_get_all_results(
        vn.list_network_security_group_security_rules, nsg_id
    ).data
    assert [r.id for r in remaining] == [r.id for r in added[2:]]
    assert vn.get_network_security_group(nsg_id).headers["etag"] != after_add
    unknown = service_error(vn.remove_network_security_group_security_rules, nsg_id, remove)
    assert unknown.status == 400
    assert oci_api.requests_to("*/actions/removeSecurityRules")[0].body == {
        "securityRuleIds": [added[0].id, added[1].id]
    }

    change = core.UpdateNetworkSecurityGroupSecurityRulesDetails(
        security_rules=[
            core.UpdateSecurityRuleDetails(
                id=added[2].id, direction="EGRESS", protocol="all", destination="0.0.0.0/0"
            )
        ]
    )
    updated = vn.update_network_security_group_security_rules(nsg_id, change).data
    assert updated.security_rules[0].id == added[2].id
    egress = vn.list_network_security_group_security_rules(nsg_id, direction="EGRESS").data
    assert [(r.id, r.destination, r.destination_type) for r in egress] == [
        (added[2].id, "0.0.0.0/0", "CIDR_BLOCK")
    ]


def test_nsg_rule_pointing_at_a_missing_nsg_is_not_valid(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    peers = [world.nsgs["endpoint"], "ocid1.networksecuritygroup.oc1..gone"]
    details = core.AddNetworkSecurityGroupSecurityRulesDetails(
        security_rules=[
            core.AddSecurityRuleDetails(
                direction="INGRESS", protocol="6", source=p, source_type="NETWORK_SECURITY_GROUP"
            )
            for p in peers
        ]
    )
    added = vn.add_network_security_group_security_rules(world.nsgs["pods"], details).data
    assert [r.is_valid for r in added.security_rules] == [True, False]


def test_security_list_update_replaces_the_rule_lists_whole(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    sl_id = world.security_lists["workers"]
    etag = vn.get_security_list(sl_id).headers["etag"]
    assert len(oci_api.get(sl_id)["ingressSecurityRules"]) == 2
    only = core.IngressSecurityRule(protocol="6", source="10.0.0.0/16", source_type="CIDR_BLOCK")
    details = core.UpdateSecurityListDetails(ingress_security_rules=[only])
    updated = vn.update_security_list(sl_id, details, if_match=etag)
    assert [(r.protocol, r.source) for r in updated.data.ingress_security_rules] == [
        ("6", "10.0.0.0/16")
    ]
    assert len(updated.data.egress_security_rules) == 1  # not sent: unchanged
    assert "tcpOptions" not in oci_api.get(sl_id)["ingressSecurityRules"][0]
    stale = service_error(vn.update_security_list, sl_id, details, if_match=etag)
    assert (stale.status, stale.code) == (412, "NoEtagMatch")


# -- Container Engine work requests ---------------------------------------------------------


def test_endpoint_update_is_applied_when_its_work_request_succeeds(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    oci_api.work_request_polls = 3
    cluster_id = world.cluster_id
    etag = ce.get_cluster(cluster_id).headers["etag"]
    details = ce_models.UpdateClusterEndpointConfigDetails(
        is_public_ip_enabled=False, nsg_ids=[world.nsgs["workers"]]
    )
    stale = service_error(ce.update_cluster_endpoint_config, cluster_id, details, if_match="old")
    assert (stale.status, stale.code) == (412, "NoEtagMatch")

    accepted = ce.update_cluster_endpoint_config(cluster_id, details, if_match=etag)
    assert accepted.status == 202 and accepted.data is None
    wr_id = accepted.headers["opc-work-request-id"]
    assert oci_api.work_requests[wr_id]["status"] == "ACCEPTED"
    assert ce.get_cluster(cluster_id).data.lifecycle_state == "UPDATING"
    busy = service_error(ce.update_cluster_endpoint_config, cluster_id, details)
    assert busy.status == 409

    statuses = []
    for _ in range(3):
        statuses.append(ce.get_work_request(wr_id).data.status)
        if statuses[-1] != "SUCCEEDED":
            endpoint = ce.get_cluster(cluster_id).data.endpoint_config
            assert endpoint.nsg_ids == [world.nsgs["endpoint"]]  # not applied yet
    assert statuses == ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
    request = ce.get_work_request(wr_id).data
    assert request.operation_type == "CLUSTER_UPDATE"
    assert request.compartment_id == COMPARTMENT
    assert request.time_accepted <= request.time_started <= request.time_finished
    [resource] = request.resources
    assert (resource.entity_type, resource.action_type, resource.identifier) == (
        "cluster",
        "UPDATED",
        cluster_id,
    )
    cluster = ce.get_cluster(cluster_id).data
    assert cluster.lifecycle_state == "ACTIVE"
    assert cluster.endpoint_config.nsg_ids == [world.nsgs["workers"]]
    assert cluster.endpoint_config.subnet_id == world.subnets["endpoint"]  # merged
    assert ce.list_work_request_errors(COMPARTMENT, wr_id).data == []
    listed = ce.list_work_requests(COMPARTMENT, resource_id=cluster_id).data
    assert [w.id for w in listed] == [wr_id]
    assert oci_api.requests_to("*/actions/updateEndpointConfig")[-1].body == {
        "isPublicIpEnabled": False,
        "nsgIds": [world.nsgs["workers"]],
    }


def test_wait_until_sees_the_work_request_succeed(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    details = ce_models.UpdateClusterDetails(
        kubernetes_version="v1.31.1",
        options=ce_models.UpdateClusterOptionsDetails(
            admission_controller_options=ce_models.AdmissionControllerOptions(
                is_pod_security_policy_enabled=False
            )
        ),
    )
    wr_id = ce.update_cluster(world.cluster_id, details).headers["opc-work-request-id"]
    done = oci.wait_until(
        ce,
        ce.get_work_request(wr_id),
        "status",
        "SUCCEEDED",
        max_interval_seconds=0.05,
        max_wait_seconds=10,
    )
    assert done.data.status == "SUCCEEDED"
    cluster = ce.get_cluster(world.cluster_id).data
    assert cluster.kubernetes_version == "v1.31.1"
    assert cluster.options.service_lb_subnet_ids == [world.subnets["lb"]]  # options merged
    assert cluster.options.admission_controller_options.is_pod_security_policy_enabled is False


def test_a_failed_work_request_leaves_the_resource_unchanged(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    oci_api.work_request_polls = 1
    pool_id = world.node_pool_ids[0]
    before = {k: v for k, v in oci_api.get(pool_id).items() if k != "lifecycleState"}
    oci_api.fail_next_work_request("out of capacity")
    details = ce_models.UpdateNodePoolDetails(
        node_config_details=ce_models.UpdateNodePoolNodeConfigDetails(size=5)
    )
    wr_id = ce.update_node_pool(pool_id, details).headers["opc-work-request-id"]
    assert ce.get_work_request(wr_id).data.status == "FAILED"
    errors = ce.list_work_request_errors(COMPARTMENT, wr_id).data
    assert [e.message for e in errors] == ["out of capacity"]
    assert ce.get_work_request(wr_id).data.resources[0].action_type == "FAILED"
    after = ce.get_node_pool(pool_id).data
    assert after.lifecycle_state == "ACTIVE"
    assert {k: v for k, v in oci_api.get(pool_id).items() if k != "lifecycleState"} == before
    # only the next one fails
    wr_ok = ce.update_node_pool(pool_id, details).headers["opc-work-request-id"]
    assert ce.get_work_request(wr_ok).data.status == "SUCCEEDED"
    assert len(ce.get_node_pool(pool_id).data.nodes) == 5


def test_a_work_request_naming_a_missing_nsg_fails(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    details = ce_models.UpdateClusterEndpointConfigDetails(nsg_ids=["ocid1.nsg.gone"])
    wr_id = ce.update_cluster_endpoint_config(world.cluster_id, details).headers[
        "opc-work-request-id"
    ]
    assert oci_api.finish_work_requests() == [wr_id]
    assert oci_api.work_requests[wr_id]["status"] == "FAILED"
    assert oci_api.get(world.cluster_id)["endpointConfig"]["nsgIds"] == [world.nsgs["endpoint"]]


def test_node_pool_update_merges_node_config_and_cycles_nodes(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    pool_id = world.node_pool_ids[1]
    pool = ce.get_node_pool(pool_id)
    old_ids = [n.id for n in pool.data.nodes]
    stale = service_error(
        ce.update_node_pool, pool_id, ce_models.UpdateNodePoolDetails(name="x"), if_match="old"
    )
    assert (stale.status, stale.code) == (412, "NoEtagMatch")
    new_nsg = world.nsgs["pods"]
    details = ce_models.UpdateNodePoolDetails(
        node_config_details=ce_models.UpdateNodePoolNodeConfigDetails(nsg_ids=[new_nsg]),
        node_pool_cycling_details=ce_models.NodePoolCyclingDetails(
            is_node_cycling_enabled=True, maximum_surge="1", maximum_unavailable="0"
        ),
    )
    accepted = ce.update_node_pool(pool_id, details, if_match=pool.headers["etag"])
    assert accepted.status == 202
    wr_id = accepted.headers["opc-work-request-id"]
    assert ce.get_node_pool(pool_id).data.nodes[0].id == old_ids[0]  # not yet
    assert oci_api.node_cycles == []
    while (request := ce.get_work_request(wr_id).data).status != "SUCCEEDED":
        assert request.status in ("ACCEPTED", "IN_PROGRESS")
    assert request.operation_type == "NODEPOOL_CYCLING"
    assert request.resources[0].entity_type == "nodepool"

    after = ce.get_node_pool(pool_id).data
    config = after.node_config_details
    assert config.nsg_ids == [new_nsg]
    assert config.size == 2
    assert config.placement_configs[0].subnet_id == world.subnets["workers"]
    assert config.node_pool_pod_network_option_details.pod_subnet_ids == [world.subnets["pods"]]
    new_ids = [n.id for n in after.nodes]
    assert len(new_ids) == 2 and not set(new_ids) & set(old_ids)
    assert {n.name for n in after.nodes}.isdisjoint(n.name for n in pool.data.nodes)
    [cycle] = oci_api.node_cycles
    assert (cycle.node_pool_id, cycle.work_request_id) == (pool_id, wr_id)
    assert (list(cycle.old_node_ids), list(cycle.new_node_ids)) == (old_ids, new_ids)
    sent = oci_api.requests_to(f"/20180222/nodePools/{pool_id}", "PUT")[-1]
    assert sent.if_match == pool.headers["etag"]
    assert sent.body["nodeConfigDetails"] == {"nsgIds": [new_nsg]}


def test_node_pool_update_without_cycling_keeps_the_nodes(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    oci_api.work_request_polls = 0  # applied at once
    pool_id = world.node_pool_ids[0]
    old_ids = [n["id"] for n in oci_api.get(pool_id)["nodes"]]
    details = ce_models.UpdateNodePoolDetails(
        kubernetes_version="v1.30.1",
        node_config_details=ce_models.UpdateNodePoolNodeConfigDetails(nsg_ids=[]),
    )
    wr_id = ce.update_node_pool(pool_id, details).headers["opc-work-request-id"]
    assert oci_api.work_requests[wr_id]["operationType"] == "NODEPOOL_UPDATE"
    pool = ce.get_node_pool(pool_id).data
    assert pool.kubernetes_version == "v1.30.1"
    assert pool.node_config_details.nsg_ids == []
    assert [n.id for n in pool.nodes] == old_ids
    assert oci_api.node_cycles == []


def test_a_retried_node_pool_update_makes_one_work_request(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    ce = sdk_client(oci.container_engine.ContainerEngineClient, oci_api, oci_config)
    pool_id = world.node_pool_ids[0]
    body = ce_models.UpdateNodePoolDetails(name="renamed")

    def put(token: str) -> Any:
        # the SDK's update_node_pool sends no retry token; send one as a client could
        return ce.base_client.call_api(
            resource_path="/nodePools/{nodePoolId}",
            method="PUT",
            path_params={"nodePoolId": pool_id},
            header_params={"opc-retry-token": token, "content-type": "application/json"},
            body=body,
        )

    first, second = put("wr-token"), put("wr-token")
    assert first.headers["opc-work-request-id"] == second.headers["opc-work-request-id"]
    assert len(oci_api.work_requests) == 1
    oci_api.finish_work_requests()
    assert oci_api.get(pool_id)["name"] == "renamed"


# -- Vault and secret bundles ---------------------------------------------------------------


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def stages(api: FakeOciApi, secret_id: str) -> dict[int, list[str]]:
    return {v["versionNumber"]: v["stages"] for v in api.secret_versions[secret_id]}


def test_update_secret_adds_a_current_version_and_rolls_back(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vaults = sdk_client(oci.vault.VaultsClient, oci_api, oci_config)
    bundles = sdk_client(oci.secrets.SecretsClient, oci_api, oci_config)
    secret_id = world.secret_ids[1]
    etag = vaults.get_secret(secret_id).headers["etag"]
    content = vault_models.Base64SecretContentDetails(
        content_type="BASE64", content=encoded("new-password"), stage="CURRENT"
    )
    details = vault_models.UpdateSecretDetails(secret_content=content)
    stale = service_error(vaults.update_secret, secret_id, details, if_match="old")
    assert (stale.status, stale.code) == (412, "NoEtagMatch")

    updated = vaults.update_secret(secret_id, details, if_match=etag)
    assert updated.data.current_version_number == 3
    assert updated.headers["etag"] != etag
    assert stages(oci_api, secret_id) == {
        1: ["DEPRECATED"],
        2: ["PREVIOUS"],
        3: ["CURRENT", "LATEST"],
    }
    assert oci_api.secret_contents[(secret_id, 3)] == encoded("new-password")
    versions = vaults.list_secret_versions(secret_id).data
    assert versions[-1].version_number == 3 and versions[-1].time_created.year >= 2026
    assert bundles.get_secret_bundle(secret_id).data.secret_bundle_content.content == encoded(
        "new-password"
    )

    rollback = vault_models.UpdateSecretDetails(current_version_number=2)
    rolled = vaults.update_secret(secret_id, rollback, if_match=updated.headers["etag"])
    assert rolled.data.current_version_number == 2
    assert stages(oci_api, secret_id) == {
        1: ["DEPRECATED"],
        2: ["CURRENT"],
        3: ["PREVIOUS", "LATEST"],
    }
    current = bundles.get_secret_bundle(secret_id, stage="CURRENT").data
    assert current.version_number == 2
    assert current.secret_bundle_content.content == secret_content("db-password-1", 2)
    missing = vault_models.UpdateSecretDetails(current_version_number=9)
    assert service_error(vaults.update_secret, secret_id, missing).status == 400
    assert oci_api.requests_to(f"*/secrets/{secret_id}", "PUT")[1].body == {
        "secretContent": {
            "contentType": "BASE64",
            "content": encoded("new-password"),
            "stage": "CURRENT",
        }
    }


def test_the_vault_api_never_returns_secret_content(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vaults = sdk_client(oci.vault.VaultsClient, oci_api, oci_config)
    secret_id = world.secret_ids[0]
    content = vault_models.Base64SecretContentDetails(content_type="BASE64", content=encoded("x1"))
    vaults.update_secret(secret_id, vault_models.UpdateSecretDetails(secret_content=content))
    config = oci.config.from_file(str(oci_config))
    signer = oci.signer.Signer(
        config["tenancy"], config["user"], config["fingerprint"], config["key_file"]
    )
    for path in (f"secrets/{secret_id}", f"secrets/{secret_id}/versions"):
        text = requests.get(f"{oci_api.url}/20180608/{path}", auth=signer, timeout=5).text
        assert secret_id in text
        for (sid, _), stored in oci_api.secret_contents.items():
            assert sid != secret_id or stored not in text


def test_rotate_secret_adds_a_version_after_reads(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vaults = sdk_client(oci.vault.VaultsClient, oci_api, oci_config)
    bundles = sdk_client(oci.secrets.SecretsClient, oci_api, oci_config)
    not_rotatable = service_error(vaults.rotate_secret, world.secret_ids[1])
    assert not_rotatable.status == 400
    secret_id = world.secret_ids[0]
    etag = vaults.get_secret(secret_id).headers["etag"]
    assert service_error(vaults.rotate_secret, secret_id, if_match="old").status == 412

    accepted = vaults.rotate_secret(secret_id, if_match=etag, opc_retry_token="rot-1")
    assert accepted.status == 202 and accepted.headers["opc-work-request-id"]
    assert oci_api.requests_to(f"*/secrets/{secret_id}/actions/rotate")[-1].retry_token == "rot-1"
    again = service_error(vaults.rotate_secret, secret_id)
    assert (again.status, again.code) == (409, "IncorrectState")
    assert vaults.get_secret(secret_id).data.rotation_status == "IN_PROGRESS"  # read 1
    versions = vaults.list_secret_versions(secret_id).data  # read 2: done
    assert [v.version_number for v in versions] == [1, 2, 3]
    assert versions[-1].stages == ["CURRENT", "LATEST"]
    secret = vaults.get_secret(secret_id).data
    assert secret.rotation_status == "SCHEDULED"
    assert secret.current_version_number == 3 and secret.last_rotation_time is not None
    rotated = bundles.get_secret_bundle(secret_id).data.secret_bundle_content.content
    assert rotated == oci_api.secret_contents[(secret_id, 3)]
    assert rotated not in (secret_content("db-password-0", v) for v in (1, 2))
    assert base64.b64decode(rotated)


def test_get_secret_bundle_by_stage_and_version_number(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    bundles = sdk_client(oci.secrets.SecretsClient, oci_api, oci_config)
    secret_id = world.secret_ids[0]
    expected = {
        "CURRENT": 2,
        "LATEST": 2,
        "PREVIOUS": 1,
    }
    for stage, number in expected.items():
        bundle = bundles.get_secret_bundle(secret_id, stage=stage).data
        assert isinstance(
            bundle.secret_bundle_content, oci.secrets.models.Base64SecretBundleContentDetails
        )
        assert bundle.secret_bundle_content.content_type == "BASE64"
        assert bundle.version_number == number and stage in bundle.stages
        assert bundle.secret_bundle_content.content == secret_content("db-password-0", number)
    first = bundles.get_secret_bundle(secret_id, version_number=1).data
    assert (first.version_number, first.stages) == (1, ["PREVIOUS"])
    assert service_error(bundles.get_secret_bundle, secret_id, version_number=7).status == 404
    assert service_error(bundles.get_secret_bundle, secret_id, stage="PENDING").status == 404
    assert service_error(bundles.get_secret_bundle, "ocid1.vaultsecret.gone").status == 404
    assert oci_api.requests_to(f"/20190301/secretbundles/{secret_id}")[0].query == {
        "stage": ["CURRENT"]
    }


def test_service_endpoints_cover_secrets(oci_api: FakeOciApi) -> None:
    assert oci_api.service_endpoints()["secrets"] == oci_api.url


def test_plain_writes_to_unknown_paths_are_not_found(
    oci_api: FakeOciApi, world: OkeWorld, oci_config: Path
) -> None:
    vn = sdk_client(oci.core.VirtualNetworkClient, oci_api, oci_config)
    assert service_error(vn.delete_subnet, world.subnets["lb"]).status == 404
    rules = [rule("ingress", "10.0.0.0/8", port=22)]
    oci_api.set_nsg_rules(world.nsgs["pods"], rules)
    listed = vn.list_network_security_group_security_rules(world.nsgs["pods"]).data
    assert [r.source for r in listed] == ["10.0.0.0/8"]
