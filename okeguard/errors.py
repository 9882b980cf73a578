"""One exception hierarchy. Every error a user can cause carries a one-line message and an exit code."""

from __future__ import annotations


class OkeguardError(Exception):
    """Base class: ``str(err)`` is a complete, one-line message for the user."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(OkeguardError):
    """Bad arguments: an unknown check id, severity, option combination."""


class InputError(OkeguardError):
    """Unreadable or invalid input: a missing path, bad YAML, a non-Kubernetes document."""


class ConfigError(OkeguardError):
    """The configuration file is missing, unreadable or invalid (names the file and key)."""


class ClusterAccessError(OkeguardError):
    """A live cluster could not be reached or refused our credentials (names the context)."""


# Characters that would break a one-line message: C0 and C1 controls, and the separators that
# str.splitlines() and terminals treat as line ends.
_UNPRINTABLE = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def one_line(text: str) -> str:
    """``text`` with every control character and line separator escaped (``\\n`` -> ``\\x0a``),
    so a message quoting user input (a key, a file name) stays on one line."""
    return text.translate(_UNPRINTABLE)
