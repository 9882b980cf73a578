"""The audit key: a secret kept outside the database that MACs every row of the audit chain.

With a key, each row stores ``mac = HMAC-SHA256(key, hash)``: someone who can write to the
database but does not hold the key can no longer forge a row or rebuild the chain unseen.

The key comes from the environment only, read once per process by :func:`audit_keys`:

- ``OKEGUARD_AUDIT_KEY`` (the key text) or ``OKEGUARD_AUDIT_KEY_FILE`` (a file holding it, e.g. a
  Kubernetes Secret mounted as a volume), one line of at least 32 characters;
- ``OKEGUARD_AUDIT_KEY_PREVIOUS`` or ``OKEGUARD_AUDIT_KEY_PREVIOUS_FILE``: the key before a
  rotation, accepted when verifying rows, never used to write.

The key never leaves this module in clear: not in logs (its text is registered with the log
redaction), not in exceptions or messages, not in ``repr``; people and events see its *key id*,
an HMAC of a fixed label, which identifies the key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path

from okeguard.errors import OkeguardError
from okeguard.logs import register_secrets

ENV_KEY = "OKEGUARD_AUDIT_KEY"
ENV_KEY_FILE = "OKEGUARD_AUDIT_KEY_FILE"
ENV_PREVIOUS = "OKEGUARD_AUDIT_KEY_PREVIOUS"
ENV_PREVIOUS_FILE = "OKEGUARD_AUDIT_KEY_PREVIOUS_FILE"
MIN_KEY_CHARS = 32
MAX_KEY_CHARS = 1024
MAX_KEY_FILE_BYTES = 4096
HOW_TO_MAKE = "e.g. the output of `openssl rand -hex 32`"
_KEY_ID_LABEL = b"okeguard audit key id v1"


class AuditKeyError(OkeguardError):
    """The audit key is malformed, unreadable or missing where one is needed (never shows it)."""


class AuditKey:
    """One audit key. Shows only its key id: ``repr``, ``str`` and messages never hold the key."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, text: str) -> None:
        self._secret = text.encode("utf-8")
        self.key_id = hmac.new(self._secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self, digest: str) -> str:
        """HMAC-SHA256 (hex) of an audit row's hash under this key."""
        return hmac.new(self._secret, digest.encode("ascii"), hashlib.sha256).hexdigest()

    def matches(self, digest: str, mac: str) -> bool:
        """Whether ``mac`` is this key's MAC of ``digest`` (constant-time comparison)."""
        return hmac.compare_digest(self.mac(digest), mac.strip().lower())

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an audit key is not serialisable")


class MacCheck(Enum):
    """What a row's MAC says under a key ring."""

    CURRENT = "current"  # made with the current key
    PREVIOUS = "previous"  # made with the key before the last rotation
    MISSING = "missing"
    WRONG = "wrong"  # forged, copied from another row, or made with a key not configured


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys of this process: ``current`` writes and verifies, ``previous`` only verifies."""

    current: AuditKey | None = None
    previous: AuditKey | None = None

    @property
    def keyed(self) -> bool:
        return self.current is not None

    def sign(self, digest: str) -> str | None:
        """The MAC to store with a row of hash ``digest``; None without a key."""
        return self.current.mac(digest) if self.current is not None else None

    def check(self, digest: str, mac: str | None) -> MacCheck:
        """Which key, if any, made ``mac`` for ``digest`` (call only when :attr:`keyed`)."""
        if not mac:
            return MacCheck.MISSING
        if self.current is not None and self.current.matches(digest, mac):
            return MacCheck.CURRENT
        if self.previous is not None and self.previous.matches(digest, mac):
            return MacCheck.PREVIOUS
        return MacCheck.WRONG


NO_KEYS = KeyRing()


def _key_text(text: str, where: str) -> str:
    key = text.strip()
    if not key:
        raise AuditKeyError(f"{where}: the audit key is empty ({HOW_TO_MAKE})")
    if "\n" in key or "\r" in key:
        raise AuditKeyError(f"{where}: the audit key must be a single line ({HOW_TO_MAKE})")
    if not MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS:
        raise AuditKeyError(
            f"{where}: the audit key must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters "
            f"long, it has {len(key)} ({HOW_TO_MAKE})"
        )
    return key


def _read_key_file(path_text: str, variable: str) -> str:
    where = f"{variable}={path_text}"
    path = Path(path_text).expanduser()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise AuditKeyError(f"{where}: cannot read the audit key file ({exc.strerror})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise AuditKeyError(f"{where}: not an audit key file (more than 4 KiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditKeyError(f"{where}: the audit key file is not UTF-8 text") from None
    return _key_text(text, where)


def _one_key(env: Mapping[str, str], variable: str, file_variable: str) -> AuditKey | None:
    text, path = env.get(variable), env.get(file_variable)
    if text is not None and path is not None:
        raise AuditKeyError(f"set {variable} or {file_variable}, not both")
    if path is not None:
        key = _read_key_file(path, file_variable)
    elif text is not None:
        key = _key_text(text, variable)
    else:
        return None
    register_secrets([key])  # never logged, whatever logs it by mistake
    return AuditKey(key)


def load_keys(env: Mapping[str, str]) -> KeyRing:
    """The key ring ``env`` configures (:data:`NO_KEYS` when none); raises AuditKeyError."""
    current = _one_key(env, ENV_KEY, ENV_KEY_FILE)
    previous = _one_key(env, ENV_PREVIOUS, ENV_PREVIOUS_FILE)
    if previous is not None and current is None:
        raise AuditKeyError(
            f"{ENV_PREVIOUS} is set but {ENV_KEY} is not: the previous key only verifies, "
            "set the new key too"
        )
    if previous is not None and current is not None and previous.key_id == current.key_id:
        raise AuditKeyError(f"{ENV_PREVIOUS} is the same key as {ENV_KEY}")
    return KeyRing(current, previous)


@cache
def audit_keys() -> KeyRing:
    """This process's key ring, read from the environment on the first call only."""
    return load_keys(os.environ)


def require_key(keys: KeyRing) -> AuditKey:
    """The current key, or an AuditKeyError saying how to set one."""
    if keys.current is None:
        raise AuditKeyError(f"no audit key: set {ENV_KEY} or {ENV_KEY_FILE}")
    return keys.current
