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
