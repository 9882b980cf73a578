"""The Kubernetes planners: exact patches that fix the findings, exact inverses, stable hashes."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import plan_finding
from tests.helpers import inventory, scan
from tests.unit.factories import bare_container, namespace, network_policy, workload
from tests.unit.oke_factories import service
from tests.unit.test_security_context_exact import SC_CHECKS, with_rv

SETTINGS = RemediationConfig()


def _finding(docs: list[dict[str, Any]], check_id: str) -> Finding:
    hits = [f for f in scan(docs) if f.check_id == check_id and f.status.value == "open"]
    assert hits, f"no {check_id} finding"
    return hits[0]


def _plan(docs: list[dict[str, Any]], check_id: str, variant: str = "default") -> Plan:
    return plan_finding(_finding(docs, check_id), inventory(docs), SETTINGS, variant)


def _apply(doc: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(doc), patch)
    return result


ROOTISH = workload(
    containers=[
        bare_container("web", image="fra.ocir.io/shop/web:1.2"),
        bare_container(
            "sidecar",
            image="fra.ocir.io/shop/proxy:2",
            securityContext={"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}},
        ),
    ],
    init_containers=[bare_container("migrate", image="fra.ocir.io/shop/migrate:1")],
)


def test_the_patch_fixes_every_security_context_finding_of_the_workload() -> None:
    doc = with_rv(ROOTISH)
    before = {f.check_id for f in scan([doc]) if f.check_id in SC_CHECKS}
    assert before == SC_CHECKS - {"k8s.privileged"}
    plan = _plan([doc], "k8s.run-as-root")
    [op] = plan.operations
    assert op.action == "k8s.patch" and op.params["rollout"] is True
    assert op.params["patch"][0] == {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": "4711",
    }
    fixed = _apply(doc, op.params["patch"])
    assert not [f for f in scan([fixed]) if f.check_id in SC_CHECKS and f.status.value == "open"]
    sidecar = fixed["spec"]["template"]["spec"]["containers"][1]["securityContext"]
    assert sidecar["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    spec = fixed["spec"]["template"]["spec"]
    assert {"name": "okeguard-tmp", "emptyDir": {}} in spec["volumes"]
    assert all(
        {"name": "okeguard-tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        for c in spec["containers"] + spec["initContainers"]
    )
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_the_undo_restores_the_workload_exactly() -> None:
    doc = with_rv(ROOTISH)
    plan = _plan([doc], "k8s.writable-root-fs")
    [op] = plan.operations
    fixed = _apply(doc, op.params["patch"])
    assert _apply(fixed, op.undo["patch"]) == doc


def test_the_undo_refuses_when_someone_changed_a_field_after_us() -> None:
    doc = with_rv(ROOTISH)
    [op] = _plan([doc], "k8s.run-as-root").operations
    fixed = _apply(doc, op.params["patch"])
    fixed["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 2000
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        _apply(fixed, op.undo["patch"])


def test_the_conservative_variant_keeps_the_filesystem_writable_and_root_images_alone() -> None:
    nginx = workload(
        containers=[bare_container("web", image="nginx:1.27", ports=[{"containerPort": 80}])]
    )
    doc = with_rv(nginx)
    default = _plan([doc], "k8s.run-as-root")
    assert any("may need root" in r for r in default.risks)
    assert any("writable filesystem" in r for r in default.risks)
    assert default.variants == ("default", "conservative")
    conservative = _plan([doc], "k8s.run-as-root", "conservative")
    fixed = _apply(doc, conservative.operations[0].params["patch"])
    left = {f.check_id for f in scan([fixed]) if f.status.value == "open"}
    # nginx stays root, so it keeps the runtime's default capabilities: dropping ALL would take
    # NET_BIND_SERVICE, SETUID and CHOWN from the process that needs them
    assert {"k8s.writable-root-fs", "k8s.run-as-root", "k8s.capabilities-not-dropped"} <= left
    assert "k8s.privilege-escalation" not in left
    assert any(
        "k8s.capabilities-not-dropped stays open for container 'web'" in r
        for r in conservative.risks
    )
    assert conservative.hash != default.hash


def test_the_plan_is_deterministic_and_bound_to_the_resource_version() -> None:
    docs = [with_rv(ROOTISH)]
    first, second = _plan(docs, "k8s.run-as-root"), _plan(docs, "k8s.run-as-root")
    assert first.to_dict() == second.to_dict() and first.hash == second.hash
    assert Plan.from_dict(first.to_dict()).hash == first.hash
    moved = _plan([with_rv(ROOTISH, "4712")], "k8s.run-as-root")
    assert moved.hash != first.hash


@pytest.mark.parametrize("kind", ["Pod", "Job"])
def test_pods_and_jobs_cannot_be_patched_in_place(kind: str) -> None:
    doc = workload(kind, containers=[bare_container("web")])
    with pytest.raises(PlanError, match="cannot be changed in place"):
        _plan([doc], "k8s.run-as-root")


def test_a_cronjob_is_patched_in_its_job_template_without_a_rollout() -> None:
    doc = with_rv(workload("CronJob", containers=[bare_container("job", image="fra.ocir.io/x:1")]))
    plan = _plan([doc], "k8s.run-as-root")
    patch = plan.operations[0].params["patch"]
    assert all(op["path"].startswith("/spec/jobTemplate/spec/template/") for op in patch[1:]), patch
    assert plan.operations[0].params["rollout"] is False
    assert any("not rolled out" in r for r in plan.risks)
    assert not [
        f
        for f in scan([_apply(doc, patch)])
        if f.check_id in SC_CHECKS and f.status.value == "open"
    ]


def test_guidance_findings_have_no_plan() -> None:
    doc = workload(pod_spec={"hostNetwork": True})
    finding = _finding([doc], "k8s.host-namespaces")
    with pytest.raises(PlanError, match="no automatic fix"):
        plan_finding(finding, inventory([doc]), SETTINGS)


def test_the_default_deny_policy_admits_only_the_namespace() -> None:
    docs = [
        namespace("shop"),
        workload(),
        service("shop-lb", namespace="shop"),
    ]
    plan = _plan(docs, "k8s.missing-network-policy")
    [op] = plan.operations
    assert op.action == "k8s.create"
    body = op.params["body"]
    assert body["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {}}]}],
    }
    assert any("shop-lb" in r for r in plan.risks)
    assert not [
        f
        for f in scan([*docs, body])
        if f.check_id == "k8s.missing-network-policy" and f.status.value == "open"
    ]


def test_an_existing_policy_of_ours_is_not_created_twice() -> None:
    docs = [namespace("shop"), workload()]
    finding = _finding(docs, "k8s.missing-network-policy")
    ours = network_policy(
        "okeguard-default-deny-ingress", "shop", pod_selector={"matchLabels": {"none": "x"}}
    )
    with pytest.raises(PlanError, match="already exists"):
        plan_finding(finding, inventory([*docs, ours]), SETTINGS)


_sc_values = st.fixed_dictionaries(
    {},
    optional={
        "runAsUser": st.sampled_from([0, 1000]),
        "runAsNonRoot": st.booleans(),
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "readOnlyRootFilesystem": st.booleans(),
        "capabilities": st.fixed_dictionaries(
            {},
            optional={
                "add": st.lists(
                    st.sampled_from(["NET_ADMIN", "SYS_TIME", "CHOWN"]), max_size=2, unique=True
                ),
                "drop": st.sampled_from([["NET_RAW"], ["ALL"]]),
            },
        ),
    },
)
_containers = st.lists(
    st.builds(
        lambda sc, mount, i: {
            "name": f"c{i}",
            "image": "fra.ocir.io/shop/app:1",
            **({"securityContext": sc} if sc is not None else {}),
            **({"volumeMounts": [{"name": "data", "mountPath": "/data"}]} if mount else {}),
        },
        st.none() | _sc_values,
        st.booleans(),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda c: c["name"],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    containers=_containers,
    pod_sc=st.none() | st.just({"runAsNonRoot": True}),
    with_volumes=st.booleans(),
)
def test_any_workload_is_fixed_by_the_patch_and_restored_by_the_undo(
    containers: list[dict[str, Any]], pod_sc: dict[str, Any] | None, with_volumes: bool
) -> None:
    pod_spec: dict[str, Any] = {"containers": containers}
    if pod_sc is not None:
        pod_spec["securityContext"] = pod_sc
    if with_volumes:
        pod_spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    doc = with_rv(workload(pod_spec=pod_spec))
    open_sc = [f for f in scan([doc]) if f.check_id in SC_CHECKS and f.status.value == "open"]
    if not open_sc:
        return
    plan = plan_finding(open_sc[0], inventory([doc]), SETTINGS)
    [op] = plan.operations
    fixed = _apply(doc, op.params["patch"])
    assert not [f for f in scan([fixed]) if f.check_id in SC_CHECKS and f.status.value == "open"]
    assert _apply(fixed, op.undo["patch"]) == doc
