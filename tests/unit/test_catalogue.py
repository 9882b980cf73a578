"""The catalogue contract: every id of CHECKS.md is registered with its metadata, and the
generated docs/checks.md is current."""

from __future__ import annotations

import re
from pathlib import Path

from okeguard.checks.docs import checks_markdown
from okeguard.checks.registry import all_checks, get_check

ROOT = Path(__file__).resolve().parents[2]

# (id, practices, default severity, remediation) exactly as the catalogue specifies them.
CATALOGUE = [
    ("k8s.run-as-root", "P9", "high", "add-security-context"),
    ("k8s.privileged", "P9", "critical", "add-security-context"),
    ("k8s.privilege-escalation", "P9", "medium", "add-security-context"),
    ("k8s.dangerous-capabilities", "P9", "high", "add-security-context"),
    ("k8s.capabilities-not-dropped", "P9", "low", "add-security-context"),
    ("k8s.host-namespaces", "P9", "high", "guidance"),
    ("k8s.host-path", "P9, P10", "high", "guidance"),
    ("k8s.writable-root-fs", "P10", "medium", "add-security-context"),
    ("k8s.mutable-image-tag", "P17", "medium", "guidance"),
    ("k8s.image-not-pinned", "P17", "info", "guidance"),
    ("k8s.large-image", "P17", "low", "guidance"),
    ("k8s.untrusted-registry", "P17", "medium", "guidance"),
    ("k8s.credentials-in-env", "P18", "high", "guidance"),
    ("k8s.missing-network-policy", "P6", "medium", "add-default-deny-policy"),
    ("k8s.cluster-admin-binding", "P20", "high", "guidance"),
    ("k8s.wildcard-rbac", "P20", "medium", "guidance"),
    ("k8s.anonymous-access", "P20", "critical", "guidance"),
    ("k8s.default-service-account", "P19, P20", "low", "guidance"),
    ("k8s.legacy-service-account-token", "P19", "medium", "rotate-secret"),
    ("k8s.stale-secret", "P8", "medium", "rotate-secret"),
    ("k8s.certificate-expiring", "P8", "high", "guidance"),
    ("k8s.ingress-without-tls", "P11", "medium", "guidance"),
    ("k8s.credentials-in-configmap", "P18", "high", "guidance"),
    ("k8s.no-log-collector", "P14", "low", "guidance"),
    ("k8s.no-monitoring", "P15", "low", "guidance"),
    ("kubeconfig.static-credentials", "P19", "medium", "guidance"),
]


def test_every_catalogue_check_is_registered_with_its_metadata() -> None:
    for check_id, practice, severity, remediation in CATALOGUE:
        spec = get_check(check_id)
        assert spec is not None, check_id
        assert ", ".join(spec.practice) == practice, check_id
        assert spec.severity.value == severity, check_id
        assert spec.remediation == remediation, check_id
        assert spec.title and spec.description


def test_the_shared_catalogue_lists_no_k8s_id_we_miss() -> None:
    shared = ROOT.parent / "shared" / "CHECKS.md"
    ids = {row[0] for row in CATALOGUE}
    if shared.is_file():  # CI and developers have shared/ beside the checkout
        ids |= set(re.findall(r"`((?:k8s|kubeconfig)\.[a-z-]+)`", shared.read_text()))
    registered = {spec.id for spec in all_checks()}
    assert ids <= registered


def test_docs_checks_md_is_generated_from_the_registry() -> None:
    current = (ROOT / "docs" / "checks.md").read_text()
    assert current == checks_markdown(), (
        "docs/checks.md is stale: run okeguard checks --format markdown > docs/checks.md"
    )
    for spec in all_checks():
        assert f"## `{spec.id}`" in current
