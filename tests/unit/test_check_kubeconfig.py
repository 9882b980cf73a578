"""Spec tests for kubeconfig.static-credentials (CHECKS.md), on ``KubeconfigUser`` records.

Written from the specification, not from okeguard/checks/kubeconfig.py.
"""

from __future__ import annotations

import pytest

from okeguard.inventory.model import KubeconfigUser
from tests.unit.factories import describe, one, run

CHECK = "kubeconfig.static-credentials"

OCI_EXEC = KubeconfigUser(
    "user-c4dbc7ydsca",
    ("exec",),
    exec_command="oci",
    exec_args=(
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        "ocid1.cluster.oc1.eu-frankfurt-1.aaaa",
        "--region",
        "eu-frankfurt-1",
    ),
)


def _run(users: list[KubeconfigUser]) -> list:
    return run(CHECK, [], kubeconfig_users=users)


@pytest.mark.parametrize("auth", [("token",), ("password",), ("client-key",)])
def test_static_credentials_flagged(auth: tuple[str, ...]) -> None:
    f = one(_run([KubeconfigUser("admin", auth)]))
    assert (f.check_id, f.severity.value, f.status.value, f.remediation) == (
        CHECK,
        "medium",
        "open",
        "guidance",
    )
    # The resource kind of a kubeconfig entry is left open by CHECKS.md; it is named by the user.
    assert f.resource.name == "admin" and f.resource.namespace is None, describe(f)
    # The message names the mechanism; "client-key" may be spelled out as a client certificate key.
    spelled = {"client-key": ("client-key", "client key", "client certificate key")}
    assert any(word in f.message.lower() for word in spelled.get(auth[0], auth)), f.message
    assert f.practice == ("P19",)


def test_oci_exec_passes() -> None:
    assert _run([OCI_EXEC]) == []


def test_only_static_users_reported() -> None:
    found = _run(
        [OCI_EXEC, KubeconfigUser("legacy", ("client-key",)), KubeconfigUser("ci", ("token",))]
    )
    assert sorted(f.resource.name for f in found) == ["ci", "legacy"]
    assert len({f.fingerprint for f in found}) == 2


def test_no_kubeconfig_no_findings() -> None:
    assert run(CHECK, []) == []
