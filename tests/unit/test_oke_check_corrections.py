"""Corrections to the OKE checks so they read Services and workloads as Oracle's
cloud-controller-manager (CCM) and the policy engines do, and to the reading of timestamps
(issue 12, part 6). The command-line side is in ``tests/e2e/test_cli_oke_corrections.py``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from okeguard.checks.model import Finding, Status
from okeguard.checks.oke_cluster import is_policy_engine_image
from okeguard.config import RemediationConfig
from okeguard.remediations.planners import plan_finding
from okeguard.timestamps import parse_timestamp
from tests.helpers import NOW, deployment, inventory, scan
from tests.unit.factories import secret
from tests.unit.oke_factories import clean_state, scan_oci, service

RULE_MODE = "oci.oraclecloud.com/security-rule-management-mode"
LEGACY = "service.beta.kubernetes.io/oci-load-balancer-security-list-management-mode"
NLB_LEGACY = "oci-network-load-balancer.oraclecloud.com/security-list-management-mode"
NLB = {"oci.oraclecloud.com/load-balancer-type": "nlb"}
SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"


def _mode_findings(annotations: dict[str, str]) -> list[Finding]:
    return scan_oci(
        clean_state(), "oke.lb-security-list-mode", docs=[service(annotations=annotations)]
    )


# --- a. security-rule management mode, case-insensitive ------------------------------------


@pytest.mark.parametrize("value", ["NSG", "nsg", "Nsg", " nSg "])
@pytest.mark.parametrize("lb_type", [{}, NLB], ids=["lb", "nlb"])
def test_nsg_mode_is_recognised_in_any_case(value: str, lb_type: dict[str, str]) -> None:
    assert _mode_findings({**lb_type, RULE_MODE: value}) == []


@pytest.mark.parametrize(
    ("annotations", "mode"),
    [
        ({RULE_MODE: "sl-all"}, "SL-All"),
        ({RULE_MODE: "Sl-Frontend"}, "SL-Frontend"),
        ({RULE_MODE: "NONE"}, "None"),
        ({LEGACY: "frontend"}, "Frontend"),
        ({LEGACY: "FRONTEND"}, "Frontend"),
        ({LEGACY: "none"}, "None"),
        ({LEGACY: "all"}, "All"),
        ({**NLB, NLB_LEGACY: "all"}, "All"),
        ({**NLB, NLB_LEGACY: "frontend"}, "Frontend"),
    ],
)
def test_other_modes_are_read_in_any_case(annotations: dict[str, str], mode: str) -> None:
    [finding] = _mode_findings(annotations)
    assert f"mode is {mode!r}" in finding.message
    assert "not a valid mode" not in finding.message


@pytest.mark.parametrize(
    ("annotations", "mode"),
    [({}, "All"), (NLB, "None"), ({"oci.oraclecloud.com/load-balancer-type": "NLB"}, "None")],
    ids=["lb-default-all", "nlb-default-none", "nlb-type-in-capitals"],
)
def test_defaults_per_load_balancer_type(annotations: dict[str, str], mode: str) -> None:
    [finding] = _mode_findings(annotations)
    assert f"mode is {mode!r}" in finding.message and "CCM default" in finding.message


@pytest.mark.parametrize(
    ("annotations", "flagged"),
    [
        ({RULE_MODE: "nsg", LEGACY: "All"}, False),
        ({RULE_MODE: "sl-all", LEGACY: "None"}, True),
        ({**NLB, RULE_MODE: "Nsg", NLB_LEGACY: "All"}, False),
    ],
)
def test_the_newer_annotation_wins(annotations: dict[str, str], flagged: bool) -> None:
    findings = _mode_findings(annotations)
    assert bool(findings) is flagged
    if flagged:
        assert "mode is 'SL-All'" in findings[0].message


def test_an_invalid_value_is_reported_as_such() -> None:
    [legacy] = _mode_findings({LEGACY: "everything"})
    assert "not a valid mode" in legacy.message and "mode is 'All'" in legacy.message
    [newer] = _mode_findings({RULE_MODE: "nsgs"})
    assert "not a valid mode" in newer.message


# --- b. source ranges from the annotation ------------------------------------------------------


def _public(doc: dict[str, Any]) -> list[Finding]:
    return scan_oci(clean_state(), "oke.public-load-balancer", docs=[doc])


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8", "10.0.0.0/8,192.168.0.0/16", " 203.0.113.0/24 , 10.1.0.0/16 "]
)
def test_the_source_ranges_annotation_restricts_the_load_balancer(value: str) -> None:
    assert _public(service(annotations={SOURCE_RANGES: value})) == []


@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0", "10.0.0.0/0"])
def test_a_world_range_in_the_annotation_is_public(world: str) -> None:
    [finding] = _public(service(annotations={SOURCE_RANGES: f"10.0.0.0/8,{world}"}))
    assert f"the {SOURCE_RANGES} annotation includes {world}" in finding.message


def test_the_spec_field_wins_over_the_annotation() -> None:
    # the CCM ignores the annotation when spec.loadBalancerSourceRanges lists anything
    restricted = service(source_ranges=["10.0.0.0/8"], annotations={SOURCE_RANGES: "0.0.0.0/0"})
    assert _public(restricted) == []
    opened = service(source_ranges=["0.0.0.0/0"], annotations={SOURCE_RANGES: "10.0.0.0/8"})
    [finding] = _public(opened)
    assert "spec.loadBalancerSourceRanges includes 0.0.0.0/0" in finding.message


@pytest.mark.parametrize("annotations", [{}, {SOURCE_RANGES: ""}, {SOURCE_RANGES: " , "}])
def test_no_ranges_anywhere_is_public(annotations: dict[str, str]) -> None:
    [finding] = _public(service(source_ranges=[], annotations=annotations))
    assert "so the CCM opens 0.0.0.0/0" in finding.message


# --- c. policy engines recognised by image -----------------------------------------------------

POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "deny", "namespace": "shop"},
    "spec": {"podSelector": {}},
}


def _daemonset(name: str, *images: str) -> dict[str, Any]:
    doc = deployment(
        name,
        "kube-system",
        containers=[{"name": f"c{i}", "image": image} for i, image in enumerate(images)],
    )
    doc["kind"] = "DaemonSet"
    return doc


def _not_enforced(*engines: dict[str, Any]) -> list[Finding]:
    docs = [POLICY, deployment(), *engines]
    return scan_oci(clean_state(), "oke.network-policy-not-enforced", docs=docs)


@pytest.mark.parametrize(
    "engine",
    [
        _daemonset("cni-agent", "quay.io/calico/node:v3.26.1"),
        _daemonset("cni-agent", "docker.io/calico/node:v3.28.0"),
        _daemonset("cni-agent", "calico/node:v3.28.0"),
        _daemonset("cni-agent", "fra.ocir.io/mytenancy/mirror/calico/node@sha256:" + "b" * 64),
        _daemonset("canal", "quay.io/calico/node:v3.26.1", "quay.io/coreos/flannel:v0.15.1"),
        _daemonset("cni-agent", "quay.io/cilium/cilium:v1.16.0"),
        _daemonset("cni-agent", "docker.io/cilium/cilium:v1.15"),
        _daemonset("cni-agent", "antrea/antrea-agent-ubuntu:v2.1.0"),
        _daemonset("cni-agent", "projects.registry.vmware.com/antrea/antrea-agent-ubuntu:v1.15"),
        _daemonset("calico-node", "fra.ocir.io/mytenancy/cni:1"),  # by name, as before
    ],
    ids=[
        "quay-calico",
        "dockerhub-calico",
        "short-calico",
        "mirrored-calico",
        "canal",
        "quay-cilium",
        "dockerhub-cilium",
        "antrea",
        "vmware-antrea",
        "by-name",
    ],
)
def test_a_policy_engine_is_recognised_by_its_image(engine: dict[str, Any]) -> None:
    assert _not_enforced(engine) == []


@pytest.mark.parametrize(
    "image",
    [
        "docker.io/library/node:20",  # Node.js, not Calico's node agent
        "quay.io/example/node:1",
        "quay.io/calico/kube-controllers:v3.26.1",  # Calico's controllers enforce nothing
        "quay.io/coreos/flannel:v0.15.1",  # flannel alone enforces nothing
        "cilium/operator-generic:v1.16",
    ],
)
def test_other_images_are_not_policy_engines(image: str) -> None:
    assert not is_policy_engine_image(image)
    [finding] = _not_enforced(_daemonset("cni-agent", image))
    assert "no Calico, Cilium, Antrea or kube-router pods run" in finding.message


def test_the_default_deny_plan_knows_an_engine_by_its_image() -> None:
    """The planner's risk note uses the same recognition as the check."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    docs: list[dict[str, Any]] = [namespace, deployment()]

    def risks(*extra: dict[str, Any]) -> list[str]:
        inv = inventory([*docs, *extra], whole_cluster=True)
        finding = next(
            f for f in scan([*docs, *extra]) if f.check_id == "k8s.missing-network-policy"
        )
        return list(plan_finding(finding, inv, RemediationConfig()).risks)

    assert any("no NetworkPolicy engine" in r for r in risks())
    canal = _daemonset("canal", "quay.io/calico/node:v3.26.1", "quay.io/coreos/flannel:v0.15.1")
    assert not any("no NetworkPolicy engine" in r for r in risks(canal))


# --- d. the load-balancer checks need no OCI side ----------------------------------------------


@pytest.mark.parametrize("whole_cluster", [False, True], ids=["manifests", "snapshot"])
def test_load_balancer_checks_run_without_the_oci_side(whole_cluster: bool) -> None:
    findings = scan([service()], whole_cluster=whole_cluster)
    assert {f.check_id for f in findings if f.check_id.startswith("oke.")} == {
        "oke.lb-security-list-mode",
        "oke.public-load-balancer",
        "oke.lb-without-tls",
    }


# --- e. timestamps, quoted or not --------------------------------------------------------------

MIDNIGHT_2020 = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2020-01-01T00:00:00Z",
        "2020-01-01t00:00:00z",
        "2020-01-01T02:00:00+02:00",
        "2020-01-01T00:00:00.000000000Z",  # RFC 3339 with nanoseconds, as Go writes it
        "2020-01-01 00:00:00",
        datetime(2020, 1, 1),  # naive: taken as UTC
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2019, 12, 31, 19, 0, tzinfo=timezone(timedelta(hours=-5))),
        date(2020, 1, 1),
    ],
)
def test_parse_timestamp_reads_every_form(value: object) -> None:
    parsed = parse_timestamp(value)
    assert parsed == MIDNIGHT_2020
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "  ", "yesterday", "2020-13-01T00:00:00Z", 1577836800])
def test_parse_timestamp_rejects_what_names_no_time(value: object) -> None:
    assert parse_timestamp(value) is None


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2999, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    )
)
def test_quoted_and_unquoted_timestamps_mean_the_same_instant(when: datetime) -> None:
    text = (
        when.strftime("%Y-%m-%dT%H:%M:%S") + when.strftime("%z")[:3] + ":" + when.strftime("%z")[3:]
    )
    quoted = yaml.safe_load(f'creationTimestamp: "{text}"')["creationTimestamp"]
    unquoted = yaml.safe_load(f"creationTimestamp: {text}")["creationTimestamp"]
    assert isinstance(unquoted, datetime)
    assert parse_timestamp(quoted) == parse_timestamp(unquoted) == when.replace(microsecond=0)


def _stale(doc: dict[str, Any]) -> list[Finding]:
    return [f for f in scan([doc], checks=["k8s.stale-secret"], now=NOW) if f.status is Status.OPEN]


@pytest.mark.parametrize(
    "created", [datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1), date(2020, 1, 1)]
)
def test_a_stale_secret_with_a_yaml_timestamp_is_found(created: object) -> None:
    doc = secret()
    doc["metadata"]["creationTimestamp"] = created
    [finding] = _stale(doc)
    assert "(2020-01-01)" in finding.message


def test_a_yaml_rotated_at_counts_as_the_newest_time() -> None:
    doc = secret(created="2020-01-01T00:00:00Z")
    doc["metadata"]["annotations"] = {"okeguard.io/rotated-at": NOW - timedelta(days=3)}
    assert _stale(doc) == []
    doc["metadata"]["annotations"] = {"okeguard.io/rotated-at": NOW - timedelta(days=200)}
    [finding] = _stale(doc)
    assert "200 days ago" in finding.message
