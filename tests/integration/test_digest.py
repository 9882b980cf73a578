"""The daily digest on SQLite and PostgreSQL: posture and changes since the channel's previous
digest, what waits for people, the 30-day trend, and recording what was sent."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from okeguard.audit.chain import verify_chain
from okeguard.audit.models import AuditEvent, DigestRecord, RemediationRequest, RequestState
from okeguard.audit.recording import record_scan
from okeguard.audit.stores import add_exception, create_request, transition
from okeguard.bot.slack.digest import build_digest, record_digest
from okeguard.bot.slack.digest_model import ExceptionRow, FindingRow, RequestRow
from okeguard.checks.model import Finding, ResourceRef, Status, fingerprint
from okeguard.checks.registry import get_check
from okeguard.inventory.model import Gap
from okeguard.scanning import ScanReport
from tests.integration.database import Database

S = RequestState
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # when the digest is built
CHECKS = [
    "k8s.privileged",  # critical 10
    "k8s.run-as-root",  # high 5
    "k8s.host-path",  # high 5
    "k8s.writable-root-fs",  # medium 3
    "k8s.capabilities-not-dropped",  # low 1
    "k8s.image-not-pinned",  # info 0.5
]
ZERO = {"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0}


def _at(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _finding(check_id: str, cluster: str, name: str) -> Finding:
    spec = get_check(check_id)
    assert spec is not None
    resource = ResourceRef("Deployment", "shop", name, "app")
    return Finding(
        check_id=check_id,
        severity=spec.severity,
        status=Status.OPEN,
        cluster=cluster,
        resource=resource,
        message=f"{check_id} on {name}",
        practice=(),
        remediation="",
        fingerprint=fingerprint(check_id, cluster, resource),
    )


def _report(cluster: str, findings: Iterable[Finding], gaps: Iterable[Gap] = ()) -> ScanReport:
    return ScanReport(
        generated_at=AT,
        evaluated_at=AT,
        cluster=cluster,
        source={"type": "test"},
        findings=list(findings),
        checks_run=list(CHECKS),
        not_applicable=[],
        gaps=list(gaps),
        skipped_kinds={},
        objects_scanned=1,
        duration_seconds=0.0,
    )


def _row(finding: Finding) -> FindingRow:
    return FindingRow(
        fingerprint=finding.fingerprint,
        check_id=finding.check_id,
        severity=finding.severity.value,
        cluster=finding.cluster,
        resource=f"Deployment shop/{finding.resource.name} (container app)",
        message=finding.message,
    )


# prod's findings, named by when they appear
A = _finding("k8s.privileged", "prod", "web")  # Oct 11, resolved Nov 19
B = _finding("k8s.run-as-root", "prod", "web")  # Oct 11
C = _finding("k8s.writable-root-fs", "prod", "web")  # Nov 15 morning
D = _finding("k8s.capabilities-not-dropped", "prod", "api")  # Nov 15 evening
E = _finding("k8s.host-path", "prod", "api")  # Nov 19
F = _finding("k8s.image-not-pinned", "prod", "web")  # Nov 19
G = _finding("k8s.writable-root-fs", "prod", "api")  # Nov 19
S1 = _finding("k8s.privileged", "stage", "web")  # Nov 18
SECRETS_GAP = Gap("kubernetes", "Secret", "forbidden")


def _record(database: Database, report: ScanReport, at: datetime) -> None:
    with database.sessions.begin() as session:
        record_scan(session, report, actor="scheduler", started_by="test", now=at)


def _plan(remediation: str, cluster: str = "prod") -> dict[str, Any]:
    return {"remediation": remediation, "cluster": cluster, "check_id": "k8s.run-as-root"}


def _request(database: Database, remediation: str, path: list[RequestState], **last: Any) -> int:
    """A request moved along ``path`` (from proposed); ``last`` are the last move's fields."""
    with database.sessions.begin() as session:
        request = create_request(
            session,
            plan=_plan(remediation),
            requester="alice",
            expires_at=last.pop("expires_at", None),
        )
        state = S.PROPOSED
        for index, new in enumerate(path):
            fields = last if index == len(path) - 1 else {}
            assert transition(session, request.id, state, new, "bob", **fields)
            state = new
        return request.id


def _populate(database: Database) -> dict[str, Any]:
    _record(database, _report("prod", [A, B]), _at(10, 11, 10))  # before the 30-day window
    _record(database, _report("prod", [A, B, C]), _at(11, 15, 8))
    _record(database, _report("prod", [A, B, C, D]), _at(11, 15, 20))  # the day's last
    _record(database, _report("stage", [S1]), _at(11, 18, 12))
    _record(database, _report("prod", [B, C, D, E, F, G]), _at(11, 19, 10))
    _record(database, _report("stage", [S1], [SECRETS_GAP]), _at(11, 19, 11))

    with database.sessions.begin() as session:
        session.add_all(
            [
                DigestRecord(channel="#sec", sent_at=_at(11, 10, 8), scores={"prod": 10}),
                DigestRecord(channel="#sec", sent_at=_at(11, 18, 8), scores={"prod": 30}),
                DigestRecord(channel="#other", sent_at=_at(11, 20, 7), scores={"prod": 0}),
            ]
        )
        rules = [
            add_exception(
                session,
                check_id="k8s.run-as-root",
                cluster="prod",
                kind="Deployment",
                namespace="shop",
                name="web",
                reason="vendor image",
                author="carol",
                expires_at=AT + timedelta(days=2),
            ),
            add_exception(
                session,
                check_id="k8s.host-path",
                namespace="ops",
                reason="log shipper",
                author="dave",
                expires_at=AT + timedelta(days=7),
            ),
        ]
        for expires in (AT + timedelta(days=8), AT - timedelta(hours=1), None):
            add_exception(
                session,
                check_id="k8s.privileged",
                cluster="dev",
                reason="not soon",
                author="erin",
                expires_at=expires,
            )
        exceptions = [(r.id, r.expires_at) for r in rules]

    pending = [
        _request(
            database, "run-as-non-root", [S.PENDING_APPROVAL], expires_at=AT + timedelta(hours=1)
        ),
        _request(database, "drop-capabilities", [S.PENDING_APPROVAL]),
    ]
    _request(database, "stale", [S.PENDING_APPROVAL], expires_at=AT - timedelta(hours=1))
    done = [S.PENDING_APPROVAL, S.APPROVED, S.APPLYING, S.APPLIED]
    applied = _request(database, "read-only-root", done, applied_at=_at(11, 19, 12))
    _request(database, "old-fix", done, applied_at=_at(11, 17, 12))  # before the last digest
    _request(database, "approved-only", [S.PENDING_APPROVAL, S.APPROVED])
    _request(database, "proposed-only", [])
    return {"exceptions": exceptions, "pending": pending, "applied": applied}


def _prod_trend() -> dict[date, dict[str, int]]:
    trend: dict[date, dict[str, int]] = {}
    day = date(2026, 10, 22)  # the window's first day: the Oct 11 scan carried forward
    counts = dict(ZERO, critical=1, high=1)
    while day <= date(2026, 11, 20):
        if day == date(2026, 11, 15):
            counts = dict(ZERO, critical=1, high=1, medium=1, low=1)
        if day == date(2026, 11, 19):
            counts = dict(ZERO, high=2, medium=2, low=1, info=1)
        trend[day] = counts
        day += timedelta(days=1)
    return trend


def test_the_digest_reports_posture_changes_and_what_waits(database: Database) -> None:
    made = _populate(database)
    with database.sessions() as session:
        digest = build_digest(session, channel="#sec", now=AT)
        created = {r.id: r.created_at for r in session.scalars(select(RemediationRequest))}

    assert digest.generated_at == AT
    assert digest.since == _at(11, 18, 8)
    prod, stage = digest.clusters
    assert prod.cluster == "prod"
    # failing: every check but k8s.privileged -> 10 of 24.5 weighted points pass
    assert prod.score == 41
    assert prod.score_change == 41 - 30
    assert prod.by_severity == dict(ZERO, high=2, medium=2, low=1, info=1)
    assert prod.new == (_row(E), _row(G), _row(F))
    assert prod.resolved == (_row(A),)
    assert prod.top_risks == (_row(B), _row(E), _row(C), _row(G), _row(D))
    assert prod.incomplete == ()

    assert stage.cluster == "stage"
    assert stage.score == round(100 * 14.5 / 24.5)
    assert stage.score_change is None  # the previous digest did not report stage
    assert stage.by_severity == dict(ZERO, critical=1)
    assert stage.new == (_row(S1),)  # first seen after the previous digest
    assert stage.resolved == ()
    assert stage.top_risks == (_row(S1),)
    assert stage.incomplete == ("Secret",)

    first, second = made["pending"]
    assert digest.pending_approvals == tuple(
        RequestRow(
            id=request_id,
            remediation=name,
            cluster="prod",
            check_id="k8s.run-as-root",
            state="pending-approval",
            requester="alice",
            approver=None,
            at=created[request_id],
            expires_at=expires,
        )
        for request_id, name, expires in (
            (first, "run-as-non-root", AT + timedelta(hours=1)),
            (second, "drop-capabilities", None),
        )
    )
    assert digest.remediations_applied == (
        RequestRow(
            id=made["applied"],
            remediation="read-only-root",
            cluster="prod",
            check_id="k8s.run-as-root",
            state="applied",
            requester="alice",
            approver=None,
            at=_at(11, 19, 12),
        ),
    )
    (soon, soon_at), (week, week_at) = made["exceptions"]
    assert digest.expiring_exceptions == (
        ExceptionRow(
            id=soon,
            check_id="k8s.run-as-root",
            selector="cluster prod, Deployment shop/web",
            author="carol",
            reason="vendor image",
            expires_at=soon_at,
        ),
        ExceptionRow(
            id=week,
            check_id="k8s.host-path",
            selector="namespace ops",
            author="dave",
            reason="log shipper",
            expires_at=week_at,
        ),
    )

    assert set(digest.trend) == {"prod", "stage"}
    assert digest.trend["prod"] == _prod_trend()
    assert len(digest.trend["prod"]) == 30
    one = dict(ZERO, critical=1)
    assert digest.trend["stage"] == {
        date(2026, 11, 18): one,
        date(2026, 11, 19): one,
        date(2026, 11, 20): one,  # carried forward: no scan yet today
    }


def test_the_first_digest_of_a_channel_looks_back_24_hours(database: Database) -> None:
    _populate(database)
    with database.sessions() as session:
        digest = build_digest(session, channel="#new", now=AT, clusters=["stage", "prod"])
    assert digest.since is None
    prod, stage = digest.clusters
    assert (prod.score_change, stage.score_change) == (None, None)
    assert prod.new == (_row(E), _row(G), _row(F))  # first seen Nov 19 10:00, within 24 h
    assert prod.resolved == (_row(A),)
    assert stage.new == ()  # first seen Nov 18 12:00, more than 24 h ago
    assert [r.remediation for r in digest.remediations_applied] == ["read-only-root"]


def test_the_clusters_asked_for_only(database: Database) -> None:
    _populate(database)
    with database.sessions() as session:
        digest = build_digest(session, channel="#sec", now=AT, clusters=["stage", "unknown"])
    assert [c.cluster for c in digest.clusters] == ["stage"]
    assert set(digest.trend) == {"stage"}


def test_the_window_moves_and_old_scans_carry_into_it(database: Database) -> None:
    _record(database, _report("prod", [A, B]), _at(10, 11, 10))
    with database.sessions() as session:
        digest = build_digest(session, channel="#sec", now=_at(12, 31, 23))
    (prod,) = digest.clusters
    assert prod.by_severity == dict(ZERO, critical=1, high=1)
    days = sorted(digest.trend["prod"])
    assert (days[0], days[-1], len(days)) == (date(2026, 12, 2), date(2026, 12, 31), 30)
    assert set(map(json.dumps, digest.trend["prod"].values())) == {
        json.dumps(dict(ZERO, critical=1, high=1))
    }


def test_an_empty_database_gives_an_empty_digest(database: Database) -> None:
    with database.sessions() as session:
        digest = build_digest(session, channel="#sec", now=AT)
    assert digest.clusters == () and digest.trend == {}
    assert digest.pending_approvals == digest.expiring_exceptions == ()
    assert digest.remediations_applied == ()


def test_record_digest_is_the_next_digests_baseline(database: Database) -> None:
    _populate(database)
    with database.sessions.begin() as session:
        digest = build_digest(session, channel="#sec", now=AT)
        record = record_digest(session, digest, channel="#sec", actor="okeguard")
        record_id = record.id

    with database.sessions() as session:
        stored = session.get(DigestRecord, record_id)
        assert stored is not None
        assert (stored.channel, stored.sent_at) == ("#sec", AT)
        assert stored.scores == {"prod": 41, "stage": 59}
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        assert (event.action, event.actor, event.subject_type, event.subject_id) == (
            "digest.sent",
            "okeguard",
            "digest",
            str(record_id),
        )
        assert event.at == AT
        assert json.loads(event.payload) == {
            "channel": "#sec",
            "clusters": ["prod", "stage"],
            "scores": {"prod": 41, "stage": 59},
            "counts": {
                "prod": dict(ZERO, high=2, medium=2, low=1, info=1),
                "stage": dict(ZERO, critical=1),
            },
        }
        assert verify_chain(session) is None

        later = AT + timedelta(days=1)
        after = build_digest(session, channel="#sec", now=later)
    assert after.since == AT
    assert [(c.cluster, c.score_change, c.new, c.resolved) for c in after.clusters] == [
        ("prod", 0, (), ()),
        ("stage", 0, (), ()),
    ]
    assert after.remediations_applied == ()
    # a day on, the eight-day exception has come within the week too
    assert [e.reason for e in after.expiring_exceptions] == [
        "vendor image",
        "log shipper",
        "not soon",
    ]


def test_the_digest_reads_each_table_once(database: Database) -> None:
    _populate(database)
    for cluster in ("dev", "qa", "perf"):
        _record(database, _report(cluster, [_finding("k8s.privileged", cluster, "web")]), AT)
    statements: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN IMMEDIATE
            statements.append(args[2])

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        with database.sessions() as session:
            digest = build_digest(session, channel="#sec", now=AT)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert len(digest.clusters) == 5
    # digests, cluster_posture, scans, findings, remediation_requests, exceptions, audit_events
    assert len(statements) == 7, statements
