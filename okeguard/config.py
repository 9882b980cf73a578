"""The configuration file (``okeguard.yaml``), validated with pydantic.

Errors name the file and the bad key (``okeguard.yaml: checks.secret_max_age_days: ...``) and
suggest the right key for a typo. Secrets never live here: tokens come from the environment.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from okeguard.errors import ConfigError

Exposure = Literal["private", "internal", "public"]

DEFAULT_SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChecksConfig(_Strict):
    """Thresholds and switches of the checks; every field has the documented default."""

    system_namespaces: tuple[str, ...] = Field(
        DEFAULT_SYSTEM_NAMESPACES, description="Namespaces left out of workload checks."
    )
    include_system_namespaces: bool = Field(
        False, description="Run workload checks in the system namespaces too."
    )
    secret_max_age_days: int = Field(
        90, ge=1, description="`k8s.stale-secret`: maximum age of an Opaque Secret."
    )
    certificate_expiry_days: int = Field(
        30, ge=0, description="`k8s.certificate-expiring`: warn this many days before expiry."
    )
    max_image_size_mb: int = Field(
        500, ge=1, description="`k8s.large-image`: largest acceptable image, in MB (10^6 bytes)."
    )
    allowed_registries: tuple[str, ...] = Field(
        (),
        description="`k8s.untrusted-registry`: registries (or registry/path prefixes) images may "
        "come from; the check is off while this is empty.",
    )
    denied_capabilities: tuple[str, ...] = Field(
        (),
        description="`k8s.dangerous-capabilities`: capabilities denied on top of the built-in list.",
    )
    disabled: tuple[str, ...] = Field((), description="Check ids never run.")


class Config(_Strict):
    """The whole ``okeguard.yaml``."""

    exposure: Exposure = Field(
        "private", description="Planned exposure of the cluster (practice P1); grades severities."
    )
    checks: ChecksConfig = Field(default_factory=ChecksConfig)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _explain(error: ValidationError, path: str) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        parent: type[BaseModel] = Config
        for part in loc[:-1]:
            field = parent.model_fields.get(str(part))
            annotation = field.annotation if field else None
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                parent = annotation
        close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown key '{_location(loc)}'{hint}"
    return f"{path}: {_location(loc)}: {first['msg']}"


def load_config(path: str | Path | None) -> Config:
    """Read and validate a configuration file; ``None`` gives the defaults.

    Raises :class:`ConfigError` naming the file (and line, for YAML syntax errors) or the key.
    """
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{file}{where}: invalid YAML: {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, str(file))) from None
