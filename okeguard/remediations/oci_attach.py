"""OCI operations that change existing resources: NSG attachments, security lists, the endpoint.

Registered on import of :mod:`okeguard.remediations.oci_actions` (which the engine loads). Each
update carries ``if_match``: the etag pinned in the plan for the forward write (a target changed
since approval is refused with nothing written), the live etag for an undo, which first checks
that the resource still holds what the forward write set. Container Engine updates are followed
to the end of their work request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from okeguard.inventory.oci_convert import to_rule
from okeguard.inventory.oci_model import SecurityRule
from okeguard.remediations.engine import Backends, StepFailed, VerifyFailed, action
from okeguard.remediations.nsg_lb import service_problems
from okeguard.remediations.oci_actions import (
    _ce,
    _net,
    _nsg_rules,
    _pinned,
    _rules,
    _writer,
    find_nsg,
)
from okeguard.remediations.oci_writer import security_list_rule
from okeguard.remediations.plan import Operation


def _resolve(backends: Backends, keep: Any, refs: Any) -> list[str]:
    """``keep`` followed by the OCIDs of the plan's NSGs named in ``refs``."""
    ids = [str(i) for i in keep or ()]
    for ref in refs or ():
        nsg_id = find_nsg(backends, ref)
        if nsg_id is None:
            raise StepFailed(f"NSG {ref['display_name']} (step {int(ref['step']) + 1}) is gone")
        ids.append(nsg_id)
    return list(dict.fromkeys(ids))


# -- the cluster endpoint ---------------------------------------------------------------------


def _cluster(backends: Backends, op: Operation) -> tuple[Any, str | None]:
    cluster_id = op.target["ocid"]
    return _writer(backends).read(f"cluster {cluster_id}", _ce(backends).get_cluster, cluster_id)


def _endpoint_update(
    backends: Backends, op: Operation, etag: str | None, what: str, **changes: Any
) -> str:
    import oci

    details = oci.container_engine.models.UpdateClusterEndpointConfigDetails(**changes)
    return _writer(backends).write_and_wait(
        backends,
        what,
        _ce(backends).update_cluster_endpoint_config,
        op.target["ocid"],
        details,
        if_match=etag,
    )


def _endpoint_nsgs(cluster: Any) -> list[str]:
    return list((cluster.endpoint_config.nsg_ids if cluster.endpoint_config else None) or [])


@action("oci.attach-endpoint-nsgs")
class AttachEndpointNsgsAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        _, etag = _cluster(backends, op)
        _pinned(op, etag, f"cluster {op.target.get('name')}")

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        ids = _resolve(backends, op.params.get("keep_nsg_ids"), op.params.get("add"))
        what = f"attaching NSGs to the endpoint of cluster {op.target.get('name')}"
        wr = _endpoint_update(backends, op, op.params.get("etag"), what, nsg_ids=ids)
        return {"nsg_ids": ids, "work_request_id": wr}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        ids = record.get("nsg_ids") or _resolve(
            backends, op.params.get("keep_nsg_ids"), op.params.get("add")
        )
        live = _endpoint_nsgs(_cluster(backends, op)[0])
        if set(live) != set(ids):
            raise VerifyFailed(f"the endpoint carries NSGs {live}, not {list(ids)}")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        live = _endpoint_nsgs(_cluster(backends, op)[0])
        return set(live) != set(op.undo.get("nsg_ids") or ())

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        cluster, etag = _cluster(backends, op)
        original = list(op.undo.get("nsg_ids") or ())
        if set(_endpoint_nsgs(cluster)) == set(original):
            return {"note": "the endpoint already carries its original NSGs"}
        what = f"restoring the endpoint NSGs of cluster {op.target.get('name')}"
        wr = _endpoint_update(backends, op, etag, what, nsg_ids=original)
        return {"nsg_ids": original, "work_request_id": wr}


@action("oci.set-endpoint-public")
class SetEndpointPublicAction:
    """``is_public_ip_enabled`` of the endpoint: ``params.value``; ``undo.value`` restores it."""

    def _live(self, op: Operation, backends: Backends) -> tuple[bool, str | None]:
        cluster, etag = _cluster(backends, op)
        if cluster.endpoint_config is None:
            raise StepFailed(f"cluster {op.target.get('name')} has no endpoint_config")
        return bool(cluster.endpoint_config.is_public_ip_enabled), etag

    def dry_run(self, op: Operation, backends: Backends) -> None:
        _, etag = self._live(op, backends)
        _pinned(op, etag, f"cluster {op.target.get('name')}")

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        value = bool(op.params["value"])
        what = f"setting is_public_ip_enabled={value} on cluster {op.target.get('name')}"
        wr = _endpoint_update(backends, op, op.params.get("etag"), what, is_public_ip_enabled=value)
        return {"is_public_ip_enabled": value, "work_request_id": wr}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        live, _ = self._live(op, backends)
        if live != bool(op.params["value"]):
            raise VerifyFailed(f"the endpoint's is_public_ip_enabled is still {live}")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        return self._live(op, backends)[0] == bool(op.params["value"])

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        live, etag = self._live(op, backends)
        value = bool(op.undo["value"])
        if live == value:
            return {"note": f"is_public_ip_enabled is already {value}"}
        what = f"restoring is_public_ip_enabled={value} on cluster {op.target.get('name')}"
        wr = _endpoint_update(backends, op, etag, what, is_public_ip_enabled=value)
        return {"is_public_ip_enabled": value, "work_request_id": wr}


# -- node pools -------------------------------------------------------------------------------


def _pool(backends: Backends, op: Operation) -> tuple[Any, str | None]:
    pool_id = op.target["ocid"]
    return _writer(backends).read(f"node pool {pool_id}", _ce(backends).get_node_pool, pool_id)


def _pool_nsgs(pool: Any) -> tuple[list[str], list[str]]:
    details = pool.node_config_details
    pod = getattr(details, "node_pool_pod_network_option_details", None) if details else None
    return list((details.nsg_ids if details else None) or []), list(
        getattr(pod, "pod_nsg_ids", None) or []
    )


def _pool_update(
    backends: Backends,
    op: Operation,
    pool: Any,
    etag: str | None,
    nsg_ids: list[str],
    pod_nsg_ids: list[str] | None,
    what: str,
) -> str:
    """``update_node_pool`` with node cycling, so every existing node is replaced by one whose
    VNICs carry the new NSGs (OKE cordons and drains each old node, honouring PDBs)."""
    import oci

    models = oci.container_engine.models
    config: dict[str, Any] = {"nsg_ids": nsg_ids}
    pod = getattr(pool.node_config_details, "node_pool_pod_network_option_details", None)
    if pod_nsg_ids is not None and pod is not None and pod.cni_type == "OCI_VCN_IP_NATIVE":
        config["node_pool_pod_network_option_details"] = (
            models.OciVcnIpNativeNodePoolPodNetworkOptionDetails(
                cni_type=pod.cni_type,
                pod_subnet_ids=pod.pod_subnet_ids,
                max_pods_per_node=pod.max_pods_per_node,
                pod_nsg_ids=pod_nsg_ids,
            )
        )
    cycle = op.params.get("cycling") or {}
    details = models.UpdateNodePoolDetails(
        node_config_details=models.UpdateNodePoolNodeConfigDetails(**config),
        node_pool_cycling_details=models.NodePoolCyclingDetails(
            is_node_cycling_enabled=True,
            maximum_surge=str(cycle.get("maximum_surge", "1")),
            maximum_unavailable=str(cycle.get("maximum_unavailable", "0")),
        ),
    )
    return _writer(backends).write_and_wait(
        backends, what, _ce(backends).update_node_pool, op.target["ocid"], details, if_match=etag
    )


@action("oci.attach-node-pool-nsgs")
class AttachNodePoolNsgsAction:
    def _wanted(self, op: Operation, backends: Backends) -> tuple[list[str], list[str] | None]:
        p = op.params
        nsgs = _resolve(backends, p.get("keep_nsg_ids"), p.get("add"))
        pods = _resolve(backends, p.get("keep_pod_nsg_ids"), p.get("add_pod"))
        return nsgs, pods if p.get("add_pod") else None

    def dry_run(self, op: Operation, backends: Backends) -> None:
        _, etag = _pool(backends, op)
        _pinned(op, etag, f"node pool {op.target.get('name')}")

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        pool, _ = _pool(backends, op)
        nsgs, pods = self._wanted(op, backends)
        what = f"attaching NSGs to node pool {op.target.get('name')} (cycling its nodes)"
        wr = _pool_update(backends, op, pool, op.params.get("etag"), nsgs, pods, what)
        return {"nsg_ids": nsgs, "pod_nsg_ids": pods, "work_request_id": wr}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        nsgs, pods = self._wanted(op, backends)
        live, live_pods = _pool_nsgs(_pool(backends, op)[0])
        if set(live) != set(nsgs) or (pods is not None and set(live_pods) != set(pods)):
            raise VerifyFailed(f"node pool {op.target.get('name')} does not carry its new NSGs")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        live, live_pods = _pool_nsgs(_pool(backends, op)[0])
        return set(live) != set(op.undo.get("nsg_ids") or ()) or set(live_pods) != set(
            op.undo.get("pod_nsg_ids") or ()
        )

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        if not self.in_effect(op, backends, record, token):
            return {"note": "the node pool already carries its original NSGs"}
        pool, etag = _pool(backends, op)
        nsgs = list(op.undo.get("nsg_ids") or ())
        pods = list(op.undo.get("pod_nsg_ids") or ()) if op.params.get("add_pod") else None
        what = f"restoring the NSGs of node pool {op.target.get('name')} (cycling its nodes)"
        wr = _pool_update(backends, op, pool, etag, nsgs, pods, what)
        return {"nsg_ids": nsgs, "pod_nsg_ids": pods, "work_request_id": wr}


# -- the check between attaching and removing --------------------------------------------------


def migration_problems(op: Operation, backends: Backends) -> list[str]:
    """What keeps the security lists from being emptied: NSGs without their rules, endpoint,
    node pools or LoadBalancer Services without their NSGs. Empty: the migrated rules are in
    force through NSGs."""
    problems: list[str] = []
    for entry in op.params.get("nsgs") or ():
        nsg_id = find_nsg(backends, entry["nsg"])
        if nsg_id is None:
            problems.append(f"NSG {entry['nsg']['display_name']} is missing")
            continue
        present = {rule for _, rule in _nsg_rules(backends, nsg_id)}
        missing = [r for r in _rules(Operation("", {}, entry, "")) if r not in present]
        if missing:
            problems.append(f"NSG {entry['nsg']['display_name']} lacks {len(missing)} rules")
    endpoint = op.params.get("endpoint")
    if endpoint:
        cluster, _ = _writer(backends).read(
            "the cluster", _ce(backends).get_cluster, endpoint["cluster_id"]
        )
        wanted = set(_resolve(backends, (), endpoint["nsgs"]))
        if not wanted <= set(_endpoint_nsgs(cluster)):
            problems.append("the endpoint does not carry its new NSG")
    for entry in op.params.get("node_pools") or ():
        pool, _ = _writer(backends).read(
            f"node pool {entry['name']}", _ce(backends).get_node_pool, entry["id"]
        )
        nsgs, pods = _pool_nsgs(pool)
        if not set(_resolve(backends, (), entry.get("nsgs"))) <= set(nsgs) or not set(
            _resolve(backends, (), entry.get("pod_nsgs"))
        ) <= set(pods):
            problems.append(f"node pool {entry['name']} does not carry its new NSGs")
    problems += service_problems(backends, list(op.params.get("services") or ()))
    return problems


@action("oci.verify-nsg-migration")
class VerifyNsgMigrationAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        return None

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        problems = migration_problems(op, backends)
        if problems:
            raise StepFailed("not removing any security-list rule: " + "; ".join(problems))
        return {"checked": True}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        problems = migration_problems(op, backends)
        if problems:
            raise VerifyFailed("; ".join(problems))

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        try:
            return not migration_problems(op, backends)
        except StepFailed:
            return False

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return {"note": "a check needs no undo"}


# -- security lists ---------------------------------------------------------------------------


def _security_list(backends: Backends, op: Operation) -> tuple[Any, str | None]:
    sl_id = op.target["ocid"]
    net = _net(backends)
    return _writer(backends).read(
        f"security list {op.target.get('name')}", net.get_security_list, sl_id
    )


def _live_rules(sl: Any) -> list[tuple[Any, SecurityRule]]:
    """(SDK rule, okeguard rule) of every rule of a security list, ingress first."""
    pairs = [(r, to_rule(r, "ingress")) for r in sl.ingress_security_rules or ()]
    return pairs + [(r, to_rule(r, "egress")) for r in sl.egress_security_rules or ()]


def _replace_rules(
    backends: Backends,
    op: Operation,
    etag: str | None,
    kept: list[tuple[Any, SecurityRule]],
    what: str,
) -> str | None:
    """Replace the security list's rules with ``kept`` (full lists, as the API wants)."""
    import oci

    details = oci.core.models.UpdateSecurityListDetails(
        ingress_security_rules=[m for m, r in kept if r.direction == "ingress"],
        egress_security_rules=[m for m, r in kept if r.direction == "egress"],
    )
    response = _writer(backends).call(
        what, _net(backends).update_security_list, op.target["ocid"], details, if_match=etag
    )
    return str(response.headers.get("etag") or "") or None


@action("oci.remove-security-list-rules")
class RemoveSecurityListRulesAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        _, etag = _security_list(backends, op)
        _pinned(op, etag, f"security list {op.target.get('name')}")

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        sl, _ = _security_list(backends, op)
        gone = set(_rules(op))
        kept = [(model, rule) for model, rule in _live_rules(sl) if rule not in gone]
        what = f"removing {len(gone)} rules from security list {op.target.get('name')}"
        etag = _replace_rules(backends, op, op.params.get("etag"), kept, what)
        return {"removed": len(_live_rules(sl)) - len(kept), "etag": etag}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        sl, _ = _security_list(backends, op)
        gone = set(_rules(op))
        if any(rule in gone for _, rule in _live_rules(sl)):
            raise VerifyFailed(f"security list {op.target.get('name')} still has migrated rules")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        sl, _ = _security_list(backends, op)
        live = {rule for _, rule in _live_rules(sl)}
        return any(rule not in live for rule in _rules(op, "rules"))

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        sl, etag = _security_list(backends, op)
        live = _live_rules(sl)
        present = {rule for _, rule in live}
        back = [rule for rule in _rules(Operation("", {}, op.undo, "")) if rule not in present]
        if not back:
            return {"restored": 0}
        kept = live + [(security_list_rule(rule), rule) for rule in back]
        what = f"re-adding {len(back)} rules to security list {op.target.get('name')}"
        return {"restored": len(back), "etag": _replace_rules(backends, op, etag, kept, what)}
