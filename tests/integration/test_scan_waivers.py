"""Exceptions recorded with the real ``okeguard exceptions add`` applied to a manifest scan, on
SQLite and PostgreSQL: statuses, exempt reasons, what ``--fail-on`` counts, agreement with what a
recorded scan makes of the same exceptions, and an ignore file on top."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from okeguard.audit.db import DatabaseError, make_engine, session_factory
from okeguard.audit.models import FindingRecord
from okeguard.audit.recording import record_scan
from okeguard.checks.model import Severity, Status
from okeguard.config import Config
from okeguard.ignore_file import load_ignore_file
from okeguard.scan_waivers import scan_waivers
from okeguard.scanning import ScanReport
from okeguard.service import ScanRequest, run_scan
from okeguard.waivers import apply_waivers, database_waivers
from tests.helpers import deployment

ROOT = "k8s.run-as-root"


def _okeguard(url: str, home: Path, *args: str) -> str:
    script = Path(sys.executable).with_name("okeguard")
    env = {**os.environ, "OKEGUARD_DATABASE_URL": url, "HOME": str(home), "NO_COLOR": "1"}
    done = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _add(url: str, home: Path, *selector: str, check: str = ROOT, expires: str = "30d") -> str:
    return _okeguard(
        url, home, "exceptions", "add", "--check", check, *selector,
        "--reason", f"why {check} {' '.join(selector)}", "--expires", expires,
    )  # fmt: skip


def _scan(tmp_path: Path) -> ScanReport:
    manifests = tmp_path / "k8s"
    manifests.mkdir()
    for name in ("web", "api"):
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump(deployment(name)))
    return run_scan(ScanRequest(manifests=(str(manifests),), config=Config()))


def _fails_on(report: ScanReport, threshold: Severity) -> bool:
    """What ``okeguard scan --fail-on`` decides: an open finding at or above the threshold."""
    return any(f.severity.rank >= threshold.rank for f in report.open_findings)


def _status(report: ScanReport, check_id: str, name: str) -> tuple[Status, str | None]:
    (finding,) = [f for f in report.findings if f.check_id == check_id and f.resource.name == name]
    return finding.status, finding.exempt_reason


def test_recorded_exceptions_exempt_scan_findings(database_url: str, tmp_path: Path) -> None:
    web = _add(database_url, tmp_path, "--namespace", "shop", "--name", "web")
    _add(database_url, tmp_path, "--cluster", "other", "--name", "api")  # another cluster
    # names neither a cluster nor a resource: waits for an approver, waives nothing
    _add(database_url, tmp_path, "--namespace", "shop", check="k8s.privilege-escalation")
    pending = _okeguard(database_url, tmp_path, "exceptions", "list", "--format", "json")
    assert '"pending-approval"' in pending

    report = _scan(tmp_path)
    assert report.cluster == "manifests" and _fails_on(report, Severity.HIGH)
    now = datetime.now(UTC)
    waivers = database_waivers(database_url, now)
    assert [w.origin for w in waivers] == [f"exception {web}", f"exception {int(web) + 1}"]
    waived = apply_waivers(report, waivers, now)

    assert _status(waived, ROOT, "web") == (
        Status.EXEMPT,
        f"exception {web}: why {ROOT} --namespace shop --name web",
    )
    assert _status(waived, ROOT, "api") == (Status.OPEN, None)
    assert all(
        f.status is Status.OPEN for f in waived.findings if f.check_id == "k8s.privilege-escalation"
    )
    assert waived.count_by_severity()["high"] == 1 and _fails_on(waived, Severity.HIGH)

    # what a recorded scan makes of the same exceptions is what the scan shows
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            record_scan(session, report, actor="test", started_by="test", now=now)
        with session_factory(engine)() as session:
            rows = session.execute(select(FindingRecord.fingerprint, FindingRecord.status)).all()
    finally:
        engine.dispose()
    assert dict(rows) == {f.fingerprint: f.status.value for f in waived.findings}

    # one more exception, for this cluster, and nothing high is left open: --fail-on high passes
    _add(database_url, tmp_path, "--cluster", "manifests", "--name", "api")
    rewaived = apply_waivers(report, database_waivers(database_url), datetime.now(UTC))
    assert not _fails_on(rewaived, Severity.HIGH) and _fails_on(rewaived, Severity.MEDIUM)
    assert rewaived.count_by_severity()["high"] == 0
    assert rewaived.count_by_status()["exempt"] == report.count_by_status()["exempt"] + 2


def test_an_exception_past_its_expiry_no_longer_applies(database_url: str, tmp_path: Path) -> None:
    _add(database_url, tmp_path, "--name", "web", "--cluster", "manifests", expires="1h")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert len(database_waivers(database_url)) == 1
    assert database_waivers(database_url, later) == []


def test_an_ignore_file_adds_to_the_database_exceptions(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = _add(database_url, tmp_path, "--namespace", "shop", "--name", "web")
    ignore = tmp_path / ".okeguard-ignore.yaml"
    ignore.write_text(
        "ignore:\n"
        f"  - check: {ROOT}\n    resource: Deployment/shop/api\n"
        "    reason: vendor image, SEC-412\n"
        f"    expires: {(datetime.now(UTC) + timedelta(days=200)).date().isoformat()}\n"
        f"  - check: {ROOT}\n    resource: shop/web\n    reason: second, not named\n"
        f"    expires: {(datetime.now(UTC) + timedelta(days=1)).date().isoformat()}\n"
    )
    now = datetime.now(UTC)
    assert load_ignore_file(ignore)[0].origin == f"{ignore}:2"
    monkeypatch.setenv("OKEGUARD_DATABASE_URL", database_url)
    found = scan_waivers(Config(), ignore_file=str(ignore), now=now)
    assert found.sources == ["1 exception(s) from the audit database", f"2 from {ignore}"]
    assert found.waivers[0].origin == f"exception {web}"  # the audited one names the reason
    waived = apply_waivers(_scan(tmp_path), found.waivers, now)
    assert (
        _status(waived, ROOT, "web")[1]
        == f"exception {web}: why {ROOT} --namespace shop --name web"
    )
    assert _status(waived, ROOT, "api") == (Status.EXEMPT, f"{ignore}:2: vendor image, SEC-412")
    assert not _fails_on(waived, Severity.HIGH)


def test_an_absent_database_is_an_error_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "okeguard.db"
    with pytest.raises(DatabaseError, match=r"no audit database at .*okeguard\.db"):
        database_waivers(f"sqlite:///{missing}")
    assert not missing.exists() and not missing.parent.exists()


def test_a_postgresql_schema_without_tables_is_an_error(postgres_url: str) -> None:
    with pytest.raises(DatabaseError, match=r"no audit database at 127\.0\.0\.1:5432/test"):
        database_waivers(postgres_url)
