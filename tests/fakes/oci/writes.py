"""The write operations of the fake OCI API: network security groups and their security
rules, Container Engine cluster and node pool updates (as work requests), and Vault secret
updates and rotations; ``_WRITES`` routes a method and path to one."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tests.fakes.oci.model import _ID, REGION, NodeCycle, _fail, _Reply, _Rotation, now_iso

if TYPE_CHECKING:
    from tests.fakes.oci.store import FakeOciApi


# -- write operations: (api, OCID from the path or "", JSON body) -> answer --------------------
# They run under the fake's lock, after the resource's kind and ``if-match`` were checked.
_MAX_RULES_PER_CALL = 25  # AddSecurityRules refuses more in one request
_MAX_RULES_PER_NSG = 120


def _stale(api: FakeOciApi, ocid: str, if_match: str | None) -> _Reply | None:
    if if_match is not None and if_match != api.etags[ocid]:
        return _fail(412, message=f"The If-Match header {if_match!r} does not match the etag.")
    return None


def _busy(api: FakeOciApi, ocid: str) -> _Reply | None:
    if api._busy(ocid) or ocid in api._rotations:
        return _fail(409, "IncorrectState", f"{ocid} has a work request in progress.")
    return None


def _create_nsg(api: FakeOciApi, _: str, body: dict[str, Any]) -> _Reply:
    for key in ("compartmentId", "vcnId"):
        if not body.get(key):
            return _fail(400, "MissingParameter", f"{key} is required.")
    if api.kinds.get(body["vcnId"]) != "vcn":
        return _fail(400, "RelatedResourceNotAuthorizedOrNotFound", "The VCN was not found.")
    at = now_iso()
    display = body.get("displayName") or f"nsg{at[:19].replace('-', '').replace(':', '')}"
    doc = {
        "compartmentId": body["compartmentId"],
        "vcnId": body["vcnId"],
        "displayName": display,
        "definedTags": body.get("definedTags") or {},
        "freeformTags": body.get("freeformTags") or {},
        "systemTags": {},
        "lifecycleState": "AVAILABLE",
        "timeCreated": at,
    }
    ocid = api.add("networkSecurityGroup", doc)
    api.nsg_rules[ocid] = []
    return _Reply(200, copy.deepcopy(api.resources[ocid]), {"etag": api.etags[ocid]})


def _delete_nsg(api: FakeOciApi, ocid: str, _: dict[str, Any]) -> _Reply:
    users = [
        o
        for o, doc in api.resources.items()
        if ocid in (doc.get("endpointConfig") or {}).get("nsgIds", [])
        or ocid in (doc.get("nodeConfigDetails") or {}).get("nsgIds", [])
        or ocid
        in ((doc.get("nodeConfigDetails") or {}).get("nodePoolPodNetworkOptionDetails") or {}).get(
            "podNsgIds", []
        )
    ]
    if users:
        return _fail(409, "Conflict", f"The network security group has VNICs (used by {users}).")
    api.remove(ocid)
    api.nsg_rules.pop(ocid, None)
    return _Reply(204)


def _rule_problem(rule: Any) -> str | None:
    if not isinstance(rule, dict):
        return "a security rule must be an object"
    direction = rule.get("direction")
    if direction not in ("INGRESS", "EGRESS"):
        return f"direction must be INGRESS or EGRESS, not {direction!r}"
    if not rule.get("protocol"):
        return "protocol is required"
    peer = "source" if direction == "INGRESS" else "destination"
    if not rule.get(peer):
        return f"{peer} is required for an {direction} rule"
    return None


def _stored_rule(api: FakeOciApi, rule: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """A rule as the NSG keeps it: with id, types defaulted, validity of an NSG peer."""
    peer = "source" if rule["direction"] == "INGRESS" else "destination"
    stored = {k: v for k, v in copy.deepcopy(rule).items() if k not in ("id", "isValid")}
    stored.setdefault(f"{peer}Type", "CIDR_BLOCK")
    stored.setdefault("isStateless", False)
    valid = stored[f"{peer}Type"] != "NETWORK_SECURITY_GROUP" or (
        api.kinds.get(stored[peer]) == "networkSecurityGroup"
    )
    stored.setdefault("timeCreated", now_iso())
    return {**stored, "id": rule_id, "isValid": valid}


def _add_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    rules = body.get("securityRules")
    if not isinstance(rules, list) or not rules:
        return _fail(400, "MissingParameter", "securityRules is required.")
    if len(rules) > _MAX_RULES_PER_CALL:
        message = f"At most {_MAX_RULES_PER_CALL} security rules can be added in one request."
        return _fail(400, "InvalidParameter", message)
    existing = api.nsg_rules.setdefault(ocid, [])
    if len(existing) + len(rules) > _MAX_RULES_PER_NSG:
        return _fail(400, "LimitExceeded", f"An NSG holds at most {_MAX_RULES_PER_NSG} rules.")
    for problem in map(_rule_problem, rules):
        if problem is not None:
            return _fail(400, "InvalidParameter", problem)
    added = [_stored_rule(api, r, f"{next(api._counter):06X}") for r in rules]
    existing.extend(copy.deepcopy(added))
    api._touch(ocid)
    return _Reply(200, {"securityRules": added})


def _remove_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    ids = body.get("securityRuleIds")
    if not isinstance(ids, list) or not ids:
        return _fail(400, "MissingParameter", "securityRuleIds is required.")
    existing = api.nsg_rules.setdefault(ocid, [])
    unknown = set(ids) - {r["id"] for r in existing}
    if unknown:
        return _fail(400, "InvalidParameter", f"Unknown security rule ids: {sorted(unknown)}")
    api.nsg_rules[ocid] = [r for r in existing if r["id"] not in ids]
    api._touch(ocid)
    return _Reply(204)


def _update_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    rules = body.get("securityRules")
    if not isinstance(rules, list) or not rules:
        return _fail(400, "MissingParameter", "securityRules is required.")
    existing = {r["id"]: i for i, r in enumerate(api.nsg_rules.setdefault(ocid, []))}
    for rule in rules:
        problem = _rule_problem(rule)
        if problem is None and rule.get("id") not in existing:
            problem = f"Unknown security rule id: {rule.get('id')!r}"
        if problem is not None:
            return _fail(400, "InvalidParameter", problem)
    updated = [_stored_rule(api, r, r["id"]) for r in rules]
    for rule in updated:
        api.nsg_rules[ocid][existing[rule["id"]]] = copy.deepcopy(rule)
    api._touch(ocid)
    return _Reply(200, {"securityRules": updated})


def _missing_nsgs(api: FakeOciApi, nsg_ids: Any) -> str | None:
    missing = [n for n in nsg_ids or [] if api.kinds.get(n) != "networkSecurityGroup"]
    return f"Network security groups not found: {missing}" if missing else None


def _accepted(wr_id: str) -> _Reply:
    return _Reply(202, None, {"opc-work-request-id": wr_id})


def _update_endpoint_config(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = copy.deepcopy(body)

    def apply() -> str | None:
        if (problem := _missing_nsgs(api, changes.get("nsgIds"))) is not None:
            return problem
        endpoint = {**(api.resources[ocid].get("endpointConfig") or {}), **changes}
        api.update(ocid, endpointConfig=endpoint)
        return None

    return _accepted(api._start_work("CLUSTER_UPDATE", ocid, apply))


def _update_cluster(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = {k: v for k, v in copy.deepcopy(body).items() if k != "id"}

    def apply() -> str | None:
        if "options" in changes:  # UpdateClusterOptionsDetails: only the keys sent change
            changes["options"] = {
                **(api.resources[ocid].get("options") or {}),
                **changes["options"],
            }
        api.update(ocid, **changes)
        return None

    return _accepted(api._start_work("CLUSTER_UPDATE", ocid, apply))


def _new_nodes(api: FakeOciApi, pool: dict[str, Any], count: int) -> list[dict[str, Any]]:
    placements = (pool.get("nodeConfigDetails") or {}).get("placementConfigs") or [{}]
    nodes = []
    for _ in range(count):
        n = next(api._counter)
        nodes.append(
            {
                "id": f"ocid1.instance.oc1.{REGION}.fakenode{n:06d}",
                "name": f"oke-{pool.get('name', 'pool')}-{n}",
                "privateIp": f"10.0.{200 + n // 250 % 50}.{n % 250 + 2}",
                "publicIp": None,
                "lifecycleState": "ACTIVE",
                "nodePoolId": pool["id"],
                "subnetId": placements[0].get("subnetId"),
                "kubernetesVersion": pool.get("kubernetesVersion"),
            }
        )
    return nodes


def _update_node_pool(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = {k: v for k, v in copy.deepcopy(body).items() if k != "id"}
    cycling = (changes.get("nodePoolCyclingDetails") or {}).get("isNodeCyclingEnabled") is True
    wr_id = ""

    def apply() -> str | None:
        pool = api.resources[ocid]
        config = {**(pool.get("nodeConfigDetails") or {}), **changes.get("nodeConfigDetails", {})}
        if (problem := _missing_nsgs(api, config.get("nsgIds"))) is not None:
            return problem
        if "nodeConfigDetails" in changes:  # merged key by key, as the service does
            changes["nodeConfigDetails"] = config
        source = changes.get("nodeSourceDetails") or {}
        if source.get("imageId"):
            changes["nodeImageId"] = source["imageId"]
            changes["nodeSource"] = {**(pool.get("nodeSource") or {}), **source}
        api.update(ocid, **changes)
        pool = api.resources[ocid]
        nodes: list[dict[str, Any]] = list(pool.get("nodes") or [])
        size = int(config.get("size", len(nodes)))
        if cycling:
            new = _new_nodes(api, pool, size)
            cycle = NodeCycle(
                ocid, wr_id, tuple(x["id"] for x in nodes), tuple(x["id"] for x in new)
            )
            api.node_cycles.append(cycle)
            nodes = new
        else:
            nodes = nodes[:size] + _new_nodes(api, pool, size - len(nodes))
        api.update(ocid, nodes=nodes)
        return None

    wr_id = api.new_ocid("clustersworkrequest")
    operation = "NODEPOOL_CYCLING" if cycling else "NODEPOOL_UPDATE"
    return _accepted(api._start_work(operation, ocid, apply, wr_id=wr_id))


def _update_secret(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if ocid in api._rotations:
        return _fail(409, "IncorrectState", "The secret is being rotated.")
    content = body.get("secretContent")
    number = body.get("currentVersionNumber")
    if content is not None and number is not None:
        message = "secretContent and currentVersionNumber cannot be changed together."
        return _fail(400, "InvalidParameter", message)
    if content is not None:
        if content.get("contentType") != "BASE64":
            return _fail(400, "InvalidParameter", "secretContent.contentType must be BASE64.")
        try:
            base64.b64decode(content.get("content") or "", validate=True)
        except binascii.Error:
            return _fail(400, "InvalidParameter", "secretContent.content is not base64.")
        stage = content.get("stage") or "CURRENT"
        if stage not in ("CURRENT", "PENDING"):
            return _fail(400, "InvalidParameter", "secretContent.stage must be CURRENT or PENDING.")
        api.add_secret_version(
            ocid, content.get("content") or "", stage=stage, name=content.get("name")
        )
    elif number is not None:
        if number not in {v["versionNumber"] for v in api.secret_versions.get(ocid, [])}:
            return _fail(400, "InvalidParameter", f"The secret has no version {number}.")
        api.make_secret_version_current(ocid, number)
    rest = {
        k: v for k, v in body.items() if k not in ("secretContent", "currentVersionNumber", "id")
    }
    api.update(ocid, **rest)  # a new etag even when only the version changed
    return _Reply(200, copy.deepcopy(api.resources[ocid]), {"etag": api.etags[ocid]})


def _rotate_secret(api: FakeOciApi, ocid: str, _: dict[str, Any]) -> _Reply:
    config = api.resources[ocid].get("rotationConfig") or {}
    if not config.get("targetSystemDetails"):
        message = "The secret has no rotation configuration (rotationConfig.targetSystemDetails)."
        return _fail(400, "InvalidParameter", message)
    if ocid in api._rotations:
        return _fail(409, "IncorrectState", "The secret is already being rotated.")
    wr_id = api.new_ocid("secretworkrequest")
    api._rotations[ocid] = _Rotation(wr_id)
    api.update(ocid, rotationStatus="IN_PROGRESS")
    if api.work_request_polls <= 0:
        api._complete_rotation(ocid)
    return _accepted(wr_id)


_V, _N, _NSG = "/20160918", "networkSecurityGroup", rf"/20160918/networkSecurityGroups/{_ID}"
_WRITES: list[tuple[str, re.Pattern[str], str | None, Callable[..., _Reply]]] = [
    ("POST", re.compile(f"{_V}/networkSecurityGroups"), None, _create_nsg),
    ("DELETE", re.compile(_NSG), _N, _delete_nsg),
    ("POST", re.compile(f"{_NSG}/actions/addSecurityRules"), _N, _add_rules),
    ("POST", re.compile(f"{_NSG}/actions/removeSecurityRules"), _N, _remove_rules),
    ("POST", re.compile(f"{_NSG}/actions/updateSecurityRules"), _N, _update_rules),
    (
        "POST",
        re.compile(rf"/20180222/clusters/{_ID}/actions/updateEndpointConfig"),
        "cluster",
        _update_endpoint_config,
    ),
    ("PUT", re.compile(rf"/20180222/clusters/{_ID}"), "cluster", _update_cluster),
    ("PUT", re.compile(rf"/20180222/nodePools/{_ID}"), "nodePool", _update_node_pool),
    ("PUT", re.compile(rf"/20180608/secrets/{_ID}"), "secret", _update_secret),
    ("POST", re.compile(rf"/20180608/secrets/{_ID}/actions/rotate"), "secret", _rotate_secret),
]
