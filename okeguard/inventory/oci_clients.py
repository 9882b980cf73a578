"""OCI SDK clients for the collector: the four auth modes, retries, timeouts, endpoints, and the
IAM statement that a ``403``/``404 NotAuthorizedOrNotFound`` asks for.

The ``oci`` SDK is imported here lazily (it is heavy). Credentials never leave the SDK: nothing
here logs a config, a key or a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from okeguard.config import OciAuthConfig
from okeguard.errors import OkeguardError

# client kind (the key of ``service_endpoints``) -> (module, class)
CLIENT_CLASSES: Mapping[str, tuple[str, str]] = {
    "container_engine": ("oci.container_engine", "ContainerEngineClient"),
    "virtual_network": ("oci.core", "VirtualNetworkClient"),
    "compute": ("oci.core", "ComputeClient"),
    "logging": ("oci.logging", "LoggingManagementClient"),
    "audit": ("oci.audit", "AuditClient"),
    "vaults": ("oci.vault", "VaultsClient"),
    "secrets": ("oci.secrets", "SecretsClient"),  # secret bundles: remediations only
}

# area -> (verb and resource type, whether the grant is tenancy-wide)
AREA_PERMISSIONS: Mapping[str, tuple[str, bool]] = {
    "cluster": ("read cluster-family", False),
    "node_pools": ("read cluster-family", False),
    "node_image": ("read instance-images", False),
    "subnet": ("read virtual-network-family", False),
    "security_list": ("read virtual-network-family", False),
    "nsg": ("read virtual-network-family", False),
    "flow_logs": ("read log-groups", False),
    "control_plane_log": ("read log-groups", False),
    "audit": ("read audit-events", True),
    "vault_secrets": ("inspect secret-family", False),
}


class OciAuthError(OkeguardError):
    """The OCI credentials of the configured auth mode could not be loaded."""


@dataclass(frozen=True)
class Clients:
    """One SDK client per kind, and the tenancy OCID when the auth mode tells it."""

    by_kind: Mapping[str, Any]
    tenancy_id: str | None

    def __getitem__(self, kind: str) -> Any:
        return self.by_kind[kind]


def _retry_strategy(attempts: int, base_sleep: float) -> Any:
    import oci

    # Bounded: `attempts` tries, at most 60 s in all; retries 429, 5xx, timeouts and resets.
    return oci.retry.RetryStrategyBuilder(
        max_attempts_check=True,
        max_attempts=attempts,
        total_elapsed_time_check=True,
        total_elapsed_time_seconds=60,
        service_error_check=True,
        service_error_retry_on_any_5xx=True,
        retry_base_sleep_time_seconds=base_sleep,
        retry_exponential_growth_factor=2,
        retry_max_wait_between_calls_seconds=max(base_sleep * 8, 1),
        backoff_type=oci.retry.BACKOFF_FULL_JITTER_EQUAL_ON_THROTTLE_VALUE,
    ).get_retry_strategy()


def _config_and_signer(auth: OciAuthConfig, region: str) -> tuple[dict[str, Any], Any, str | None]:
    """(config, signer or None, tenancy OCID or None) for the auth mode."""
    import oci

    try:
        if auth.mode == "config_file":
            path = auth.config_file or oci.config.DEFAULT_LOCATION
            config = oci.config.from_file(file_location=path, profile_name=auth.profile)
            config["region"] = region
            return config, None, config.get("tenancy")
        signer: Any
        if auth.mode == "instance_principal":
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        elif auth.mode == "resource_principal":
            signer = oci.auth.signers.get_resource_principals_signer()
        else:
            signer = oci.auth.signers.get_oke_workload_identity_resource_principal_signer()
    except Exception as exc:  # the SDK raises many types; none may carry secrets onward
        raise OciAuthError(
            f"cannot load OCI credentials for auth mode {auth.mode}: {type(exc).__name__}"
            + (f" ({exc})" if auth.mode == "config_file" else "")
        ) from None
    tenancy = getattr(signer, "tenancy_id", None)
    if tenancy is None and hasattr(signer, "get_claim"):
        try:
            tenancy = signer.get_claim("res_tenant")
        except Exception:
            tenancy = None
    return {"region": region}, signer, tenancy


def make_clients(
    auth: OciAuthConfig,
    region: str,
    *,
    service_endpoints: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    retry_attempts: int = 3,
    retry_base_sleep: float = 0.5,
    retry_strategy: Any = None,
) -> Clients:
    """SDK clients for every kind in :data:`CLIENT_CLASSES`, with bounded retries and timeouts.

    ``retry_strategy`` (an ``oci.retry`` strategy) replaces the collector's, which retries any
    429, 5xx, timeout or reset and so suits reads only: writers pass their own.
    """
    import importlib

    import oci

    config, signer, tenancy = _config_and_signer(auth, region)
    strategy = retry_strategy or _retry_strategy(retry_attempts, retry_base_sleep)
    clients: dict[str, Any] = {}
    for kind, (module, name) in CLIENT_CLASSES.items():
        cls = getattr(importlib.import_module(module), name)
        kwargs: dict[str, Any] = {
            "retry_strategy": strategy,
            "timeout": (min(timeout, 10.0), timeout),
            "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        }
        if signer is not None:
            kwargs["signer"] = signer
        if service_endpoints and kind in service_endpoints:
            kwargs["service_endpoint"] = service_endpoints[kind]
        client = cls(config, **kwargs)
        clients[kind] = client
    return Clients(clients, tenancy)


def policy_statement(
    area: str, auth_mode: str, compartment_id: str | None, cluster_id: str | None
) -> str | None:
    """The IAM policy statement granting what ``area`` needs, for the principal of ``auth_mode``."""
    permission = AREA_PERMISSIONS.get(area)
    if permission is None:
        return None
    what, tenancy_wide = permission
    scope = (
        "tenancy"
        if tenancy_wide
        else f"compartment id {compartment_id}"
        if compartment_id
        else "compartment <compartment>"
    )
    if auth_mode == "workload_identity":
        return (
            f"Allow any-user to {what} in {scope} where all "
            "{request.principal.type = 'workload', "
            "request.principal.namespace = '<namespace>', "
            "request.principal.service_account = '<service account>', "
            f"request.principal.cluster_id = '{cluster_id or '<cluster ocid>'}'}}"
        )
    subject = "group <group>" if auth_mode == "config_file" else "dynamic-group <dynamic-group>"
    return f"Allow {subject} to {what} in {scope}"
