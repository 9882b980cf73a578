"""Redaction on the way in: no secret value survives loading, whatever the source."""

from __future__ import annotations

import json

from okeguard.inventory.sensitive import (
    classify_key_material,
    looks_like_credential_name,
    marker_label,
)
from tests.helpers import deployment, inventory, scan

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----\n"


def test_env_values_that_look_like_credentials_are_replaced() -> None:
    containers = [
        {
            "name": "app",
            "image": "nginx:1.27",
            "env": [
                {"name": "DB_PASSWORD", "value": "s3cr3t-value"},
                {"name": "INNOCENT", "value": "AKIAIOSFODNN7EXAMPLE"},
                {"name": "LOG_LEVEL", "value": "debug"},
            ],
        }
    ]
    inv = inventory([deployment(containers=containers)])
    env = inv.workloads[0].containers[0].spec["env"]
    assert marker_label(env[0]["value"]) == "credential"
    assert marker_label(env[1]["value"]) == "aws-access-key-id"
    assert env[2]["value"] == "debug"
    assert "s3cr3t-value" not in json.dumps(inv.workloads[0].obj.raw)


def test_configmap_key_material_is_replaced_but_plain_config_kept() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "a"},
        "data": {"key.pem": PEM, "mode": "prod"},
    }
    (obj,) = inventory([cm]).of_kind("ConfigMap")
    assert marker_label(obj.raw["data"]["key.pem"]) == "pem-private-key"
    assert obj.raw["data"]["mode"] == "prod"


def test_findings_never_carry_secret_values() -> None:
    containers = [
        {
            "name": "app",
            "image": "nginx:1.27",
            "env": [{"name": "API_TOKEN", "value": "tok-123456789"}],
        }
    ]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "shop"},
        "data": {"k": PEM},
    }
    findings = scan([deployment(containers=containers), cm])
    dumped = json.dumps([f.to_dict() for f in findings])
    assert "tok-123456789" not in dumped and "MIIEowIBAAKCAQEAx" not in dumped
    assert {"k8s.credentials-in-env", "k8s.credentials-in-configmap"} <= {
        f.check_id for f in findings
    }


def test_credential_name_heuristics() -> None:
    for name in (
        "DB_PASSWORD",
        "stripe_api_key",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "PRIVATE_KEY",
        "MYSQL_PWD",
    ):
        assert looks_like_credential_name(name), name
    for name in ("PASSWORD_FILE", "TOKEN_URL", "SECRET_NAME", "LOG_LEVEL", "PORT", "TOKEN_TTL"):
        assert not looks_like_credential_name(name), name


def test_key_formats() -> None:
    assert classify_key_material(PEM) == "pem-private-key"
    assert classify_key_material("-----BEGIN OPENSSH PRIVATE KEY-----\nabc") == "pem-private-key"
    assert (
        classify_key_material("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----") is None
    )
    oci = "ocid1.tenancy.oc1..aaaabbbb/ocid1.user.oc1..ccccdddd/" + ":".join(["ab"] * 16)
    assert classify_key_material(oci) == "oci-api-key-id"
    assert classify_key_material("hello world, nothing to see") is None
