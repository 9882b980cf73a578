"""Secret and credential checks (practices P8, P18, P19): legacy tokens, stale secrets, expiring
certificates, and key material in ConfigMaps. No check ever sees or reports a secret value."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from datetime import datetime, timedelta

from okeguard.checks._common import object_hit
from okeguard.checks.model import ResourceRef, Severity, Status
from okeguard.checks.registry import CheckContext, Hit, check
from okeguard.inventory.model import K8sObject
from okeguard.inventory.sensitive import key_format_of, marker_label
from okeguard.timestamps import parse_timestamp

ROTATED_AT_ANNOTATION = "okeguard.io/rotated-at"


@check(
    id="k8s.legacy-service-account-token",
    title="Long-lived service-account token Secret",
    practice="P19",
    severity=Severity.MEDIUM,
    remediation="rotate-secret",
    reads=("Secret",),
)
def legacy_service_account_token(ctx: CheckContext) -> Iterator[Hit]:
    """A Secret of type `kubernetes.io/service-account-token` holds a token that never expires;
    workloads should use projected, short-lived tokens."""
    for secret in ctx.inventory.of_kind("Secret"):
        if secret.raw.get("type") == "kubernetes.io/service-account-token":
            account = secret.annotations.get("kubernetes.io/service-account.name", "?")
            yield object_hit(
                secret,
                f"Secret type is kubernetes.io/service-account-token: a long-lived token for ServiceAccount {account!r}.",
            )


def secret_age_start(secret: K8sObject) -> datetime | None:
    """The newest of the Secret's ``metadata.creationTimestamp`` and its
    ``okeguard.io/rotated-at`` annotation (strings, or the datetimes YAML makes of unquoted
    ones); None when neither names a time."""
    times = [
        t
        for t in (
            parse_timestamp(secret.metadata.get("creationTimestamp")),
            parse_timestamp(secret.annotations.get(ROTATED_AT_ANNOTATION)),
        )
        if t is not None
    ]
    return max(times) if times else None


@check(
    id="k8s.stale-secret",
    title="Secret not rotated",
    practice="P8",
    severity=Severity.MEDIUM,
    remediation="rotate-secret",
    reads=("Secret",),
)
def stale_secret(ctx: CheckContext) -> Iterator[Hit]:
    """An `Opaque` Secret is older than `secret_max_age_days` (default 90); its age counts from the
    newest of its creation and its `okeguard.io/rotated-at` annotation."""
    max_age = timedelta(days=ctx.config.checks.secret_max_age_days)
    for secret in ctx.inventory.of_kind("Secret"):
        if (secret.raw.get("type") or "Opaque") != "Opaque":
            continue
        start = secret_age_start(secret)
        if start is None or ctx.now - start <= max_age:
            continue
        days = (ctx.now - start).days
        yield object_hit(
            secret,
            f"Opaque Secret last created or rotated {days} days ago ({start:%Y-%m-%d}), over the {max_age.days}-day maximum.",
        )


def _certificate_pem(secret: K8sObject) -> bytes | None:
    string_data = secret.raw.get("stringData") or {}
    if isinstance(string_data.get("tls.crt"), str):
        return str(string_data["tls.crt"]).encode()
    value = (secret.raw.get("data") or {}).get("tls.crt")
    if not isinstance(value, str) or marker_label(value) is not None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def certificate_not_after(pem: bytes) -> datetime | None:
    """Expiry of the first (leaf) certificate in a PEM bundle, or None if it cannot be parsed."""
    from cryptography import x509  # lazy: only TLS secrets need it

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return None
    return certificates[0].not_valid_after_utc if certificates else None


@check(
    id="k8s.certificate-expiring",
    title="TLS certificate expiring or expired",
    practice="P8",
    severity=Severity.HIGH,
    reads=("Secret",),
    severity_note="high when it expires within `certificate_expiry_days` (default 30), critical once expired",
)
def certificate_expiring(ctx: CheckContext) -> Iterator[Hit]:
    """The certificate in a `kubernetes.io/tls` Secret (`tls.crt`) expires within the window or has
    expired. A certificate that cannot be parsed reports `unknown`."""
    window = timedelta(days=ctx.config.checks.certificate_expiry_days)
    for secret in ctx.inventory.of_kind("Secret"):
        if secret.raw.get("type") != "kubernetes.io/tls":
            continue
        pem = _certificate_pem(secret)
        not_after = certificate_not_after(pem) if pem else None
        if not_after is None:
            yield Hit(
                ResourceRef(secret.kind, secret.namespace, secret.name),
                "tls.crt is missing or is not a PEM certificate, so its expiry could not be checked.",
                subject=secret,
                status=Status.UNKNOWN,
            )
            continue
        if not_after <= ctx.now:
            days = (ctx.now - not_after).days
            yield object_hit(
                secret,
                f"The certificate in tls.crt expired on {not_after:%Y-%m-%d} ({days} days ago).",
                severity=Severity.CRITICAL,
            )
        elif not_after - ctx.now <= window:
            days = (not_after - ctx.now).days
            yield object_hit(
                secret,
                f"The certificate in tls.crt expires on {not_after:%Y-%m-%d}, in {days} days.",
            )


@check(
    id="k8s.credentials-in-configmap",
    title="Key material in a ConfigMap",
    practice="P18",
    severity=Severity.HIGH,
    reads=("ConfigMap",),
)
def credentials_in_configmap(ctx: CheckContext) -> Iterator[Hit]:
    """A ConfigMap value holds a PEM private key or another known key format; ConfigMaps are not
    protected like Secrets. The value is never shown."""
    for config_map in ctx.inventory.of_kind("ConfigMap"):
        found = []
        for key, value in (config_map.raw.get("data") or {}).items():
            key_format = key_format_of(value)
            if key_format:
                found.append(f"data.{key} holds a {key_format}")
        if found:
            yield object_hit(config_map, f"ConfigMap {'; '.join(found)}.")
