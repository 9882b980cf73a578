"""The query layer both front doors read through: finding ids (one rule), findings worst first,
history, pending requests and exceptions in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from okeguard.audit import queries
from okeguard.audit.chain import append_event
from okeguard.audit.models import ExceptionRule, FindingRecord, RemediationRequest
from okeguard.audit.stores import add_exception
from tests.integration.database import Database

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _finding(
    fingerprint: str,
    *,
    check_id: str = "k8s.run-as-root",
    cluster: str = "prod",
    kind: str = "Deployment",
    namespace: str | None = "shop",
    name: str = "web",
    severity: str = "high",
    status: str = "open",
) -> FindingRecord:
    return FindingRecord(
        fingerprint=fingerprint,
        check_id=check_id,
        cluster=cluster,
        resource_kind=kind,
        resource_namespace=namespace,
        resource_name=name,
        severity=severity,
        status=status,
        message="m",
        first_seen=NOW,
        last_seen=NOW,
    )


@pytest.fixture
def findings(database: Database) -> Database:
    with database.sessions.begin() as session:
        session.add_all(
            [
                _finding("abcdef01" + "0" * 56),
                _finding("abcdef02" + "0" * 56, cluster="stage"),
                _finding("123456" + "0" * 58, check_id="k8s.host-path", severity="critical"),
                _finding("99" * 32, kind="Namespace", namespace=None, name="shop", severity="low"),
                _finding("77" * 32, severity="medium", status="resolved"),
            ]
        )
    return database


def test_a_finding_id_is_a_long_enough_prefix_or_check_and_resource() -> None:
    with pytest.raises(queries.FindingRefError, match="at least 6 characters"):
        queries.parse_finding_ref("abcde")
    assert queries.parse_finding_ref(" ABCDEF ").prefix == "abcdef"
    ref = queries.parse_finding_ref("k8s.run-as-root:shop/web")
    assert (ref.check_id, ref.where, ref.prefix) == ("k8s.run-as-root", "shop/web", None)
    who = {"check_id": "k8s.run-as-root", "kind": "Deployment", "namespace": "shop", "name": "web"}
    for text in ("k8s.run-as-root:web", "k8s.run-as-root:Deployment/shop/web", "abcdef"):
        assert queries.parse_finding_ref(text).matches(fingerprint="abcdef" + "0" * 58, **who)
    assert not queries.parse_finding_ref("k8s.other:shop/web").matches(fingerprint="", **who)


def test_resolving_a_finding_id(findings: Database) -> None:
    with findings.sessions() as session:
        assert queries.resolve_finding(session, "123456").check_id == "k8s.host-path"
        assert queries.resolve_finding(session, "ABCDEF01").cluster == "prod"
        with pytest.raises(queries.FindingAmbiguous, match="give more of it"):
            queries.resolve_finding(session, "abcdef")
        with pytest.raises(queries.FindingAmbiguous):  # on two clusters
            queries.resolve_finding(session, "k8s.run-as-root:shop/web")
        found = queries.resolve_finding(session, "k8s.host-path:shop/web")
        assert found.fingerprint.startswith("123456")
        assert queries.resolve_finding(session, "k8s.run-as-root:shop").resource_kind == "Namespace"
        with pytest.raises(queries.FindingNotFound, match="no recorded finding fedcba"):
            queries.resolve_finding(session, "fedcba")
        with pytest.raises(queries.FindingNotFound):  # % and _ are not wildcards
            queries.resolve_finding(session, "abcde%")


def test_findings_come_worst_first_and_filter_by_any_of_the_values(findings: Database) -> None:
    with findings.sessions() as session:
        found = queries.open_findings(session)
        assert [f.severity for f in found] == ["critical", "high", "high", "low"]
        assert [f.cluster for f in queries.open_findings(session, clusters=["stage"])] == ["stage"]
        both = queries.recorded_findings(session, severities=["low", "medium"])
        assert [(f.severity, f.status) for f in both] == [("medium", "resolved"), ("low", "open")]
        on_web = queries.findings_on_resource(session, "Deployment", "web")
        assert len(on_web) == 4
        assert queries.findings_on_resource(session, "Deployment", "web", "nowhere") == []


def test_history_holds_the_findings_and_their_requests_events(findings: Database) -> None:
    fingerprint = "123456" + "0" * 58
    with findings.sessions.begin() as session:
        request = RemediationRequest(
            finding_fingerprint=fingerprint, state="pending-approval", plan={}, plan_hash="0" * 64,
            requester="alice", expires_at=NOW - timedelta(hours=1),
        )  # fmt: skip
        session.add(request)
        session.flush()
        append_event(session, "bot", "finding.opened", ("finding", fingerprint), {})
        append_event(
            session, "alice", "remediation.proposed", ("remediation_request", request.id), {}
        )
        append_event(session, "bot", "finding.opened", ("finding", "99" * 32), {})
    with findings.sessions() as session:
        events = queries.finding_history(session, [fingerprint])
        assert [e.action for e in events] == ["finding.opened", "remediation.proposed"]
        assert queries.finding_history(session, []) == []
        assert len(queries.audit_events(session)) == 3
        # expired but not marked so: counted as pending, not listed as waiting
        assert queries.pending_request_count(session) == 1
        assert queries.pending_requests(session, NOW) == []


def test_exceptions_listed_and_said_in_words(database: Database) -> None:
    with database.sessions.begin() as session:
        add_exception(
            session, check_id="k8s.a", reason="r", author="alice", cluster="prod",
            kind="Deployment", namespace="shop", name="web", expires_at=NOW + timedelta(days=3),
        )  # fmt: skip
        add_exception(
            session, check_id="k8s.b", reason="r", author="alice", namespace="ops",
            state="pending-approval", expires_at=NOW + timedelta(days=30),
        )  # fmt: skip
        add_exception(session, check_id="k8s.c", reason="r", author="alice", state="rejected")
    with database.sessions() as session:
        listed = queries.listed_exceptions(session, NOW)
        assert [r.check_id for r in listed] == ["k8s.a", "k8s.b"]
        assert len(queries.listed_exceptions(session, NOW, every=True)) == 3
        soon = queries.expiring_exceptions(session, NOW, timedelta(days=7))
        assert [r.check_id for r in soon] == ["k8s.a"]
        assert queries.exception_count(session) == 3
        words = [queries.exception_scope(r) for r in listed]
        assert words == ["cluster prod, Deployment shop/web", "namespace ops"]
        pairs = [queries.exception_pairs(r) for r in listed]
        assert pairs == ["cluster=prod kind=Deployment namespace=shop name=web", "namespace=ops"]
    assert queries.exception_scope(ExceptionRule(check_id="x")) == "everywhere"
    assert queries.exception_pairs(ExceptionRule(check_id="x")) == "everything"
