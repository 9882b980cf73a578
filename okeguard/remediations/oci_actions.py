"""The OCI operations a plan can hold (see :mod:`okeguard.remediations.engine` for the protocol).

``oci.create-nsg``                 an NSG, created with the step's ``opc-retry-token`` and tagged
                                   ``okeguard-request``; undone by deleting it.
``oci.add-nsg-rules``              rules added to an NSG created earlier in the plan (at most 25
                                   per call); undone by removing exactly those rules.
``oci.attach-endpoint-nsgs``       the cluster endpoint's ``nsg_ids`` (``if_match``, work request).
``oci.attach-node-pool-nsgs``      a node pool's ``nsg_ids`` / ``pod_nsg_ids`` with node cycling,
                                   so existing nodes are replaced by nodes carrying the NSGs.
``oci.verify-nsg-migration``       writes nothing: checks that the NSGs hold their rules and are
                                   attached before any rule leaves a security list.
``oci.remove-security-list-rules`` a full replacement of a security list's rules without the
                                   migrated ones (``if_match`` the planned etag); undone by
                                   re-adding exactly them.
``oci.set-endpoint-public``        ``endpoint_config.is_public_ip_enabled`` (work request).

An NSG created by the plan has no OCID at plan time: later operations name it by the step that
creates it (``{"step": i, …}``). Its OCID is found again by replaying that step's create with the
same retry token (OCI answers a replay with the same NSG and creates nothing), and, when the
token is no longer valid, by searching the VCN for the ``okeguard-request`` tag. So neither a
rollback nor a reconciliation after a crash depends on a record that the crash may have lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from okeguard.checks.oke_network import rule_label
from okeguard.inventory.oci_convert import to_rule
from okeguard.inventory.oci_model import SecurityRule
from okeguard.remediations.engine import (
    Backends,
    StepFailed,
    VerifyFailed,
    action,
    retry_token,
)
from okeguard.remediations.oci_writer import (
    OciWriter,
    nsg_rule_details,
    rule_from_dict,
)
from okeguard.remediations.plan import Operation

MAX_RULES_PER_CALL = 25
REQUEST_TAG = "okeguard-request"


def _writer(backends: Backends) -> OciWriter:
    if backends.oci is None:
        raise StepFailed("this plan writes to OCI, but no OCI connection was given")
    writer: OciWriter = backends.oci
    return writer


def _net(backends: Backends) -> Any:
    return _writer(backends)["virtual_network"]


def _ce(backends: Backends) -> Any:
    return _writer(backends)["container_engine"]


def _rules(op: Operation, key: str = "rules") -> list[SecurityRule]:
    return [rule_from_dict(r) for r in op.params.get(key) or op.undo.get(key) or ()]


def _chunks(items: Sequence[Any], size: int = MAX_RULES_PER_CALL) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _pinned(op: Operation, live_etag: str | None, what: str) -> None:
    etag = op.params.get("etag")
    if etag and live_etag != etag:
        raise StepFailed(f"{what} changed since the plan was made (etag {live_etag} is not {etag})")


# -- NSGs created by the plan -----------------------------------------------------------------


def _create_details(backends: Backends, ref: Mapping[str, Any]) -> Any:
    import oci

    return oci.core.models.CreateNetworkSecurityGroupDetails(
        compartment_id=ref["compartment_id"],
        vcn_id=ref["vcn_id"],
        display_name=ref["display_name"],
        freeform_tags={REQUEST_TAG: str(backends.request_id)},
    )


def _search_nsg(backends: Backends, ref: Mapping[str, Any]) -> tuple[bool, str | None]:
    """(searched, OCID): this request's NSG found by name and ``okeguard-request`` tag.
    ``searched`` is False when the listing is refused or not served."""
    import oci

    try:
        found = oci.pagination.list_call_get_all_results(
            _net(backends).list_network_security_groups,
            compartment_id=ref["compartment_id"],
            vcn_id=ref["vcn_id"],
            display_name=ref["display_name"],
        ).data
    except Exception:
        return False, None
    for nsg in found or ():
        tags = nsg.freeform_tags or {}
        gone = nsg.lifecycle_state in ("TERMINATING", "TERMINATED")
        if tags.get(REQUEST_TAG) == str(backends.request_id) and not gone:
            return True, str(nsg.id)
    return True, None


def find_nsg(backends: Backends, ref: Mapping[str, Any]) -> str | None:
    """The OCID of the NSG that step ``ref["step"]`` created, or None when there is none.

    First the VCN is searched for the NSG's name and ``okeguard-request`` tag. Where that
    listing is refused (or not served), the create is replayed with the step's retry token:
    OCI answers a replay with the NSG it made and creates nothing; a token it no longer honours
    (the NSG was deleted) is a 409, meaning the NSG is gone. Only a step that never reached OCI
    would be created by the replay, and then the rollback deletes it.
    """
    import oci

    writer = _writer(backends)
    token = retry_token(backends.request_id, backends.plan_hash, int(ref["step"]))
    if token in writer.created:
        return writer.created[token]
    searched, nsg_id = _search_nsg(backends, ref)
    if not searched:
        try:
            created = _net(backends).create_network_security_group(
                _create_details(backends, ref), opc_retry_token=token
            )
        except oci.exceptions.ServiceError as exc:
            if exc.status == 409:
                return None
            raise StepFailed(
                f"{writer.label}: finding NSG {ref['display_name']} failed "
                f"({exc.status} {exc.code})",
                wrote_nothing=exc.status < 500,
            ) from None
        except Exception as exc:
            raise StepFailed(
                f"finding NSG {ref['display_name']} failed: {type(exc).__name__}"
            ) from None
        nsg_id = str(created.data.id)
    if nsg_id is not None:
        writer.created[token] = nsg_id
    return nsg_id


def _need_nsg(backends: Backends, ref: Mapping[str, Any]) -> str:
    nsg_id = find_nsg(backends, ref)
    if nsg_id is None:
        raise StepFailed(f"NSG {ref['display_name']} (created by step {ref['step'] + 1}) is gone")
    return nsg_id


def _nsg_rules(backends: Backends, nsg_id: str) -> list[tuple[str, SecurityRule]]:
    """(rule id, rule) of every rule of an NSG."""
    import oci

    writer = _writer(backends)
    listed = writer.call(
        f"listing the rules of NSG {nsg_id}",
        oci.pagination.list_call_get_all_results,
        _net(backends).list_network_security_group_security_rules,
        nsg_id,
        write=False,
    ).data
    return [(str(r.id), to_rule(r, str(r.direction).lower())) for r in listed or ()]


@action("oci.create-nsg")
class CreateNsgAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        ref = op.params["nsg"]
        writer = _writer(backends)
        writer.read(f"VCN {ref['vcn_id']}", _net(backends).get_vcn, ref["vcn_id"])
        for source in op.params.get("sources") or ():
            sl, etag = writer.read(
                f"security list {source['name']}", _net(backends).get_security_list, source["id"]
            )
            if source.get("etag") and etag != source["etag"]:
                raise StepFailed(f"security list {source['name']} changed since the plan was made")
            for direction, listed in (
                ("ingress", sl.ingress_security_rules),
                ("egress", sl.egress_security_rules),
            ):
                for live in listed or ():
                    rule = to_rule(live, direction)
                    if rule.inexact:  # the planner refuses these; an unpinned list may have one
                        raise StepFailed(
                            f"security list {source['name']}: {rule_label(rule)} has "
                            f"{rule.inexact}, which okeguard cannot mirror exactly"
                        )

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        ref = op.params["nsg"]
        response = _writer(backends).call(
            f"creating NSG {ref['display_name']}",
            _net(backends).create_network_security_group,
            _create_details(backends, ref),
            opc_retry_token=token,
        )
        _writer(backends).created[token] = str(response.data.id)
        return {"nsg_id": response.data.id, "etag": response.headers.get("etag")}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        nsg_id = record.get("nsg_id") or _need_nsg(backends, op.params["nsg"])
        _writer(backends).read(f"NSG {nsg_id}", _net(backends).get_network_security_group, nsg_id)

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        return find_nsg(backends, op.params["nsg"]) is not None

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        nsg_id = (record or {}).get("nsg_id") or find_nsg(backends, op.params["nsg"])
        _writer(backends).created.pop(token, None)
        if nsg_id is None:
            return {"deleted": False, "note": "not present"}
        try:
            _writer(backends).call(
                f"deleting NSG {nsg_id}", _net(backends).delete_network_security_group, nsg_id
            )
        except StepFailed as exc:
            if "404" not in str(exc):
                raise
            return {"deleted": False, "nsg_id": nsg_id, "note": "already gone"}
        return {"deleted": True, "nsg_id": nsg_id}


@action("oci.add-nsg-rules")
class AddNsgRulesAction:
    def dry_run(self, op: Operation, backends: Backends) -> None:
        _need_nsg(backends, op.params["nsg"])

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
        import oci

        nsg_id = _need_nsg(backends, op.params["nsg"])
        present = {rule for _, rule in _nsg_rules(backends, nsg_id)}
        missing = [rule for rule in _rules(op) if rule not in present]  # a replay adds nothing
        added: list[str] = []
        for chunk in _chunks(missing):
            details = oci.core.models.AddNetworkSecurityGroupSecurityRulesDetails(
                security_rules=[nsg_rule_details(rule) for rule in chunk]
            )
            response = _writer(backends).call(
                f"adding {len(chunk)} rules to NSG {nsg_id}",
                _net(backends).add_network_security_group_security_rules,
                nsg_id,
                details,
            )
            added += [str(r.id) for r in response.data.security_rules or ()]
        return {"nsg_id": nsg_id, "rule_ids": added}

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
        nsg_id = record.get("nsg_id") or _need_nsg(backends, op.params["nsg"])
        present = {rule for _, rule in _nsg_rules(backends, nsg_id)}
        missing = [rule for rule in _rules(op) if rule not in present]
        if missing:
            raise VerifyFailed(f"NSG {nsg_id} lacks {len(missing)} of its planned rules")

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool:
        nsg_id = (record or {}).get("nsg_id") or find_nsg(backends, op.params["nsg"])
        if nsg_id is None:
            return False
        wanted = set(_rules(op))
        try:
            return any(rule in wanted for _, rule in _nsg_rules(backends, nsg_id))
        except StepFailed as exc:
            if "(404" in str(exc):
                return False  # the NSG itself is gone, and its rules with it
            raise

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]:
        import oci

        nsg_id = (record or {}).get("nsg_id") or find_nsg(backends, op.params["nsg"])
        if nsg_id is None:
            return {"removed": 0, "note": "the NSG is gone"}
        wanted = set(_rules(op))
        ids = [rule_id for rule_id, rule in _nsg_rules(backends, nsg_id) if rule in wanted]
        for chunk in _chunks(ids):
            details = oci.core.models.RemoveNetworkSecurityGroupSecurityRulesDetails(
                security_rule_ids=list(chunk)
            )
            _writer(backends).call(
                f"removing {len(chunk)} rules from NSG {nsg_id}",
                _net(backends).remove_network_security_group_security_rules,
                nsg_id,
                details,
            )
        return {"nsg_id": nsg_id, "removed": len(ids)}
