"""Recording scans on SQLite and PostgreSQL: the findings' lifecycle, never resolving for lack of
data, exceptions, and the audit chain."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from okeguard.audit.chain import verify_chain
from okeguard.audit.models import AuditEvent, FindingRecord, Scan
from okeguard.audit.recording import RecordResult, record_scan
from okeguard.audit.stores import add_exception
from okeguard.checks.model import Status
from okeguard.config import Config
from okeguard.inventory.model import Gap
from okeguard.scanning import ScanReport, merge_reports, scan_inventory
from tests.helpers import NOW, deployment, inventory
from tests.integration.database import Database

STALE = "k8s.stale-secret"


def _secret(name: str = "db", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
    }


def _report(
    docs: list[dict[str, Any]],
    *,
    gaps: list[Gap] | None = None,
    checks: tuple[str, ...] = (),
    namespaces: tuple[str, ...] = (),
    cluster: str = "test",
) -> ScanReport:
    inv = inventory(docs, whole_cluster=True, gaps=gaps, cluster=cluster)
    return scan_inventory(inv, Config(), checks=checks, namespaces=namespaces, now=NOW)


def _record(database: Database, report: ScanReport, hours: int = 0) -> RecordResult:
    with database.sessions.begin() as session:
        return record_scan(
            session,
            report,
            actor="alice",
            started_by="test",
            now=NOW + timedelta(hours=hours),
        )


def _rows(database: Database) -> dict[str, FindingRecord]:
    with database.sessions() as session:
        return {r.fingerprint: r for r in session.scalars(select(FindingRecord))}


def _status(database: Database, **where: str) -> set[str]:
    return {
        r.status
        for r in _rows(database).values()
        if all(getattr(r, k) == v for k, v in where.items())
    }


def test_lifecycle_new_seen_resolved_reopened(database: Database) -> None:
    both = _report([deployment("web"), deployment("api")])
    web_only = _report([deployment("web")])
    first = _record(database, both)
    open_count = len([f for f in both.findings if f.status is Status.OPEN])
    assert first.new == open_count > 0 and first.resolved == 0
    assert _status(database) == {"open"}

    second = _record(database, both, hours=1)
    assert (second.new, second.unchanged, second.resolved) == (0, open_count, 0)
    assert {r.last_seen for r in _rows(database).values()} == {NOW + timedelta(hours=1)}

    third = _record(database, web_only, hours=2)
    api_count = len([f for f in both.findings if f.resource.name == "api"])
    assert third.resolved == api_count and third.new == 0
    assert (
        third.summary() == f"recorded: 0 new, {open_count - api_count} seen, {api_count} resolved"
    )
    assert _status(database, resource_name="api") == {"resolved"}
    assert _status(database, resource_name="web") == {"open"}
    resolved = [r for r in _rows(database).values() if r.resource_name == "api"]
    assert all(r.resolved_at == NOW + timedelta(hours=2) for r in resolved)

    fourth = _record(database, both, hours=3)
    assert fourth.reopened == api_count and fourth.resolved == 0 and fourth.new == 0
    assert _status(database) == {"open"}
    assert all(r.resolved_at is None for r in _rows(database).values())

    with database.sessions() as session:
        assert verify_chain(session) is None
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions.count("finding.opened") == open_count
        assert actions.count("finding.resolved") == api_count
        assert actions.count("finding.reopened") == api_count
        assert actions.count("scan.recorded") == 4
        assert len(list(session.scalars(select(Scan)))) == 4


def test_a_gap_never_resolves_the_findings_it_hides(database: Database) -> None:
    _record(database, _report([deployment("web"), _secret()]))
    assert _status(database, check_id=STALE) == {"open"}
    gap = Gap("kubernetes", "Secret", "forbidden")
    result = _record(database, _report([], gaps=[gap]), hours=1)
    assert _status(database, check_id=STALE) == {"open"}
    assert _status(database, resource_name="web") == {"resolved"}
    assert result.resolved == len([r for r in _rows(database).values() if r.status == "resolved"])
    _record(database, _report([]), hours=2)  # complete again: now it is gone
    assert _status(database, check_id=STALE) == {"resolved"}


def test_an_unknown_finding_keeps_its_checks_findings(database: Database) -> None:
    full = _report([deployment("web")])
    _record(database, full)
    kept_check = full.findings[0].check_id
    unknown = replace(full.findings[0], status=Status.UNKNOWN, fingerprint="u" * 32)
    empty = _report([])
    _record(database, replace(empty, findings=[unknown]), hours=1)
    assert _status(database, check_id=kept_check) == {"open"}
    others = {r.status for r in _rows(database).values() if r.check_id != kept_check}
    assert others == {"resolved"}
    assert "u" * 32 not in _rows(database)  # unknown verdicts are not findings


def test_filtered_scans_resolve_only_what_they_looked_at(database: Database) -> None:
    _record(database, _report([deployment("web", "shop"), deployment("web", "ops")]))
    one_check = next(iter(_rows(database).values())).check_id
    _record(database, _report([], checks=(one_check,)), hours=1)
    assert _status(database, check_id=one_check) == {"resolved"}
    assert {r.status for r in _rows(database).values() if r.check_id != one_check} == {"open"}

    _record(database, _report([deployment("web", "shop")], namespaces=("ops",)), hours=2)
    assert _status(database, resource_namespace="shop") <= {"open", "resolved"}
    shop = [r for r in _rows(database).values() if r.resource_namespace == "shop"]
    assert {r.status for r in shop if r.check_id != one_check} == {"open"}
    assert _status(database, resource_namespace="ops") == {"resolved"}


def test_a_cluster_missing_from_the_report_keeps_its_findings(database: Database) -> None:
    a, b = _report([deployment()], cluster="a"), _report([deployment()], cluster="b")
    _record(database, merge_reports([a, b]))
    _record(database, _report([], cluster="a"), hours=1)
    assert _status(database, cluster="a", resource_name="web") == {"resolved"}
    assert _status(database, cluster="b") == {"open"}


def test_exceptions_exempt_findings_until_they_expire(database: Database) -> None:
    report = _report([deployment("web", "shop"), _secret()])
    with database.sessions.begin() as session:
        add_exception(
            session,
            check_id=STALE,
            namespace="shop",
            reason="rotated by the vendor",
            author="alice",
            expires_at=NOW + timedelta(days=1),
        )
    _record(database, report)
    assert _status(database, check_id=STALE) == {"exempt"}
    assert "exempt" not in {r.status for r in _rows(database).values() if r.check_id != STALE}
    later = _record(database, report, hours=48)
    assert later.updated == 1
    assert _status(database, check_id=STALE) == {"open"}
    with database.sessions() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "finding.status")
        ).one()
        assert '"from":"exempt"' in event.payload and '"to":"open"' in event.payload
        assert verify_chain(session) is None


def test_people_set_statuses_are_kept_while_seen(database: Database) -> None:
    from okeguard.audit.stores import set_finding_status

    report = _report([_secret()])
    _record(database, report)
    fingerprint = next(f.fingerprint for f in report.findings if f.check_id == STALE)
    with database.sessions.begin() as session:
        set_finding_status(session, fingerprint, "accepted-risk", "bob", reason="legacy")
    again = _record(database, report, hours=1)
    assert again.updated == 0
    assert _rows(database)[fingerprint].status == "accepted-risk"


def test_a_snooze_ends_at_its_time_and_the_next_scan_reopens_the_finding(
    database: Database,
) -> None:
    from okeguard.audit.stores import set_finding_status

    report = _report([_secret()], checks=(STALE,))
    _record(database, report)
    [fingerprint] = _rows(database)
    with database.sessions.begin() as session:
        until = NOW + timedelta(days=7)
        assert set_finding_status(session, fingerprint, "snoozed", "bob", "on leave", until=until)
    _record(database, report, hours=24)
    assert _rows(database)[fingerprint].status == "snoozed"  # still snoozed a day later
    result = _record(database, report, hours=24 * 8)
    row = _rows(database)[fingerprint]
    assert (row.status, result.updated) == ("open", 1)
    with database.sessions() as session:
        last = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "finding.status")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert last is not None and "has passed" in last.payload
        assert verify_chain(session) is None


def test_each_recording_keeps_each_clusters_posture(database: Database) -> None:
    from okeguard.audit.models import ClusterPosture

    prod = _report([_secret(), deployment("web", namespace="shop")], cluster="prod")
    stage = _report([], cluster="stage")
    _record(database, merge_reports([prod, stage]))
    with database.sessions() as session:
        rows = {r.cluster: r for r in session.scalars(select(ClusterPosture))}
    assert set(rows) == {"prod", "stage"}
    for cluster, report in (("prod", prod), ("stage", stage)):
        for severity in ("critical", "high", "medium", "low", "info"):
            want = sum(1 for f in report.open_findings if f.severity.value == severity)
            assert getattr(rows[cluster], severity) == want, (cluster, severity)
    assert rows["prod"].medium >= 1
    assert 0 < rows["prod"].score < rows["stage"].score < 100  # stage: only whole-cluster lows
