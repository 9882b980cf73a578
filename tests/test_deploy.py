"""The Kubernetes deployment (deploy/kustomize) is valid, least-privilege, and passes okeguard.

Each overlay is rendered with ``kubectl kustomize``, every document is validated against the
Kubernetes 1.30 schemas (strict: unknown fields fail), and the rendered file is scanned by the
real console script, which must report zero open findings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from okeguard.config import load_config
from okeguard.inventory.model import SUPPORTED_KINDS
from okeguard.remediations.kube_writer import plural
from tests.e2e.conftest import okeguard_command

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZE = ROOT / "deploy" / "kustomize"
OVERLAYS = ("read-only", "remediate")
K8S_VERSION = "1.30"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
DANGEROUS_VERBS = {"escalate", "bind", "impersonate"}

# Annotated exemptions (okeguard.io/exempt) the deployment is allowed to carry, with why.
# None: okeguard's own deployment passes every check.
ALLOWED_EXEMPTIONS: dict[str, str] = {}

Rule = tuple[str, str, str]  # (API group, resource, verb)

# The scanner: one cluster-wide LIST per kind in SUPPORTED_KINDS (okeguard/inventory/kube.py),
# nothing else. Derived from the code, so a new scanned kind fails here until the role has it.
SCAN_RULES: set[Rule] = {
    (api.split("/")[0] if "/" in api else "", plural(kind), "list")
    for kind, api in SUPPORTED_KINDS.items()
}

# The remediations (okeguard/remediations/), beyond scanning. Writes go through KubeWriter
# (patch/create/delete, each first as a server-side dry run); `get` is each step's re-read
# (verify, in_effect after a crash).
REMEDIATE_RULES: set[Rule] = {
    # add-security-context (security_context.py): JSON Patch of the pod template, rollout
    # watched; rotate-secret: consumers repointed (token_rotation.py) or restarted
    # (secret_vault.restart_workloads). Jobs and bare Pods are never patched.
    *{
        ("apps", r, v)
        for r in ("deployments", "statefulsets", "daemonsets", "replicasets")
        for v in ("get", "patch")
    },
    ("batch", "cronjobs", "get"),
    ("batch", "cronjobs", "patch"),
    # kube_actions.failing_pods: the patched workload's pods, by label selector.
    ("", "pods", "list"),
    # rotate-secret: Vault mirror patched (secret_actions.py); legacy token Secret created and
    # the old one deleted (token_actions.py, token_rotation.py).
    *{("", "secrets", v) for v in ("get", "create", "patch", "delete")},
    # rotate-secret (legacy token): the ServiceAccount's `secrets` list repointed.
    ("", "serviceaccounts", "get"),
    ("", "serviceaccounts", "patch"),
    # move-rules-to-nsg (nsg_plan_parts.py): LoadBalancer Service annotations.
    ("", "services", "get"),
    ("", "services", "patch"),
    # add-default-deny-policy (network_policy.py): create; rollback deletes it.
    *{("networking.k8s.io", "networkpolicies", v) for v in ("get", "create", "delete")},
    # rotate-secret: force-sync annotation on an ExternalSecret (kube_writer.EXTRA_KINDS).
    ("external-secrets.io", "externalsecrets", "get"),
    ("external-secrets.io", "externalsecrets", "patch"),
}


def render(overlay: str, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: it renders the kustomizations (CI installs it)")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return path, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Any]]]:
    out = tmp_path_factory.mktemp("deploy")
    return {overlay: render(overlay, out) for overlay in OVERLAYS}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def rules_of(role: dict[str, Any]) -> set[Rule]:
    return {
        (group, resource, verb)
        for rule in role.get("rules") or ()
        for group in rule.get("apiGroups") or ()
        for resource in rule.get("resources") or ()
        for verb in rule.get("verbs") or ()
    }


def bound_roles(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The ClusterRoles bound to okeguard's ServiceAccount."""
    for binding in of_kind(docs, "ClusterRoleBinding"):
        subjects = binding.get("subjects") or ()
        assert subjects == [
            {"kind": "ServiceAccount", "name": "okeguard", "namespace": "okeguard"}
        ], binding["metadata"]["name"]
        assert binding["roleRef"]["kind"] == "ClusterRole"
        yield one(docs, "ClusterRole", binding["roleRef"]["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_valid_kubernetes(rendered: dict[str, Any], overlay: str) -> None:
    _, docs = rendered[overlay]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "okeguard", doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_okeguard_passes_its_own_checks(rendered: dict[str, Any], overlay: str) -> None:
    path, docs = rendered[overlay]
    result = subprocess.run(
        [*okeguard_command(), "scan", "--manifests", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    open_findings = [
        (f["check_id"], f["resource"]["kind"], f["resource"]["name"], f["message"])
        for f in report["findings"]
        if f["status"] == "open"
    ]
    assert open_findings == []
    assert report["summary"]["incomplete"] == []
    exempt = {
        f"{d['kind']}/{d['metadata']['name']}": d["metadata"]["annotations"]["okeguard.io/exempt"]
        for d in docs
        if "okeguard.io/exempt" in (d["metadata"].get("annotations") or {})
    }
    assert set(exempt) == set(ALLOWED_EXEMPTIONS), exempt
    scanned_kinds = {d["kind"] for d in docs} - {"PodDisruptionBudget"}
    assert scanned_kinds <= set(SUPPORTED_KINDS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_wildcard_nor_escalation(rendered: dict[str, Any], overlay: str) -> None:
    _, docs = rendered[overlay]
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
        assert not {verb for _, _, verb in rules_of(role)} & DANGEROUS_VERBS
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")


def test_scan_role_is_exactly_list_on_the_scanned_kinds(rendered: dict[str, Any]) -> None:
    for overlay in OVERLAYS:
        _, docs = rendered[overlay]
        assert rules_of(one(docs, "ClusterRole", "okeguard-scan")) == SCAN_RULES


def test_read_only_overlay_grants_no_write_verb(rendered: dict[str, Any]) -> None:
    _, docs = rendered["read-only"]
    granted = set().union(*(rules_of(role) for role in bound_roles(docs)))
    assert granted == SCAN_RULES
    assert not {verb for _, _, verb in granted} & (WRITE_VERBS | DANGEROUS_VERBS)
    assert "remediation" not in yaml.safe_load(config_text(docs))


def test_remediate_role_grants_exactly_what_the_remediations_need(
    rendered: dict[str, Any],
) -> None:
    _, docs = rendered["remediate"]
    assert rules_of(one(docs, "ClusterRole", "okeguard-remediate")) == REMEDIATE_RULES
    assert {role["metadata"]["name"] for role in bound_roles(docs)} == {
        "okeguard-scan",
        "okeguard-remediate",
    }


def config_text(docs: list[dict[str, Any]]) -> str:
    (config_map,) = of_kind(docs, "ConfigMap")
    assert config_map["metadata"]["name"].startswith("okeguard-config-")  # hashed: rolls pods
    text: str = config_map["data"]["okeguard.yaml"]
    return text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_example_configuration_loads(
    rendered: dict[str, Any], overlay: str, tmp_path: Path
) -> None:
    _, docs = rendered[overlay]
    path = tmp_path / "okeguard.yaml"
    path.write_text(config_text(docs))
    config = load_config(path)
    assert config.oci.mode == "workload_identity"
    assert [c.in_cluster for c in config.clusters] == [True]
    assert config.database.url == "sqlite:////var/lib/okeguard/okeguard.db"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_is_hardened(rendered: dict[str, Any], overlay: str) -> None:
    _, docs = rendered[overlay]
    deployment = one(docs, "Deployment", "okeguard")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "okeguard"
    assert pod["securityContext"]["runAsUser"] == 10001
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsUser"] == 10001 and sc["runAsGroup"] == 10001 and sc["runAsNonRoot"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "@sha256:" in container["image"]
    assert container["image"].startswith("fra.ocir.io/")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/okeguard", "/etc/okeguard"} <= mounts
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # Secrets only by reference: no literal value for any Slack or database variable.
    env = {e["name"]: e for e in container["env"]}
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "okeguard-slack"
    assert env["SLACK_SIGNING_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True
    database = env["OKEGUARD_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert database["name"] == "okeguard-database" and database["optional"] is True
    assert not of_kind(docs, "Secret")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_selects_okeguard_both_ways(rendered: dict[str, Any], overlay: str) -> None:
    _, docs = rendered[overlay]
    deployment = one(docs, "Deployment", "okeguard")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (policy,) = of_kind(docs, "NetworkPolicy")
    spec = policy["spec"]
    selector = spec["podSelector"]["matchLabels"]
    assert selector and selector.items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # Ingress: only the operations port.
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == [8081]
    # Egress: DNS, the API server (and OKE's Workload Identity proxymux), HTTPS.
    ports = sorted({(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]})
    assert ports == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("TCP", 12250), ("UDP", 53)]
    for rule in spec["egress"]:
        assert rule.get("to"), "an egress rule without `to` allows every destination"
        for peer in rule["to"]:
            if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0":
                assert "10.0.0.0/8" in peer["ipBlock"]["except"]
                assert [p["port"] for p in rule["ports"]] == [443]
