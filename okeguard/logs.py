"""Logging of ``okeguard``: one JSON object per line, request ids, and redaction of secrets.

``configure_logging(level, json=True)`` sends every record to stderr as one JSON object
(``time``, ``level``, ``logger``, ``message``, ``request_id`` when set, ``extra`` fields,
``exc_type`` and a one-line ``exc_message``). Every record, JSON or text, first passes
:class:`RedactingFilter`: Slack tokens, bearer tokens, ``Authorization`` values, PEM private
keys, passwords in database URLs and the values of the ``SLACK_*`` and ``OKEGUARD_DATABASE_URL``
environment variables are replaced by ``[REDACTED]``. OCIDs are identifiers, not secrets: kept.

A request id lives in a :class:`contextvars.ContextVar`; :func:`request_context` sets it for
one Slack interaction or one scan. Context variables do not follow work to other threads by
themselves: whoever hands work to a thread sets the id again there.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[REDACTED]"
SECRET_ENV_PREFIXES = ("SLACK_",)
SECRET_ENV_NAMES = frozenset(
    {"OKEGUARD_DATABASE_URL", "PGPASSWORD", "OKEGUARD_AUDIT_KEY", "OKEGUARD_AUDIT_KEY_PREVIOUS"}
)
MIN_SECRET_LENGTH = 8  # shorter env values ("1", "true") would shred every log line

_request_id: ContextVar[str | None] = ContextVar("okeguard_request_id", default=None)

# (pattern, replacement): each replacement keeps what tells a reader what was there.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
    ),
    (
        re.compile(r"""(?i)(\bauthorization["']?\s*[:=]\s*)(?:"[^"]*"|'[^']*'|[^\r\n]*)"""),
        rf"\g<1>{REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\g<1> {REDACTED}"),
    (re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]+"), rf"\g<1>-{REDACTED}"),
    (
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+@"),
        rf"\g<1>{REDACTED}@",
    ),
)

_extra_secrets: set[str] = set()
_extra_lock = threading.Lock()

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "taskName",
}


def new_request_id() -> str:
    """A short random request id (12 hex digits)."""
    return secrets.token_hex(6)


def current_request_id() -> str | None:
    """The request id of the running context, or None."""
    return _request_id.get()


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Set the request id (a new one when None) for the block; yields it."""
    rid = request_id or new_request_id()
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


def register_secrets(values: Iterable[str]) -> None:
    """Also redact these exact values (e.g. tokens read from a mapping, not the environment)."""
    with _extra_lock:
        _extra_secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def secrets_from_env(env: Mapping[str, str]) -> list[str]:
    """The values of ``env`` that are secrets by name (``SLACK_*``, ``OKEGUARD_DATABASE_URL``)."""
    return [
        value
        for name, value in env.items()
        if (name.startswith(SECRET_ENV_PREFIXES) or name in SECRET_ENV_NAMES)
        and len(value) >= MIN_SECRET_LENGTH
    ]


def _known_secrets() -> list[str]:
    with _extra_lock:
        values = set(_extra_secrets)
    values.update(secrets_from_env(os.environ))
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """``text`` with every secret-looking part replaced."""
    for value in _known_secrets():
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Redact the message (formatted with its args) and the ``extra`` fields of every record,
    and stamp it with the request id of the thread that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_okeguard_redacted", False):
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: keep what can be kept
                message = f"{record.msg!s} {record.args!r}"
            record.msg, record.args = redact(message), None
            for key in list(record.__dict__):
                if key not in _STANDARD and not key.startswith("_"):
                    record.__dict__[key] = _redact_value(record.__dict__[key])
            record._okeguard_redacted = True
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; tracebacks only at DEBUG level (the configured level)."""

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _redact_value(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            out["exc_type"] = exc_type.__name__
            out["exc_message"] = redact(_one_line(str(exc)))
            if self.tracebacks:
                out["traceback"] = redact(self.formatException(record.exc_info))
        if record.stack_info and self.tracebacks:
            out["stack"] = redact(record.stack_info)
        return jsonlib.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message`` (with ``[request id]`` when set), as the CLI always printed."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            text = f"[{request_id}] {text}"
        return redact(text)


# Loggers that dump whole request or response bodies at DEBUG (Kubernetes objects with their
# Secret data, before okeguard redacts them): never below INFO.
_BODY_LOGGERS = ("kubernetes.client.rest",)


def configure_logging(
    level: int | str = logging.INFO, json: bool = False, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record of the process to ``stream`` (stderr), as JSON lines or text, through
    the redacting filter; replaces the root logger's handlers. Returns the handler."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter(tracebacks=numeric <= logging.DEBUG) if json else TextFormatter()
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
    return handler
