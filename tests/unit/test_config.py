"""Configuration: defaults, validation errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from okeguard.config import Config, load_config
from okeguard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "okeguard.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_catalogue() -> None:
    checks = Config().checks
    assert checks.secret_max_age_days == 90
    assert checks.certificate_expiry_days == 30
    assert checks.max_image_size_mb == 500
    assert checks.allowed_registries == ()
    assert checks.system_namespaces == ("kube-system", "kube-public", "kube-node-lease")
    assert Config().exposure == "private"
    assert load_config(None) == Config()


def test_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "exposure: public\nchecks:\n  secret_max_age_days: 30\n  allowed_registries: [fra.ocir.io]\n",
    )
    config = load_config(path)
    assert config.exposure == "public"
    assert config.checks.secret_max_age_days == 30
    assert config.checks.allowed_registries == ("fra.ocir.io",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "checks:\n  secret_max_age: 30\n",
            "unknown key 'checks.secret_max_age' (did you mean 'secret_max_age_days'?)",
        ),
        ("exposur: public\n", "unknown key 'exposur' (did you mean 'exposure'?)"),
        ("exposure: everywhere\n", "exposure: Input should be 'private', 'internal' or 'public'"),
        (
            "checks:\n  max_image_size_mb: lots\n",
            "checks.max_image_size_mb: Input should be a valid integer",
        ),
        (
            "checks:\n  secret_max_age_days: 0\n",
            "checks.secret_max_age_days: Input should be greater than or equal to 1",
        ),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("checks:\n  disabled: [a\n", "okeguard.yaml:3: invalid YAML"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.yaml")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == Config()


CLUSTERS = """\
exposure: private
oci:
  mode: workload_identity
clusters:
  - name: shop-prod
    in_cluster: true
    cluster_id: ocid1.cluster.oc1.eu-frankfurt-1.aaaa
    region: eu-frankfurt-1
    compartments: [ocid1.compartment.oc1..shop]
    exposure: public
    checks:
      secret_max_age_days: 30
  - name: lab
    context: lab
"""


def test_clusters_and_oci_auth_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CLUSTERS))
    assert config.oci.mode == "workload_identity"
    prod = config.cluster("shop-prod")
    assert prod.in_cluster and prod.region == "eu-frankfurt-1"
    effective = config.for_cluster(prod)
    assert effective.exposure == "public" and effective.checks.secret_max_age_days == 30
    lab = config.for_cluster(config.cluster("lab"))
    assert lab.exposure == "private" and lab.checks.secret_max_age_days == 90


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "clusters:\n  - name: a\n    contxt: b\n",
            "unknown key 'clusters[0].contxt' (did you mean 'context'?)",
        ),
        (
            "clusters:\n  - name: a\n    checks: {secret_max_age: 3}\n",
            "'clusters[0].checks.secret_max_age' (did you mean",
        ),
        (
            "clusters:\n  - name: a\n    cluster_id: ocid1.cluster.oc1..x\n",
            "clusters[0]: region is required with cluster_id",
        ),
        (
            "clusters:\n  - name: a\n    cluster_id: vcn-1\n    region: r\n",
            "clusters[0].cluster_id: String should match pattern",
        ),
        (
            "clusters:\n  - name: a\n    in_cluster: true\n    context: x\n",
            "in_cluster cannot be combined with context",
        ),
        ("clusters:\n  - name: a\n  - name: a\n", "cluster name 'a' is used twice"),
        ("oci:\n  mode: magic\n", "oci.mode: Input should be 'config_file', 'instance_principal'"),
        (
            "oci:\n  mode: instance_principal\n  profile: X\n",
            "oci: config_file and profile apply only to mode config_file",
        ),
    ],
)
def test_cluster_and_oci_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_unknown_cluster_name_suggests(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CLUSTERS))
    with pytest.raises(ConfigError, match="did you mean 'shop-prod'"):
        config.cluster("shop-prd")


@pytest.mark.parametrize(
    "text",
    [
        "exposure: public\n",
        "slack:\n  approvers: {groups: [S0SRE]}\n"
        "  approvers_by_remediation:\n    rotate-secret: {groups: [S0SECRETS]}\n",
    ],
)
def test_loading_a_configuration_imports_no_remediation_module(tmp_path: Path, text: str) -> None:
    """Remediation ids (for ``slack.approvers_by_remediation``) are read from the checks that
    name them, so no file makes loading import the planners and every remediation module."""
    import subprocess
    import sys

    path = write(tmp_path, text)
    code = (
        "import sys; from okeguard.config import load_config; load_config(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.startswith('okeguard.remediations.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
