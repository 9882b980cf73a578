"""The pure parts of the audit layer: canonical JSON, hashes, URLs, the state machine."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from okeguard.audit.db import default_database_path, describe, display_url, resolve_url
from okeguard.audit.models import RequestState
from okeguard.audit.records import GENESIS_HASH, canonical_json, event_hash
from okeguard.audit.stores import ALLOWED_TRANSITIONS, plan_hash
from okeguard.audit.types import UTCDateTime
from okeguard.bot.cli_db import parse_since
from okeguard.config import Config
from okeguard.errors import UsageError


def test_canonical_json_is_sorted_compact_and_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_event_hash_is_sha256_over_prev_hash_and_canonical_json() -> None:
    record = {"id": 1, "payload": {"k": "v"}}
    expected = hashlib.sha256((GENESIS_HASH + '{"id":1,"payload":{"k":"v"}}').encode()).hexdigest()
    assert event_hash(GENESIS_HASH, record) == expected
    assert plan_hash({"b": 1, "a": 2}) == plan_hash({"a": 2, "b": 1})


def test_urls_never_show_the_password() -> None:
    url = "postgresql+psycopg://okeguard:hunter2@db.example.com:5433/audit"
    assert "hunter2" not in display_url(url)
    assert describe(url) == "db.example.com:5433/audit"
    assert describe("sqlite:////var/lib/okeguard.db") == "/var/lib/okeguard.db"


def test_url_precedence_and_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OKEGUARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_database_path() == tmp_path / "okeguard" / "okeguard.db"
    assert resolve_url() == f"sqlite:///{tmp_path}/okeguard/okeguard.db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setenv("OKEGUARD_DATABASE_URL", "sqlite:///env.db")
    assert resolve_url("sqlite:///x.db") == "sqlite:///env.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_database_path() == tmp_path / ".local" / "state" / "okeguard" / "okeguard.db"


def test_config_refuses_a_password_in_the_database_url() -> None:
    assert Config.model_validate({"database": {"url": "postgresql://u@h/db"}}).database.url
    with pytest.raises(ValueError, match="PGPASSWORD"):
        Config.model_validate({"database": {"url": "postgresql://u:secret@h/db"}})


def test_naive_timestamps_are_refused() -> None:
    from sqlalchemy.dialects import sqlite

    column = UTCDateTime()
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 1, 1), sqlite.dialect())


def test_the_state_machine_ends_in_terminal_states() -> None:
    S = RequestState
    assert set(ALLOWED_TRANSITIONS) == set(S)
    for terminal in (S.ROLLED_BACK, S.REJECTED, S.EXPIRED, S.SUPERSEDED):
        assert ALLOWED_TRANSITIONS[terminal] == frozenset()
    assert S.APPROVED in ALLOWED_TRANSITIONS[S.PENDING_APPROVAL]
    assert S.APPROVED not in ALLOWED_TRANSITIONS[S.PROPOSED]


def test_parse_since() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-01T00:00:00+00:00") == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="--since"):
        parse_since("soon")


def test_record_summary_names_status_changes_and_reopened() -> None:
    from okeguard.audit.recording import RecordResult

    assert (
        RecordResult(1, new=3, unchanged=40, resolved=2).summary()
        == "recorded: 3 new, 40 seen, 2 resolved"
    )
    assert (
        RecordResult(1, updated=1, unchanged=62, reopened=2).summary()
        == "recorded: 0 new, 65 seen, 0 resolved, 1 changed status, 2 reopened"
    )
