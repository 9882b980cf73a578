"""``okeguard scan --record``, ``findings list`` and ``exceptions`` through the real console script."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import yaml

from tests.e2e.conftest import Run, one_error_line
from tests.helpers import deployment


def _env(tmp_path: Path) -> dict[str, str]:
    return {"OKEGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'okeguard.db'}"}


def _write(directory: Path, *names: str) -> None:
    directory.mkdir(exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    for name in names:
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(deployment(name)))


def test_record_twice_then_list_findings(run: Run, tmp_path: Path) -> None:
    env, manifests = _env(tmp_path), tmp_path / "k8s"
    _write(manifests, "web", "api")
    first = run("scan", "--manifests", str(manifests), "--record", "--format", "json", env=env)
    assert first.returncode == 0, first.stderr
    count = len(json.loads(first.stdout)["findings"])
    assert f"recorded: {count} new, 0 seen, 0 resolved" in first.stderr
    _write(manifests, "web")
    second = run("scan", "--manifests", str(manifests), "--record", "-q", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""  # quiet: no summary

    listed = json.loads(run("findings", "list", "--format", "json", env=env).stdout)
    assert len(listed) == count
    by_name = {(f["resource_name"], f["status"]) for f in listed}
    assert {s for n, s in by_name if n == "api"} == {"resolved"}
    assert {s for n, s in by_name if n == "web"} == {"open"}
    opened = run("findings", "list", "--status", "open", "--format", "csv", env=env)
    rows = list(csv.DictReader(io.StringIO(opened.stdout)))
    names = {r["resource_name"] for r in rows}
    assert "web" in names and "api" not in names
    assert "fingerprint" in rows[0] and "last_seen" in rows[0]
    table = run("findings", "list", "--severity", "high", env=env)
    assert table.returncode == 0 and table.stdout.splitlines()[0].startswith("STATUS")

    assert run("audit", "verify", env=env).returncode == 0
    events = json.loads(run("audit", "list", "--format", "json", env=env).stdout)
    actions = [e["action"] for e in events]
    assert actions.count("scan.recorded") == 2 and "finding.resolved" in actions
    assert {e["actor"] for e in events} == {f"uid:{os.getuid()}"}  # the OS uid, not $USER


def test_exceptions_add_list_remove_are_audited(run: Run, tmp_path: Path) -> None:
    env = _env(tmp_path)
    bad = run(
        "exceptions", "add", "--check", "k8s.nope", "--reason", "x", "--expires", "1d", env=env
    )
    assert "unknown check id 'k8s.nope'" in one_error_line(bad)
    past = run(
        "exceptions",
        "add",
        *("--check", "k8s.stale-secret", "--reason", "x", "--expires", "2020-01-01"),
        env=env,
    )
    assert "in the past" in one_error_line(past)
    missing = run("exceptions", "add", "--check", "k8s.stale-secret", "--expires", "1d", env=env)
    assert "--reason" in one_error_line(missing)

    added = run(
        "exceptions",
        "add",
        *("--check", "k8s.stale-secret", "--namespace", "legacy"),
        *("--reason", "vendor rotates it", "--expires", "30d"),
        env=env,
    )
    assert added.returncode == 0, added.stderr
    rule_id = added.stdout.strip()
    listed = json.loads(run("exceptions", "list", "--format", "json", env=env).stdout)
    assert [(str(r["id"]), r["namespace"], r["reason"]) for r in listed] == [
        (rule_id, "legacy", "vendor rotates it")
    ]
    removed = run("exceptions", "remove", rule_id, env=env)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(run("exceptions", "list", "--format", "json", env=env).stdout) == []
    again = run("exceptions", "remove", rule_id, env=env)
    assert f"no exception {rule_id}" in one_error_line(again)

    events = json.loads(run("audit", "list", "--format", "json", env=env).stdout)
    assert [e["action"] for e in events] == [
        "db.upgrade",
        "exception.added",
        "exception.removed",
        "exception.refused",  # the second removal
    ]
    assert {e["actor"] for e in events} == {f"uid:{os.getuid()}"}  # the OS uid, not $USER
    assert run("audit", "verify", env=env).returncode == 0
