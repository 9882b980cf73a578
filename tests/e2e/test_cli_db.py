"""``okeguard db`` and ``okeguard audit`` through the real console script, on a SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from okeguard.audit.schema import head_revision
from tests.e2e.conftest import Run

HEAD = head_revision()


def _env(tmp_path: Path) -> dict[str, str]:
    return {"OKEGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'okeguard.db'}"}


def test_upgrade_current_and_verify(run: Run, tmp_path: Path) -> None:
    env = _env(tmp_path)
    before = run("audit", "verify", env=env)
    assert before.returncode == 2 and "okeguard db upgrade" in before.stderr
    none = run("db", "current", env=env)
    assert none.stdout.startswith(f"none (head is {HEAD}")
    assert not (tmp_path / "state" / "okeguard.db").exists()
    up = run("db", "upgrade", env=env)
    assert up.returncode == 0, up.stderr
    assert f"upgraded from empty to {HEAD}" in up.stderr and up.stdout == ""
    again = run("db", "upgrade", env=env)
    assert "up to date" in again.stderr
    current = run("db", "current", env=env)
    assert current.returncode == 0 and current.stdout.strip() == f"{HEAD} (head)"
    verify = run("audit", "verify", env=env)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip() == "OK: audit chain intact (1 event)"
    listed = json.loads(run("audit", "list", "--format", "json", env=env).stdout)
    assert [e["action"] for e in listed] == ["db.upgrade"]
    assert listed[0]["payload"] == {"from": None, "to": HEAD} and listed[0]["actor"]


def test_verify_names_the_tampered_row(run: Run, tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run("db", "upgrade", env=env).returncode == 0
    with sqlite3.connect(tmp_path / "state" / "okeguard.db") as conn:
        conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = 1")
    verify = run("audit", "verify", env=env)
    assert verify.returncode == 1 and verify.stdout == ""
    assert verify.stderr.strip() == (
        "okeguard: error: audit chain broken: audit event 1: "
        "hash does not match the row's content (row edited)"
    )


def test_an_unreachable_database_is_one_line_without_the_password(run: Run) -> None:
    env = {"OKEGUARD_DATABASE_URL": "postgresql+psycopg://okeguard:hunter2@127.0.0.1:1/audit"}
    for args in (("db", "upgrade"), ("db", "current")):
        result = run(*args, env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "127.0.0.1:1/audit" in lines[0], result.stderr
        assert "hunter2" not in result.stderr


def test_show_and_export(run: Run, tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert run("db", "upgrade", env=env).returncode == 0
    shown = json.loads(run("audit", "show", "1", env=env).stdout)
    assert shown["id"] == 1 and len(shown["hash"]) == 64
    csv_lines = run("audit", "export", "--format", "csv", "--since", "1d", env=env).stdout
    assert csv_lines.splitlines()[0].startswith("id,at,actor,action,")
    assert len(csv_lines.splitlines()) == 2
    missing = run("audit", "show", "9", env=env)
    assert missing.returncode == 2 and "no audit event 9" in missing.stderr
    table = run("audit", "list", env=env).stdout
    assert "db.upgrade" in table
