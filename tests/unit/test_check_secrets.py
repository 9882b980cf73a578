"""Spec tests for the secret and ingress checks of CHECKS.md: k8s.legacy-service-account-token,
k8s.stale-secret, k8s.certificate-expiring, k8s.ingress-without-tls and
k8s.credentials-in-configmap.

Written from the specification (CHECKS.md), not from okeguard/checks/secrets.py. Certificates are
real X.509 PEMs generated here with ``cryptography``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from okeguard.inventory.model import Gap
from tests.helpers import NOW, config
from tests.unit.factories import (
    AWS_KEY_ID,
    PEM_PRIVATE_KEY,
    assert_finding,
    config_map,
    days_ago,
    describe,
    ingress,
    make_certificate_pem,
    one,
    run,
    secret,
    tls_secret,
)

SECRET_CHECKS = ("k8s.legacy-service-account-token", "k8s.stale-secret", "k8s.certificate-expiring")


# ---------------------------------------------------------------------------------------------
# k8s.legacy-service-account-token


def test_legacy_service_account_token_secret() -> None:
    doc = secret(
        "build-robot-token", type="kubernetes.io/service-account-token", created=days_ago(3)
    )
    doc["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "build-robot"}
    assert_finding(
        one(run("k8s.legacy-service-account-token", [doc])),
        check_id="k8s.legacy-service-account-token",
        severity="medium",
        kind="Secret",
        namespace="shop",
        name="build-robot-token",
        remediation="rotate-secret",
        mentions=("kubernetes.io/service-account-token",),
    )


@pytest.mark.parametrize("type_", ["Opaque", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson"])
def test_other_secret_types_are_not_legacy_tokens(type_: str) -> None:
    assert run("k8s.legacy-service-account-token", [secret(type=type_, created=days_ago(3))]) == []


# ---------------------------------------------------------------------------------------------
# k8s.stale-secret


def test_stale_opaque_secret() -> None:
    created = NOW - timedelta(days=100)
    f = one(run("k8s.stale-secret", [secret("db", created=days_ago(100))]))
    assert_finding(
        f,
        check_id="k8s.stale-secret",
        severity="medium",
        kind="Secret",
        namespace="shop",
        name="db",
        remediation="rotate-secret",
    )
    # The message names the value that makes it stale: its age in days or the date.
    assert "100" in f.message or created.date().isoformat() in f.message, f.message


def test_fresh_opaque_secret_passes() -> None:
    assert run("k8s.stale-secret", [secret("db", created=days_ago(30))]) == []


def test_stale_secret_boundary_is_older_than_max_age() -> None:
    assert run("k8s.stale-secret", [secret("db", created=days_ago(89))]) == []
    assert len(run("k8s.stale-secret", [secret("db", created=days_ago(91))])) == 1


def test_secret_without_type_is_opaque() -> None:
    # Kubernetes defaults `type` to Opaque; a manifest that leaves it out is an Opaque Secret.
    assert len(run("k8s.stale-secret", [secret("db", type=None, created=days_ago(200))])) == 1


def test_rotated_at_annotation_renews_the_secret() -> None:
    doc = secret("db", created=days_ago(400), annotations={"okeguard.io/rotated-at": days_ago(10)})
    assert run("k8s.stale-secret", [doc]) == []


def test_age_is_the_newest_of_creation_and_rotation() -> None:
    # An old rotated-at on a recreated Secret does not make it stale.
    doc = secret("db", created=days_ago(10), annotations={"okeguard.io/rotated-at": days_ago(400)})
    assert run("k8s.stale-secret", [doc]) == []


def test_rotated_long_ago_is_still_stale() -> None:
    doc = secret("db", created=days_ago(400), annotations={"okeguard.io/rotated-at": days_ago(120)})
    assert len(run("k8s.stale-secret", [doc])) == 1


def test_stale_secret_max_age_configurable() -> None:
    doc = secret("db", created=days_ago(45))
    assert run("k8s.stale-secret", [doc]) == []
    assert len(run("k8s.stale-secret", [doc], config=config(secret_max_age_days=30))) == 1
    old = secret("db", created=days_ago(120))
    assert run("k8s.stale-secret", [old], config=config(secret_max_age_days=180)) == []


@pytest.mark.parametrize(
    "type_",
    ["kubernetes.io/tls", "kubernetes.io/dockerconfigjson", "kubernetes.io/service-account-token"],
)
def test_only_opaque_secrets_go_stale(type_: str) -> None:
    assert run("k8s.stale-secret", [secret("x", type=type_, created=days_ago(400))]) == []


def test_stale_secret_exemption() -> None:
    doc = secret(
        "legacy",
        created=days_ago(400),
        annotations={
            "okeguard.io/exempt": "k8s.stale-secret",
            "okeguard.io/exempt-reason": "vendor-managed",
        },
    )
    f = one(run("k8s.stale-secret", [doc]))
    assert f.status.value == "exempt" and f.exempt_reason == "vendor-managed"


# ---------------------------------------------------------------------------------------------
# k8s.certificate-expiring


def test_certificate_expiring_within_30_days_is_high() -> None:
    not_after = NOW + timedelta(days=10)
    f = one(run("k8s.certificate-expiring", [tls_secret("shop-tls", not_after=not_after)]))
    assert_finding(
        f,
        check_id="k8s.certificate-expiring",
        severity="high",
        kind="Secret",
        namespace="shop",
        name="shop-tls",
        remediation="guidance",
    )
    # Names the value: the expiry date (ISO) or the days left.
    assert not_after.date().isoformat() in f.message or "10 day" in f.message, f.message


def test_expired_certificate_is_critical() -> None:
    not_after = NOW - timedelta(days=1)
    f = one(run("k8s.certificate-expiring", [tls_secret("old-tls", not_after=not_after)]))
    assert (f.severity.value, f.status.value, f.resource.name) == ("critical", "open", "old-tls")
    assert not_after.date().isoformat() in f.message or "expired" in f.message.lower(), f.message


def test_certificate_valid_for_200_days_passes() -> None:
    assert run("k8s.certificate-expiring", [tls_secret(not_after=NOW + timedelta(days=200))]) == []


def test_certificate_expiry_window_configurable() -> None:
    doc = tls_secret(not_after=NOW + timedelta(days=200))
    f = one(run("k8s.certificate-expiring", [doc], config=config(certificate_expiry_days=250)))
    assert f.severity.value == "high"
    assert (
        run(
            "k8s.certificate-expiring",
            [tls_secret(not_after=NOW + timedelta(days=10))],
            config=config(certificate_expiry_days=5),
        )
        == []
    )


def test_leaf_of_a_chain_is_checked() -> None:
    chain = make_certificate_pem(NOW + timedelta(days=10)) + make_certificate_pem(
        NOW + timedelta(days=3650), common_name="Shop CA"
    )
    f = one(run("k8s.certificate-expiring", [tls_secret(cert_pem=chain)]))
    assert f.severity.value == "high"


def test_certificate_finding_never_carries_the_private_key() -> None:
    f = one(run("k8s.certificate-expiring", [tls_secret(not_after=NOW + timedelta(days=10))]))
    assert "PRIVATE KEY" not in str(f.to_dict())


# ---------------------------------------------------------------------------------------------
# a Secret listing that failed: fail closed


@pytest.mark.parametrize("check_id", SECRET_CHECKS)
def test_secret_gap_reports_unknown_instead_of_passing(check_id: str) -> None:
    gap = Gap(source="live", kind="Secret", reason="forbidden: cannot list secrets")
    found = run(check_id, [], whole_cluster=True, gaps=[gap])
    f = one(found)
    assert f.status.value == "unknown", describe(f)
    assert f.resource.kind == "Secret"


@pytest.mark.parametrize("check_id", SECRET_CHECKS)
def test_gap_for_another_kind_does_not_affect_secret_checks(check_id: str) -> None:
    gap = Gap(source="live", kind="Node", reason="forbidden")
    assert run(check_id, [], whole_cluster=True, gaps=[gap]) == []


# ---------------------------------------------------------------------------------------------
# k8s.ingress-without-tls


def test_ingress_with_rules_and_no_tls() -> None:
    assert_finding(
        one(run("k8s.ingress-without-tls", [ingress("shop", tls=False)])),
        check_id="k8s.ingress-without-tls",
        severity="medium",
        kind="Ingress",
        namespace="shop",
        name="shop",
        remediation="guidance",
        mentions=("tls",),
    )


def test_ingress_with_tls_passes() -> None:
    assert run("k8s.ingress-without-tls", [ingress("shop", tls=True)]) == []


def test_ingress_without_rules_is_not_flagged() -> None:
    assert (
        run("k8s.ingress-without-tls", [ingress("default-backend", tls=False, rules=False)]) == []
    )


# ---------------------------------------------------------------------------------------------
# k8s.credentials-in-configmap


def test_configmap_with_pem_private_key() -> None:
    doc = config_map("signer", data={"LOG_LEVEL": "info", "signing.pem": PEM_PRIVATE_KEY})
    f = one(run("k8s.credentials-in-configmap", [doc]))
    assert_finding(
        f,
        check_id="k8s.credentials-in-configmap",
        severity="high",
        kind="ConfigMap",
        namespace="shop",
        name="signer",
        remediation="guidance",
        mentions=("signing.pem",),
    )
    dumped = str(f.to_dict())
    assert "BEGIN PRIVATE KEY" not in dumped
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj" not in dumped


def test_configmap_with_aws_key_id() -> None:
    doc = config_map("aws", data={"credentials": f"[default]\naws_access_key_id = {AWS_KEY_ID}\n"})
    f = one(run("k8s.credentials-in-configmap", [doc]))
    assert f.severity.value == "high" and "credentials" in f.message
    assert AWS_KEY_ID not in str(f.to_dict())


def test_configmap_with_public_certificate_passes() -> None:
    # kube-root-ca.crt and CA bundles are public: a certificate is not key material.
    doc = config_map(
        "kube-root-ca.crt", data={"ca.crt": make_certificate_pem(NOW + timedelta(days=3650))}
    )
    assert run("k8s.credentials-in-configmap", [doc]) == []


def test_plain_configmap_passes() -> None:
    assert (
        run("k8s.credentials-in-configmap", [config_map(data={"app.yaml": "port: 8080\n"})]) == []
    )
