"""``okeguard audit head|verify|seal`` through the real console script, on SQLite and PostgreSQL:
anchors, the audit key from a file, sealing, cross-checks, and errors of one line."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from okeguard.audit.chain import append_event
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.keys import NO_KEYS, AuditKey, KeyRing
from okeguard.audit.models import Base
from okeguard.audit.stores import create_request, transition
from tests.e2e.conftest import Run, one_error_line
from tests.integration.database import database_url, postgres_url  # noqa: F401

Keyed = tuple[dict[str, str], str]  # the environment with the key file set, and the key


@pytest.fixture
def env(database_url: str) -> dict[str, str]:  # noqa: F811
    return {"OKEGUARD_DATABASE_URL": database_url}


@pytest.fixture
def keyed(env: dict[str, str], tmp_path: Path) -> Keyed:
    secret = secrets.token_hex(32)
    path = tmp_path / "secrets" / "audit-key"
    path.parent.mkdir()
    path.write_text(secret + "\n")
    return {**env, "OKEGUARD_AUDIT_KEY_FILE": str(path)}, secret


@pytest.fixture
def engine(env: dict[str, str], run: Run) -> Iterator[Engine]:
    assert run("db", "upgrade", env=env).returncode == 0
    engine = make_engine(env["OKEGUARD_DATABASE_URL"])
    yield engine
    engine.dispose()


def _append(engine: Engine, count: int, keys: KeyRing) -> None:
    with session_factory(engine).begin() as session:
        for n in range(count):
            append_event(session, "alice", "test.event", ("thing", n), {"n": n}, keys=keys)


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


def _dump(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for t in Base.metadata.sorted_tables for row in conn.execute(select(t))
        )


def test_head_anchors_catch_deleted_rows_that_the_key_alone_cannot(
    run: Run, env: dict[str, str], keyed: Keyed, engine: Engine, tmp_path: Path
) -> None:
    keyed_env, secret = keyed
    assert run("audit", "seal", env=keyed_env).returncode == 0  # row 1 (db.upgrade), event 2
    _append(engine, 3, KeyRing(AuditKey(secret)))
    head = run("audit", "head", env=env).stdout.strip()
    as_json = json.loads(run("audit", "head", "--format", "json", env=env).stdout)
    assert head == as_json["anchor"] == f"5:{as_json['hash']}" and as_json["id"] == 5
    anchors = tmp_path / "anchors.txt"
    anchors.write_text(f"# daily anchors\n{head}\n")
    ok = run("audit", "verify", "--anchors", str(anchors), env=keyed_env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[2] == f"OK: 1 anchor match (newest 5:{as_json['hash'][:8]}…)"
    assert ok.stderr == ""  # keyed and anchored: nothing left unsaid

    _sql(engine, "DELETE FROM audit_events WHERE id >= 4")
    key_only = run("audit", "verify", env=keyed_env)
    assert key_only.returncode == 0, key_only.stderr
    assert key_only.stdout.splitlines() == [
        "OK: audit chain intact (3 events)",
        f"OK: every row's MAC verifies under the audit key (key id {AuditKey(secret).key_id})",
    ]
    assert "okeguard: note: no anchor given: the audit key cannot show that the newest rows " in (
        key_only.stderr
    )
    caught = run("audit", "verify", "--anchors", str(anchors), env=keyed_env)
    assert caught.returncode == 1 and caught.stdout == ""
    assert caught.stderr.strip() == (
        f"okeguard: error: the chain ends at 3 but anchor 5:{as_json['hash'][:8]}… was "
        "recorded: rows deleted"
    )
    by_head = run("audit", "verify", "--head", head, env=env)
    assert by_head.returncode == 1 and "rows deleted" in by_head.stderr


def test_sealing_an_upgraded_chain_with_the_key_from_a_file(
    run: Run, env: dict[str, str], keyed: Keyed, engine: Engine
) -> None:
    keyed_env, secret = keyed
    unkeyed = run("audit", "verify", env=env)
    assert unkeyed.returncode == 0 and unkeyed.stdout.strip() == "OK: audit chain intact (1 event)"
    assert "verified unkeyed" in unkeyed.stderr
    before = run("audit", "verify", env=keyed_env)
    assert before.returncode == 1
    assert before.stderr.startswith(
        "okeguard: error: audit chain broken: audit event 1: MAC missing: row written without "
        "the audit key, or forged; if the rows without a MAC were written before"
    )
    refused = one_error_line(run("audit", "seal", env=env))
    assert "no audit key: set OKEGUARD_AUDIT_KEY or OKEGUARD_AUDIT_KEY_FILE" in refused
    dry = run("audit", "seal", "--dry-run", env=keyed_env)
    assert dry.stdout.startswith("Would seal 1 row without a MAC (ids 1-1")
    sealed = run("audit", "seal", env=keyed_env)
    assert sealed.returncode == 0, sealed.stderr
    assert sealed.stdout.startswith("Sealed 1 row without a MAC (ids 1-1, 1 range(s))")
    assert "audit event 2 (audit.sealed)" in sealed.stdout
    after = run("audit", "verify", env=keyed_env)
    assert after.returncode == 0 and "MAC verifies" in after.stdout
    events = json.loads(run("audit", "list", "--format", "json", env=env).stdout)
    assert [e["action"] for e in events] == ["db.upgrade", "audit.sealed"]
    assert events[1]["payload"]["sealed"] == 1 and events[1]["payload"]["first_id"] == 1
    # an unkeyed command now refuses to extend the keyed chain, in one line
    recorded = run("audit", "head", "--record", env=env)
    assert recorded.returncode == 2 and "has no audit key" in recorded.stderr
    assert run("audit", "head", "--record", env=keyed_env).returncode == 0
    assert run("audit", "verify", env=keyed_env).returncode == 0
    # the key is nowhere: not in any output, not in any table
    outputs = [unkeyed, before, dry, sealed, after, recorded]
    assert not any(secret in r.stdout + r.stderr for r in outputs)
    assert secret not in _dump(engine)


def test_verify_cross_checks_the_tables_against_the_chain(
    run: Run, env: dict[str, str], engine: Engine
) -> None:
    with session_factory(engine).begin() as session:
        request = create_request(session, plan={"operations": []}, requester="alice")
        transition(session, request.id, "proposed", "pending-approval", "alice")
    assert run("audit", "verify", env=env).returncode == 0
    _sql(engine, "UPDATE remediation_requests SET state = 'approved', approver = 'mallory'")
    result = run("audit", "verify", env=env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "okeguard: error: remediation request 1: state is approved but its newest state change "
        "(event 3) is to pending-approval"
    )
    assert lines[1] == (
        "okeguard: error: remediation request 1: state is approved but the chain has no "
        "approval event"
    )
    assert lines[2] == "okeguard: error: audit verify found 2 problems (listed above)"


def test_bad_anchors_and_keys_are_one_line_errors(
    run: Run, env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    _append(engine, 1, NO_KEYS)
    line = one_error_line(run("audit", "verify", "--head", "7:abc", env=env))
    assert line == (
        "okeguard: error: --head: '7:abc' is not an anchor (expected ID:HASH with the full "
        "64-hex-digit hash, as printed by 'okeguard audit head')"
    )
    bad = tmp_path / "anchors.txt"
    bad.write_text("2:" + "a" * 64 + "\nnot an anchor\n")
    assert "anchors.txt line 2: 'not an anchor' is not an anchor" in one_error_line(
        run("audit", "verify", "--anchors", str(bad), env=env)
    )
    key = tmp_path / "key"
    key.write_text("hunter2-is-my-key\n")
    line = one_error_line(run("audit", "verify", env={**env, "OKEGUARD_AUDIT_KEY_FILE": str(key)}))
    assert "must be 32 to 1024 characters long, it has 17" in line and "hunter2" not in line
    wrong = run("audit", "verify", "--head", "2:" + "a" * 64, env=env)
    assert wrong.returncode == 1
    assert "anchor 2:aaaaaaaa…: row 2 now has hash" in wrong.stderr
