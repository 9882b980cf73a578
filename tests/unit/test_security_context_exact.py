"""``add-security-context`` is exact and honest: it changes only what a check flags, keeps what a
root container needs in the conservative variant, and names every privilege it removes and every
finding it leaves open."""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonpatch
import pytest

from okeguard.checks.model import Finding
from okeguard.config import ChecksConfig, ClusterConfig, Config, RemediationConfig
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import plan_finding
from tests.helpers import inventory, scan
from tests.unit.factories import bare_container, workload

SETTINGS = RemediationConfig()
SC_CHECKS = frozenset(
    {
        "k8s.run-as-root",
        "k8s.privileged",
        "k8s.privilege-escalation",
        "k8s.dangerous-capabilities",
        "k8s.capabilities-not-dropped",
        "k8s.writable-root-fs",
    }
)
STAYS_OPEN = re.compile(r"(k8s\.[a-z-]+) stays open for (?:init )?container '([^']+)'")
# The capabilities a container runtime grants by default that root daemons rely on.
ROOT_NEEDS = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE"}


def with_rv(doc: dict[str, Any], rv: str = "4711") -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"]["resourceVersion"] = rv
    return doc


def open_sc(docs: list[dict[str, Any]], config: Config | None = None) -> set[tuple[str, str]]:
    """(check id, container) of every open security-context finding."""
    return {
        (f.check_id, f.resource.container or "")
        for f in scan(docs, config=config)
        if f.check_id in SC_CHECKS and f.status.value == "open"
    }


def finding(docs: list[dict[str, Any]], check_id: str, config: Config | None = None) -> Finding:
    hits = [f for f in scan(docs, config=config) if f.check_id == check_id]
    assert hits and hits[0].status.value == "open", f"no open {check_id} finding"
    return hits[0]


def plan(
    doc: dict[str, Any],
    variant: str = "default",
    check_id: str = "k8s.privilege-escalation",
    config: Config | None = None,
) -> Plan:
    settings = config.remediation if config else SETTINGS
    return plan_finding(finding([doc], check_id, config), inventory([doc]), settings, variant)


def applied(doc: dict[str, Any], p: Plan) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(
        copy.deepcopy(doc), p.operations[0].params["patch"]
    )
    return result


def undone(doc: dict[str, Any], p: Plan) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(
        copy.deepcopy(doc), p.operations[0].undo["patch"]
    )
    return result


def said_to_stay_open(p: Plan) -> set[tuple[str, str]]:
    return {m.groups() for r in p.risks for m in STAYS_OPEN.finditer(r)}  # type: ignore[misc]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def sc_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_spec(doc)
    [c] = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name]
    sc: dict[str, Any] = c["securityContext"]
    return sc


# -- 1. the conservative variant keeps what a root container needs ------------------------------

NGINX_80 = bare_container("web", image="nginx:1.27", ports=[{"containerPort": 80}])
POSTGRES = bare_container("db", image="postgres:16.4")
APP = bare_container("app", image="fra.ocir.io/shop/app:1.0")
CHOWN_INIT = bare_container(
    "fix-perms", image="fra.ocir.io/shop/tools:1", command=["chown", "-R", "999:999", "/data"]
)
ROOT_CASES = {
    "nginx on port 80": workload(containers=[NGINX_80, APP]),
    "postgres": workload("StatefulSet", "db", containers=[POSTGRES, APP]),
    "init container running chown": workload(containers=[APP], init_containers=[CHOWN_INIT]),
}
ROOT_NAMES = {
    "nginx on port 80": "web",
    "postgres": "db",
    "init container running chown": "fix-perms",
}


@pytest.mark.parametrize("case", list(ROOT_CASES))
def test_conservative_keeps_the_default_capabilities_of_a_container_left_as_root(
    case: str,
) -> None:
    doc = with_rv(ROOT_CASES[case])
    name = ROOT_NAMES[case]
    p = plan(doc, "conservative")
    fixed = applied(doc, p)
    drop = sc_of(fixed, name)["capabilities"]["drop"]
    assert "ALL" not in drop
    assert not ROOT_NEEDS & set(drop)
    # only the dangerous ones leave (NET_RAW is the one the runtime grants by default)
    assert {"NET_RAW", "SYS_ADMIN", "NET_ADMIN"} <= set(drop)
    assert "runAsUser" not in sc_of(fixed, name) and "runAsNonRoot" not in sc_of(fixed, name)
    # the container the plan does not keep as root is hardened fully
    assert sc_of(fixed, "app")["capabilities"]["drop"] == ["ALL"]
    assert sc_of(fixed, "app")["runAsUser"] == SETTINGS.run_as_user
    # the plan says exactly which findings stay open, and the re-scan agrees
    said = said_to_stay_open(p)
    assert {("k8s.run-as-root", name), ("k8s.capabilities-not-dropped", name)} <= said
    assert open_sc([fixed]) == said


def test_the_default_variant_drops_all_and_warns_that_the_container_may_need_root() -> None:
    doc = with_rv(ROOT_CASES["nginx on port 80"])
    p = plan(doc)
    fixed = applied(doc, p)
    assert sc_of(fixed, "web")["capabilities"]["drop"] == ["ALL"]
    assert sc_of(fixed, "web")["runAsUser"] == SETTINGS.run_as_user
    assert any(
        "container 'web'" in r and "may need root" in r and "conservative" in r for r in p.risks
    )
    assert open_sc([fixed]) == set() == said_to_stay_open(p)


def test_conservative_hardens_a_container_that_shows_no_need_for_root() -> None:
    doc = with_rv(workload(containers=[APP]))
    fixed = applied(doc, plan(doc, "conservative"))
    assert open_sc([fixed]) == {("k8s.writable-root-fs", "app")}
    assert sc_of(fixed, "app")["capabilities"] == {"drop": ["ALL"]}


# -- 2. every removed privilege is named, with its container -------------------------------------


def test_istio_init_loses_net_admin_and_net_raw_and_the_risks_name_both() -> None:
    istio_init = bare_container(
        "istio-init",
        image="docker.io/istio/proxyv2:1.22.0",
        command=["istio-iptables"],
        securityContext={
            "runAsUser": 0,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    )
    doc = with_rv(workload(containers=[APP], init_containers=[istio_init]))
    p = plan(doc, check_id="k8s.dangerous-capabilities")
    for cap in ("NET_ADMIN", "NET_RAW"):
        lines = [r for r in p.risks if f"capability {cap} removed" in r]
        assert len(lines) == 1 and "init container 'istio-init'" in lines[0], p.risks
    caps = sc_of(applied(doc, p), "istio-init")["capabilities"]
    assert caps == {"drop": ["ALL"]}


def test_privileged_true_is_removed_and_named() -> None:
    sidecar = bare_container(
        "agent",
        image="fra.ocir.io/shop/agent:3",
        securityContext={"privileged": True, "runAsUser": 1000},
    )
    doc = with_rv(workload(containers=[APP, sidecar]))
    p = plan(doc, check_id="k8s.privileged")
    [line] = [r for r in p.risks if "privileged: true removed" in r]
    assert "container 'agent'" in line
    fixed = applied(doc, p)
    assert sc_of(fixed, "agent")["privileged"] is False
    assert "privileged" not in sc_of(fixed, "app")  # unset stays unset: nothing to remove
    assert open_sc([fixed]) == set()


def test_host_access_that_the_remediation_does_not_touch_is_named() -> None:
    doc = with_rv(
        workload(
            containers=[APP],
            pod_spec={
                "hostNetwork": True,
                "volumes": [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}],
            },
        )
    )
    p = plan(doc)
    assert any("'sock' (/var/run/docker.sock) stays" in r and "k8s.host-path" in r for r in p.risks)
    assert any("hostNetwork: true stays" in r for r in p.risks)
    assert applied(doc, p)["spec"]["template"]["spec"]["volumes"][0] == {
        "name": "sock",
        "hostPath": {"path": "/var/run/docker.sock"},
    }


# -- 3. a container that already passes k8s.run-as-root keeps its user ---------------------------


@pytest.mark.parametrize(
    ("pod_sc", "own_sc"),
    [
        ({}, {"runAsUser": 101}),  # explicit non-zero user (nginx-unprivileged's 101)
        ({"runAsUser": 1000}, {}),  # pod-level user
        ({"runAsNonRoot": True}, {}),  # the image's user, verified non-root by the kubelet
        ({"runAsUser": 0}, {"runAsUser": 101}),  # the container's own user wins over the pod's
    ],
)
def test_a_container_that_passes_run_as_root_keeps_its_user(
    pod_sc: dict[str, Any], own_sc: dict[str, Any]
) -> None:
    container = bare_container("web", image="fra.ocir.io/shop/web:1", securityContext=own_sc)
    doc = with_rv(workload(containers=[container], pod_spec={"securityContext": pod_sc}))
    assert ("k8s.run-as-root", "web") not in open_sc([doc])
    fixed = applied(doc, plan(doc))
    sc = sc_of(fixed, "web")
    assert sc.get("runAsUser") == own_sc.get("runAsUser")
    assert "runAsNonRoot" not in sc
    assert open_sc([fixed]) == set()


@pytest.mark.parametrize(
    ("pod_sc", "own_sc"),
    [
        ({"runAsUser": 0}, {"runAsNonRoot": True}),  # UID 0 beats runAsNonRoot
        ({"runAsNonRoot": True}, {"runAsNonRoot": False}),
        ({}, {"runAsUser": 0}),
    ],
)
def test_a_container_that_may_run_as_root_gets_a_user(
    pod_sc: dict[str, Any], own_sc: dict[str, Any]
) -> None:
    container = bare_container("web", image="fra.ocir.io/shop/web:1", securityContext=own_sc)
    doc = with_rv(workload(containers=[container], pod_spec={"securityContext": pod_sc}))
    p = plan(doc, check_id="k8s.run-as-root")
    sc = sc_of(applied(doc, p), "web")
    assert (sc["runAsUser"], sc["runAsNonRoot"]) == (SETTINGS.run_as_user, True)
    assert any(f"it will run as UID {SETTINGS.run_as_user}" in r for r in p.risks)


# -- 4. known images that write outside /tmp -------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "env", "paths", "not_named"),
    [
        ("nginxinc/nginx-unprivileged:1.27", [], ["/var/cache/nginx"], ["/tmp"]),
        ("nginx:1.27", [], ["/var/cache/nginx", "/var/run"], []),
        ("fra.ocir.io/mirror/nginx:1.27", [], ["/var/cache/nginx"], []),
        ("bitnami/nginx:1.27", [], ["/opt/bitnami/nginx/tmp", "/opt/bitnami/nginx/conf"], []),
        (
            "postgres:16",
            [],
            ["/var/run/postgresql", "/var/lib/postgresql/data"],
            ["/var/cache/nginx"],
        ),
        ("postgres:16", [{"name": "PGDATA", "value": "/pg/data"}], ["/pg/data"], ["/var/lib"]),
    ],
)
def test_an_image_that_writes_outside_tmp_gets_a_writable_path_risk(
    image: str, env: list[dict[str, str]], paths: list[str], not_named: list[str]
) -> None:
    container = bare_container("web", image=image, env=env, securityContext={"runAsUser": 101})
    doc = with_rv(workload(containers=[container]))
    [line] = [r for r in plan(doc).risks if "writable filesystem" in r]
    assert "container 'web'" in line
    named = line.split("writes to ", 1)[1].split(", which", 1)[0].split(", ")
    assert set(paths) <= set(named)
    assert not [p for p in named if any(p.startswith(n) for n in not_named)]


def test_a_path_already_mounted_is_not_named_and_the_conservative_variant_names_none() -> None:
    container = bare_container(
        "web",
        image="nginx:1.27",
        securityContext={"runAsUser": 101},
        volumeMounts=[{"name": "cache", "mountPath": "/var/cache"}],
    )
    doc = with_rv(
        workload(containers=[container], pod_spec={"volumes": [{"name": "cache", "emptyDir": {}}]})
    )
    [line] = [r for r in plan(doc).risks if "writable filesystem" in r]
    assert "/var/run" in line and "/var/cache/nginx" not in line
    assert not [r for r in plan(doc, "conservative").risks if "writable filesystem" in r]


def test_an_image_not_in_the_table_gets_no_writable_path_risk() -> None:
    doc = with_rv(workload(containers=[APP]))
    assert not [r for r in plan(doc).risks if "writable filesystem" in r]


# -- workload kinds and container kinds ------------------------------------------------------------


def test_a_cronjob_is_patched_at_its_job_templates_pod_spec() -> None:
    doc = with_rv(workload("CronJob", "nightly", containers=[APP], init_containers=[CHOWN_INIT]))
    p = plan(doc)
    patch = p.operations[0].params["patch"]
    assert all(
        op["path"].startswith("/spec/jobTemplate/spec/template/spec/") for op in patch[1:]
    ), patch
    fixed = applied(doc, p)
    template = fixed["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert template["initContainers"][0]["securityContext"]["runAsNonRoot"] is True
    assert open_sc([fixed]) == set()
    assert undone(fixed, p) == doc


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"])
def test_controllers_are_patched_at_spec_template_and_rolled_out_when_they_roll(kind: str) -> None:
    doc = with_rv(workload(kind, containers=[APP]))
    p = plan(doc)
    assert all(
        op["path"].startswith("/spec/template/spec/") for op in p.operations[0].params["patch"][1:]
    )
    assert p.operations[0].params["rollout"] is (kind != "ReplicaSet")
    assert open_sc([applied(doc, p)]) == set()


def test_windows_pods_are_refused() -> None:
    doc = with_rv(workload(containers=[APP], pod_spec={"os": {"name": "windows"}}))
    with pytest.raises(PlanError, match="Windows"):
        plan(doc, check_id="k8s.writable-root-fs")


def test_ephemeral_containers_of_the_workloads_pods_are_named_as_left_open() -> None:
    deploy = workload(containers=[APP])
    pod = workload(
        "Pod",
        "web-abc",
        containers=[APP],
        ephemeral_containers=[bare_container("debugger", image="busybox:1.36")],
        owner=("Deployment", "web"),
    )
    docs = [with_rv(deploy), pod]
    p = plan_finding(finding(docs, "k8s.run-as-root"), inventory(docs), SETTINGS, "default")
    assert any("ephemeral container 'debugger'" in r and "stay open" in r for r in p.risks)
    patched = jsonpatch.apply_patch(copy.deepcopy(docs[0]), p.operations[0].params["patch"])
    assert "ephemeralContainers" not in patched["spec"]["template"]["spec"]


# -- 5. the configured deny list and capability normalisation ---------------------------------------

SYS_TIME = Config(checks=ChecksConfig(denied_capabilities=("SYS_TIME",)))


def test_a_configured_denied_capability_is_flagged_by_the_check_and_removed_by_the_planner() -> (
    None
):
    clock = bare_container(
        "clock",
        image="fra.ocir.io/shop/ntp:1",
        securityContext={"capabilities": {"add": ["SYS_TIME", "NET_BIND_SERVICE"]}},
    )
    doc = with_rv(workload(containers=[clock]))
    assert ("k8s.dangerous-capabilities", "clock") not in open_sc([doc])
    assert ("k8s.dangerous-capabilities", "clock") in open_sc([doc], SYS_TIME)
    p = plan(doc, check_id="k8s.dangerous-capabilities", config=SYS_TIME)
    assert [r for r in p.risks if "capability SYS_TIME removed" in r and "'clock'" in r]
    fixed = applied(doc, p)
    assert sc_of(fixed, "clock")["capabilities"]["add"] == ["NET_BIND_SERVICE"]
    assert open_sc([fixed], SYS_TIME) == set()
    # without the configuration the planner keeps it, as the check does not flag it
    plain = applied(doc, plan(doc))
    assert sc_of(plain, "clock")["capabilities"]["add"] == ["SYS_TIME", "NET_BIND_SERVICE"]


def test_the_conservative_variant_drops_the_configured_capabilities_too() -> None:
    doc = with_rv(workload(containers=[NGINX_80]))
    fixed = applied(doc, plan(doc, "conservative", config=SYS_TIME))
    assert "SYS_TIME" in sc_of(fixed, "web")["capabilities"]["drop"]


def test_a_clusters_own_checks_reach_its_remediation_settings() -> None:
    cluster = ClusterConfig(name="prod", checks=ChecksConfig(denied_capabilities=("cap_sys_time",)))
    config = Config(clusters=(cluster,))
    assert config.remediation.denied_capabilities == ()
    assert config.for_cluster(cluster).remediation.denied_capabilities == ("cap_sys_time",)
    assert SYS_TIME.remediation.denied_capabilities == ("SYS_TIME",)


def test_prefixed_and_lower_case_capabilities_are_the_same_capability() -> None:
    odd = bare_container(
        "odd",
        image="fra.ocir.io/shop/odd:1",
        securityContext={
            "runAsUser": 1000,
            "capabilities": {
                "add": ["CAP_SYS_ADMIN", "sys_admin", "cap_net_bind_service", "Cap_Sys_Time"]
            },
        },
    )
    doc = with_rv(workload(containers=[odd]))
    config = Config(checks=ChecksConfig(denied_capabilities=("cap_sys_time",)))
    [hit] = [f for f in scan([doc], config=config) if f.check_id == "k8s.dangerous-capabilities"]
    assert "SYS_ADMIN, SYS_ADMIN, SYS_TIME" in hit.message
    p = plan(doc, check_id="k8s.dangerous-capabilities", config=config)
    assert len([r for r in p.risks if "capability SYS_ADMIN removed" in r]) == 1  # deduplicated
    assert [r for r in p.risks if "capability SYS_TIME removed" in r]
    fixed = applied(doc, p)
    assert sc_of(fixed, "odd")["capabilities"]["add"] == ["cap_net_bind_service"]
    assert open_sc([fixed], config) == set()


def test_a_drop_of_lower_case_all_counts_and_is_left_alone() -> None:
    container = bare_container(
        "web",
        image="fra.ocir.io/shop/web:1",
        securityContext={"runAsUser": 101, "capabilities": {"drop": ["all"]}},
    )
    doc = with_rv(workload(containers=[container]))
    fixed = applied(doc, plan(doc))
    assert sc_of(fixed, "web")["capabilities"] == {"drop": ["all"]}


def test_nothing_to_change_is_refused_naming_what_stays_open() -> None:
    hardened_but_root = bare_container(
        "web",
        image="nginx:1.27",
        securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        volumeMounts=[{"name": "x", "mountPath": "/tmp"}],
    )
    doc = with_rv(
        workload(
            containers=[hardened_but_root],
            pod_spec={"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
        )
    )
    with pytest.raises(
        PlanError, match=re.escape("k8s.run-as-root stays open for container 'web'")
    ):
        plan(doc, "conservative", check_id="k8s.run-as-root")


def test_an_explicit_unconfined_seccomp_profile_is_named_and_left_alone() -> None:
    own = bare_container(
        "web",
        image="fra.ocir.io/shop/web:1",
        securityContext={"runAsUser": 101, "seccompProfile": {"type": "Unconfined"}},
    )
    doc = with_rv(workload(containers=[own, APP]))
    p = plan(doc)
    assert any("seccompProfile Unconfined on container 'web' stays" in r for r in p.risks)
    fixed = applied(doc, p)
    assert sc_of(fixed, "web")["seccompProfile"] == {"type": "Unconfined"}
    # the pod default covers the container that set nothing
    assert pod_spec(fixed)["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
