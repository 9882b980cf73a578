"""Properties of ``add-security-context`` over generated workloads, and the one shared source of
Kubernetes shapes (kinds, template paths, capabilities) that checks and planners use."""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.config import ChecksConfig, Config
from okeguard.kube_shapes import (
    DANGEROUS_CAPABILITIES,
    WORKLOAD_KINDS,
    denied_capabilities,
    normalise_capability,
    pod_spec_dotted,
    pod_spec_pointer,
    template_keys,
)
from okeguard.remediations.plan import PlanError
from okeguard.remediations.planners import plan_finding
from tests.helpers import inventory, scan
from tests.unit.factories import workload
from tests.unit.test_security_context_exact import SC_CHECKS, said_to_stay_open

CONFIG = Config(checks=ChecksConfig(denied_capabilities=("cap_sys_time",)))

_caps = st.lists(
    st.sampled_from(
        ["NET_ADMIN", "cap_net_raw", "SYS_TIME", "CHOWN", "NET_BIND_SERVICE", "Sys_Admin", "ALL"]
    ),
    max_size=3,
    unique=True,
)
_sc = st.fixed_dictionaries(
    {},
    optional={
        "runAsUser": st.sampled_from([0, 101, 1000]),
        "runAsNonRoot": st.booleans(),
        "privileged": st.booleans(),
        "allowPrivilegeEscalation": st.booleans(),
        "readOnlyRootFilesystem": st.booleans(),
        "capabilities": st.fixed_dictionaries(
            {}, optional={"add": _caps, "drop": st.sampled_from([["NET_RAW"], ["ALL"], ["all"]])}
        ),
        "seccompProfile": st.sampled_from([{"type": "RuntimeDefault"}, {"type": "Unconfined"}]),
    },
)
_container = st.fixed_dictionaries(
    {
        "image": st.sampled_from(
            [
                "fra.ocir.io/shop/app:1",
                "nginx:1.27",
                "postgres:16",
                "nginxinc/nginx-unprivileged:1.27",
                "bitnami/redis:7",
            ]
        )
    },
    optional={
        "securityContext": _sc,
        "ports": st.just([{"containerPort": 80}]),
        "command": st.just(["sh", "-c", "chown -R 999 /data && exec app"]),
        "volumeMounts": st.just([{"name": "data", "mountPath": "/tmp"}]),
    },
)


def _named(prefix: str) -> Any:
    return st.lists(_container, min_size=1, max_size=2).map(
        lambda cs: [{"name": f"{prefix}{i}", **c} for i, c in enumerate(cs)]
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["Deployment", "StatefulSet", "DaemonSet", "CronJob"]),
    containers=_named("c"),
    init=st.none() | _named("i"),
    pod_sc=st.sampled_from(
        [None, {"runAsNonRoot": True}, {"runAsUser": 1000}, {"runAsUser": 0}, {"fsGroup": 2000}]
    ),
    variant=st.sampled_from(["default", "conservative"]),
)
def test_the_patch_fixes_what_it_says_and_the_undo_restores_the_object(
    kind: str,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None,
    pod_sc: dict[str, Any] | None,
    variant: str,
) -> None:
    pod_spec: dict[str, Any] = {"volumes": [{"name": "data", "emptyDir": {}}]}
    if pod_sc is not None:
        pod_spec["securityContext"] = pod_sc
    doc = workload(kind, containers=containers, init_containers=init, pod_spec=pod_spec)
    doc["metadata"]["resourceVersion"] = "7"
    hits = [
        f
        for f in scan([doc], config=CONFIG)
        if f.check_id in SC_CHECKS and f.status.value == "open"
    ]
    if not hits:
        return
    try:
        plan = plan_finding(hits[0], inventory([doc]), CONFIG.remediation, variant)
    except PlanError as exc:
        assert variant == "conservative" and "nothing to change" in str(exc)
        return
    [op] = plan.operations
    fixed = jsonpatch.apply_patch(copy.deepcopy(doc), op.params["patch"])
    left = {
        (f.check_id, f.resource.container or "")
        for f in scan([fixed], config=CONFIG)
        if f.check_id in SC_CHECKS and f.status.value == "open"
    }
    assert left == said_to_stay_open(plan)
    if variant == "default":
        assert left == set()
    assert jsonpatch.apply_patch(fixed, op.undo["patch"]) == doc


# -- the shared shapes ---------------------------------------------------------------------------


def test_configured_capabilities_are_added_to_the_defaults_normalised() -> None:
    assert denied_capabilities(()) == DANGEROUS_CAPABILITIES
    assert denied_capabilities([" cap_sys_time", "SYS_ADMIN", "Sys_Time"]) == (
        *DANGEROUS_CAPABILITIES,
        "SYS_TIME",
    )
    assert normalise_capability("CAP_NET_ADMIN") == normalise_capability("net_admin") == "NET_ADMIN"


@pytest.mark.parametrize(
    ("kind", "pointer", "dotted"),
    [
        ("Deployment", "/spec/template/spec", "spec.template.spec"),
        ("StatefulSet", "/spec/template/spec", "spec.template.spec"),
        ("DaemonSet", "/spec/template/spec", "spec.template.spec"),
        ("ReplicaSet", "/spec/template/spec", "spec.template.spec"),
        ("Job", "/spec/template/spec", "spec.template.spec"),
        ("CronJob", "/spec/jobTemplate/spec/template/spec", "spec.jobTemplate.spec.template.spec"),
        ("Pod", "/spec", "spec"),
    ],
)
def test_every_workload_kind_has_its_pod_spec_path(kind: str, pointer: str, dotted: str) -> None:
    assert (pod_spec_pointer(kind), pod_spec_dotted(kind)) == (pointer, dotted)
    # the inventory finds the containers at that path, so findings and patches agree
    doc = workload(kind, containers=[{"name": "x", "image": "fra.ocir.io/a/b:1"}])
    [w] = inventory([doc]).workloads
    assert [c.path for c in w.containers] == [f"{dotted}.containers[0]"]


def test_kinds_without_pods_have_no_template() -> None:
    assert set(WORKLOAD_KINDS) == {k for k in WORKLOAD_KINDS if template_keys(k) is not None}
    assert template_keys("Service") is None
    with pytest.raises(ValueError, match="not a workload kind"):
        pod_spec_pointer("ConfigMap")


# Files other engineers own right now; their copies are reported, not removed.
_NOT_OURS = {"network.py", "secrets.py", "network_policy.py", "kube_actions.py"}


def test_kubernetes_shapes_are_written_down_once() -> None:
    """No module but okeguard/kube_shapes.py spells out a dangerous capability, a CronJob's
    template path or the workload kinds as a list."""
    root = Path(__file__).resolve().parents[2] / "okeguard"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "kube_shapes.py" or path.name in _NOT_OURS or path.name.startswith("oke_"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in {
                "SYS_ADMIN",
                "NET_RAW",
                "jobTemplate",
                "initContainers",
            }:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.Tuple) and {"Deployment", "StatefulSet"} <= {
                e.value for e in node.elts if isinstance(e, ast.Constant)
            }:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}: a tuple of kinds")
    assert offenders == []
