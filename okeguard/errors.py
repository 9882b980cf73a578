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
