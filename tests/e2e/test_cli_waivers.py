"""``okeguard scan`` honours waivers: the audit database's exceptions, an ignore file (found or
named), --severity, and never creates a database it was not asked to."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import yaml

from tests.e2e.conftest import Run, one_error_line
from tests.helpers import deployment

IGNORE = """ignore:
  - check: k8s.run-as-root
    resource: shop/web
    reason: legacy image, SEC-1
    expires: {expires}
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "k8s").mkdir()
    for name in ("web", "api"):
        (repo / "k8s" / f"{name}.yaml").write_text(yaml.safe_dump(deployment(name)))
    return repo


def test_scan_honours_the_database_and_the_ignore_file(run: Run, tmp_path: Path) -> None:
    repo, db = _repo(tmp_path), tmp_path / "state" / "okeguard.db"
    env = {"OKEGUARD_DATABASE_URL": f"sqlite:///{db}"}
    # configured but absent: nothing excepted, and nothing created
    first = run("scan", str(repo / "k8s"), "--fail-on", "high", "--format", "json", env=env)
    assert first.returncode == 1 and not db.exists()
    assert "no audit database at" in first.stderr
    added = run(
        "exceptions", "add", "--check", "k8s.run-as-root", "--cluster", "manifests",
        "--name", "api", "--reason", "vendor", "--expires", "30d", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    (repo / ".okeguard-ignore.yaml").write_text(IGNORE.format(expires="2099-01-01"))
    too_long = run("scan", str(repo / "k8s"), env=env)
    assert "expires: a waiver in a file lasts at most 365 days" in one_error_line(too_long)
    soon = (date.today() + timedelta(days=30)).isoformat()
    (repo / ".okeguard-ignore.yaml").write_text(IGNORE.format(expires=soon))
    done = run("scan", str(repo / "k8s"), "--fail-on", "high", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    exempt = {
        f["resource"]["name"]: f["exempt_reason"]
        for f in json.loads(done.stdout)["findings"]
        if f["status"] == "exempt"
    }
    assert exempt["api"].startswith("exception 1: vendor")
    assert exempt["web"].endswith(".okeguard-ignore.yaml:2: legacy image, SEC-1")
    assert "2 finding(s) exempt by them" in done.stderr
    high = run("scan", str(repo / "k8s"), "--severity", "high", "--format", "json", env=env)
    assert {f["severity"] for f in json.loads(high.stdout)["findings"]} == {"high"}
    ignored = run("scan", str(repo / "k8s"), "--no-ignore-file", "--fail-on", "high", env=env)
    assert ignored.returncode == 1
