"""Recognising credentials, and replacing their values before anything else sees them.

Every object okeguard reads passes through :mod:`okeguard.inventory.redact`, which uses the
functions here to swap sensitive values for a *marker* such as
``okeguard:redacted:pem-private-key:1704``. The marker keeps what the checks need (what kind of
value it was and how long) and nothing that could leak the value itself, so snapshots, findings,
logs and the database never hold a secret.
"""

from __future__ import annotations

import re

MARKER_PREFIX = "okeguard:redacted:"

# Known formats of key material; the label names the format in findings and markers.
_KEY_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "pem-private-key",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ),
    ("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    (
        "oci-api-key-id",
        re.compile(
            r"ocid1\.tenancy\.[a-z0-9.-]*\.\.[a-z0-9]+/ocid1\.user\.[a-z0-9.-]*\.\.[a-z0-9]+/"
            r"(?:[0-9a-f]{2}:){15}[0-9a-f]{2}"
        ),
    ),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
)

KEY_FORMAT_LABELS = frozenset(label for label, _ in _KEY_FORMATS)

# Words that make an environment variable name look like it holds a credential.
_CREDENTIAL_WORDS = re.compile(
    r"(PASSWORD|PASSWD|PASSPHRASE|(?:^|_)PWD(?:_|$)|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|"
    r"ACCESS_?KEY|CREDENTIALS?|AUTH_?KEY|SIGNING_?KEY|ENCRYPTION_?KEY|MASTER_?KEY)"
)
# Suffixes that say the variable holds a reference to a credential, not the credential itself.
_REFERENCE_SUFFIX = re.compile(
    r"_(FILE|PATH|DIR|URL|URI|ENDPOINT|NAME|REF|KIND|TYPE|TTL|TIMEOUT|EXPIRY|EXPIRES|LENGTH|"
    r"LEN|HEADER|ENABLED|REQUIRED|ROTATION|VERSION|MOUNT|KEY_ID_FILE)$"
)


# One pass over a value finds any of the formats; the group that matched names it.
_ANY_KEY_FORMAT = re.compile(
    "|".join(f"(?P<f{i}>{pattern.pattern})" for i, (_, pattern) in enumerate(_KEY_FORMATS))
)
_LABEL_OF_GROUP = {f"f{i}": label for i, (label, _) in enumerate(_KEY_FORMATS)}


def classify_key_material(value: str) -> str | None:
    """Return the label of the known key format found in ``value`` (e.g. ``pem-private-key``), or None."""
    if len(value) < 16:
        return None
    found = _ANY_KEY_FORMAT.search(value)
    return _LABEL_OF_GROUP[str(found.lastgroup)] if found else None


def looks_like_credential_name(name: str) -> bool:
    """True when an env var name such as ``DB_PASSWORD`` or ``STRIPE_API_KEY`` suggests a credential."""
    upper = name.upper().replace("-", "_").replace(".", "_")
    return bool(_CREDENTIAL_WORDS.search(upper)) and not _REFERENCE_SUFFIX.search(upper)


def marker(label: str, value: str | bytes) -> str:
    """The redaction marker that replaces ``value``: its label and length, nothing of its content."""
    return f"{MARKER_PREFIX}{label}:{len(value)}"


def marker_label(value: object) -> str | None:
    """The label of a redaction marker (``secret``, ``credential``, ``pem-private-key``…), or None."""
    if isinstance(value, str) and value.startswith(MARKER_PREFIX):
        return value[len(MARKER_PREFIX) :].rsplit(":", 1)[0]
    return None


def key_format_of(value: object) -> str | None:
    """The key format of a value that may already be redacted: the marker's label, or a fresh match."""
    label = marker_label(value)
    if label is not None:
        return label if label in KEY_FORMAT_LABELS else None
    return classify_key_material(value) if isinstance(value, str) else None
