"""The configuration file (``okeguard.yaml``), validated with pydantic.

Errors name the file and the bad key (``okeguard.yaml: checks.secret_max_age_days: ...``) and
suggest the right key for a typo. Secrets never live here: tokens come from the environment.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from okeguard.config_access import (
    CliConfig,
    ExceptionsConfig,
    People,
    SlackConfig,
    check_access,
)
from okeguard.config_serve import ScheduleConfig, ServeConfig, ServeHttpConfig
from okeguard.errors import ConfigError, OkeguardError

# The access and serve settings have modules of their own; importers keep using okeguard.config.
__all__ = [
    "CliConfig",
    "Config",
    "ExceptionsConfig",
    "People",
    "ServeHttpConfig",
    "SlackConfig",
    "load_config",
]

Exposure = Literal["private", "internal", "public"]

DEFAULT_SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
MAX_CONFIG_BYTES = 16 * 2**20  # a configuration is a few KiB; more is the wrong file


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
        description="`k8s.dangerous-capabilities`: capabilities denied on top of the built-in list "
        "(SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, NET_RAW, DAC_READ_SEARCH, ALL), with or "
        "without `CAP_`, in any case; `add-security-context` removes them from `capabilities.add` "
        "too.",
    )
    disabled: tuple[str, ...] = Field((), description="Check ids never run.")
    node_image_max_age_days: int = Field(
        60, ge=1, description="`oke.stale-node-image`: maximum age of a node pool's image."
    )
    vault_secret_max_age_days: int = Field(
        90,
        ge=1,
        description="`oke.vault-secret-not-rotated`: maximum age of a secret's current version.",
    )


OciAuthMode = Literal[
    "config_file", "instance_principal", "resource_principal", "workload_identity"
]


class OciAuthConfig(_Strict):
    """How okeguard authenticates to OCI. ``workload_identity`` is the right choice inside OKE."""

    mode: OciAuthMode = Field(
        "config_file",
        description="config_file, instance_principal, resource_principal or workload_identity.",
    )
    config_file: str | None = Field(
        None, description="OCI CLI config file (default ~/.oci/config); mode config_file only."
    )
    profile: str = Field(
        "DEFAULT", description="Profile in the config file; mode config_file only."
    )

    @model_validator(mode="after")
    def _file_options_need_config_file_mode(self) -> OciAuthConfig:
        if self.mode != "config_file" and (
            self.config_file is not None or self.profile != "DEFAULT"
        ):
            raise ValueError(
                f"config_file and profile apply only to mode config_file, not {self.mode}"
            )
        return self


class ClusterConfig(_Strict):
    """One cluster to scan: how to reach its Kubernetes API and where it lives in OCI."""

    name: str = Field(
        ..., min_length=1, description="Name used in findings, fingerprints and Slack."
    )
    context: str | None = Field(None, description="Kubeconfig context of the cluster.")
    kubeconfig: str | None = Field(
        None, description="Kubeconfig file (default $KUBECONFIG or ~/.kube/config)."
    )
    in_cluster: bool = Field(
        False, description="Use the pod's ServiceAccount (okeguard runs in this cluster)."
    )
    cluster_id: str | None = Field(
        None, pattern=r"^ocid1\.cluster\.", description="The OKE cluster OCID."
    )
    region: str | None = Field(None, description="OCI region of the cluster, e.g. eu-frankfurt-1.")
    compartments: tuple[str, ...] = Field(
        (), description="Compartment OCIDs whose Vault secrets (and logs) to read."
    )
    exposure: Exposure | None = Field(
        None, description="Planned exposure of this cluster (default: the top-level exposure)."
    )
    checks: ChecksConfig | None = Field(
        None, description="Thresholds for this cluster (default: the top-level checks)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.in_cluster and (self.context or self.kubeconfig):
            raise ValueError("in_cluster cannot be combined with context or kubeconfig")
        if self.cluster_id and not self.region:
            raise ValueError("region is required with cluster_id")
        return self


class DatabaseConfig(_Strict):
    """Where the audit database lives. ``OKEGUARD_DATABASE_URL`` in the environment wins."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://okeguard@db.example.com/okeguard "
        "(default: a SQLite file under $XDG_STATE_HOME/okeguard/); no password here.",
    )

    @model_validator(mode="after")
    def _no_password(self) -> DatabaseConfig:
        # Secrets come only from the environment (PGPASSWORD, ~/.pgpass or OKEGUARD_DATABASE_URL).
        if self.url and re.match(r"^[^:/]+://[^/@]*:[^/@]*@", self.url):
            raise ValueError(
                "the URL holds a password: put it in PGPASSWORD or OKEGUARD_DATABASE_URL instead"
            )
        return self


SecretAlphabet = Literal["alphanumeric", "alphanumeric-symbols", "hex", "base64url"]


class RemediationConfig(_Strict):
    """How fixes are applied: approvals, rollout and work-request patience, generated secrets."""

    cli_requires_approval: bool = Field(
        False,
        description="`okeguard fix --apply` needs a request approved by someone else "
        "(`okeguard remediations approve`), as in Slack; off: the OS user applying is the approver.",
    )
    allow_self_approval: tuple[str, ...] = Field(
        (),
        description="Remediation ids whose requester may also approve (default: none may).",
    )
    approval_ttl_hours: int = Field(
        24, ge=1, description="A request not approved within this many hours expires."
    )
    rollout_timeout_seconds: int = Field(
        300,
        ge=1,
        description="How long a rollout may take to become healthy before it is rolled back.",
    )
    poll_interval_seconds: float = Field(
        2.0, gt=0, description="Pause between reads of a rollout or an OCI work request."
    )
    lease_seconds: float = Field(
        30.0,
        ge=0.5,
        le=600,
        description="A run (apply, rollback, reconcile) owns its request for this long and renews "
        "it every third of it; another process takes the request over only after it runs out.",
    )
    work_request_timeout_seconds: int = Field(
        3600,
        ge=1,
        description="How long an OCI work request (endpoint update, node cycling) may take.",
    )
    retry_attempts: int = Field(
        4,
        ge=1,
        le=10,
        description="Tries of one Kubernetes or OCI call that fails transiently (a 429; a 5xx, "
        "timeout or reset of a read) before the step fails; 1 turns retries off.",
    )
    retry_max_seconds: float = Field(
        30.0,
        gt=0,
        le=300,
        description="How long the tries of one call may take in all, waits included; a "
        "Retry-After that would run past it is not waited for.",
    )
    retry_base_seconds: float = Field(
        0.5,
        gt=0,
        le=30,
        description="First pause between tries when the server names no Retry-After; it doubles "
        "(with jitter) up to 8 s.",
    )
    run_as_user: int = Field(
        10001,
        ge=1,
        description="`add-security-context`: the UID set when a container has no runAsUser.",
    )
    secret_length: int = Field(
        32,
        ge=12,
        le=4096,
        description="`rotate-secret`: length of generated content (the secret's freeform tag "
        "`okeguard-length` wins).",
    )
    secret_alphabet: SecretAlphabet = Field(
        "alphanumeric",
        description="`rotate-secret`: alphabet of generated content (tag `okeguard-alphabet` wins).",
    )
    # `checks.denied_capabilities` of the configuration holding these settings: planners get only
    # the remediation settings, and `add-security-context` must remove what the check flags. Not
    # a key of the file: `Config` sets it (see `Config._share_denied_capabilities`).
    _denied_capabilities: tuple[str, ...] = PrivateAttr(())

    @property
    def denied_capabilities(self) -> tuple[str, ...]:
        """`checks.denied_capabilities` of the configuration these settings belong to."""
        return self._denied_capabilities

    def with_denied_capabilities(self, capabilities: tuple[str, ...]) -> RemediationConfig:
        """A copy of these settings that carries ``capabilities`` (``checks.denied_capabilities``)."""
        copied = self.model_copy()
        copied._denied_capabilities = tuple(capabilities)
        return copied


class Config(_Strict):
    """The whole ``okeguard.yaml``."""

    exposure: Exposure = Field(
        "private", description="Planned exposure of the cluster (practice P1); grades severities."
    )
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    oci: OciAuthConfig = Field(default_factory=OciAuthConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    cli: CliConfig = Field(default_factory=CliConfig)
    exceptions: ExceptionsConfig = Field(default_factory=ExceptionsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    clusters: tuple[ClusterConfig, ...] = Field(
        (), description="The clusters `okeguard scan --config` scans."
    )

    @model_validator(mode="after")
    def _unique_cluster_names(self) -> Config:
        names = [c.name for c in self.clusters]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"cluster name '{name}' is used twice")
        return self

    @model_validator(mode="after")
    def _share_denied_capabilities(self) -> Config:
        # The remediation settings are a copy, so a RemediationConfig given to several Configs
        # never carries another configuration's list.
        shared = self.remediation.with_denied_capabilities(self.checks.denied_capabilities)
        object.__setattr__(self, "remediation", shared)
        return self

    @model_validator(mode="after")
    def _access(self) -> Config:
        # Remediation ids are those the checks name; only a file that scopes approvers by
        # remediation needs them (listing them loads the check catalogue).
        remediations: list[str] = []
        if self.slack.approvers_by_remediation:
            from okeguard.checks.registry import remediation_ids

            remediations = remediation_ids()
        check_access(self.slack, self.cli, [c.name for c in self.clusters], remediations)
        return self

    def for_cluster(self, cluster: ClusterConfig) -> Config:
        """The effective configuration of one cluster: its own exposure and checks, else ours."""
        checks = cluster.checks or self.checks
        return self.model_copy(
            update={
                "exposure": cluster.exposure or self.exposure,
                "checks": checks,
                "remediation": self.remediation.with_denied_capabilities(
                    checks.denied_capabilities
                ),
            }
        )

    def cluster(self, name: str) -> ClusterConfig:
        """The configured cluster called ``name``; ConfigError with a suggestion otherwise."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        names = [c.name for c in self.clusters]
        close = difflib.get_close_matches(name, names, n=1)
        hint = (
            f" (did you mean '{close[0]}'?)"
            if close
            else f" (configured: {', '.join(names) or 'none'})"
        )
        raise ConfigError(f"no cluster named '{name}' in the configuration{hint}")


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``ClusterConfig``, ``tuple[ClusterConfig, ...]``,
    ``ChecksConfig | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _explain(error: ValidationError, path: str) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden":
        parent: type[BaseModel] | None = Config
        for part in loc[:-1]:
            if isinstance(part, int) or parent is None:
                continue
            field = parent.model_fields.get(str(part))
            parent = _model_in(field.annotation) if field else None
        fields = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown key '{_location(loc)}'{hint}"
    message = str(first["msg"]).removeprefix("Value error, ")
    if not loc:  # a check across sections names its keys itself
        return f"{path}: {message}"
    return f"{path}: {_location(loc)}: {message}"


def load_config(path: str | Path | None) -> Config:
    """Read and validate a configuration file; ``None`` gives the defaults.

    Raises :class:`ConfigError` naming the file (and line, for YAML syntax errors) or the key.
    """
    if path is None:
        return Config()
    from okeguard.inventory.files import open_regular_file

    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        # regular files only: a FIFO would block and /dev/zero would be read for ever
        with open_regular_file(file, what="configuration file") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{file}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not a configuration"
            )
        text = raw.decode("utf-8")
    except OkeguardError as exc:
        raise ConfigError(str(exc)) from None
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
