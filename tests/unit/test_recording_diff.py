"""The pure part of recording a scan (:mod:`okeguard.audit.lifecycle`): what changes, without a
database. The SQL that applies it is tested on SQLite and PostgreSQL in
``tests/integration/test_audit_recording.py``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from okeguard.audit.lifecycle import (
    FindingsDiff,
    Scope,
    StoredFinding,
    cluster_posture,
    diff_findings,
)
from okeguard.audit.models import ExceptionRule
from okeguard.checks.model import Finding, ResourceRef, Severity, Status, fingerprint

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
CHECK = "k8s.run-as-root"
CLUSTER = "prod"
EVERYTHING = Scope(frozenset({CHECK}), frozenset())


@dataclass(frozen=True)
class Row:
    """A stored finding, as the recording reads it."""

    id: int
    fingerprint: str
    check_id: str
    cluster: str
    resource_kind: str
    resource_namespace: str | None
    resource_name: str
    status: str
    severity: str
    message: str
    status_until: datetime | None = None


def _finding(name: str, namespace: str = "shop", status: Status = Status.OPEN) -> Finding:
    resource = ResourceRef("Deployment", namespace, name)
    return Finding(
        check_id=CHECK,
        severity=Severity.HIGH,
        status=status,
        cluster=CLUSTER,
        resource=resource,
        message=f"{name} runs as root",
        practice=("P1",),
        remediation="set runAsNonRoot",
        fingerprint=fingerprint(CHECK, CLUSTER, resource),
    )


def _row(finding: Finding, row_id: int, status: str = "open", **changes: object) -> Row:
    row = Row(
        id=row_id,
        fingerprint=finding.fingerprint,
        check_id=finding.check_id,
        cluster=finding.cluster,
        resource_kind=finding.resource.kind,
        resource_namespace=finding.resource.namespace,
        resource_name=finding.resource.name,
        status=status,
        severity=finding.severity.value,
        message=finding.message,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


def _diff(
    findings: list[Finding],
    rows: list[Row],
    scope: Scope = EVERYTHING,
    rules: dict[str, list[ExceptionRule]] | None = None,
) -> FindingsDiff:
    existing: dict[str, StoredFinding] = {row.fingerprint: row for row in rows}
    return diff_findings(
        findings, existing, {CLUSTER: scope}, rules or {}, actor="alice", scan_id=7, now=NOW
    )


def _actions(diff: FindingsDiff) -> list[tuple[str, str]]:
    return [(action, str(subject[1])) for _, action, subject, _ in diff.events]


def test_a_new_finding_is_inserted_open_with_an_opened_event() -> None:
    web = _finding("web")
    diff = _diff([web], [])
    assert diff.new == 1 and not diff.seen_ids and not diff.changes
    [row] = diff.inserts
    assert row["status"] == "open" and row["last_scan_id"] == 7 and row["first_seen"] == NOW
    assert _actions(diff) == [("finding.opened", web.fingerprint)]


def test_a_finding_gone_from_a_complete_scan_is_resolved() -> None:
    web, api = _finding("web"), _finding("api")
    diff = _diff([web], [_row(web, 1), _row(api, 2)])
    assert diff.resolved == 1 and diff.changes == {"resolved": [2]}
    assert diff.seen_ids == [1] and diff.unchanged == 1
    assert _actions(diff) == [("finding.resolved", api.fingerprint)]
    assert diff.events[0][3] == {"from": "open", "to": "resolved", "scan": 7}


def test_a_finding_the_scan_could_not_vouch_for_is_kept() -> None:
    """Not resolved when its check did not run (or was blocked by a gap or an unknown), nor
    when it lies outside the scan's --namespace filter."""
    web, api = _finding("web"), _finding("api", namespace="payments")
    rows = [_row(web, 1), _row(api, 2)]
    for scope in (
        Scope(frozenset(), frozenset()),  # the check did not run, or could not be evaluated
        Scope(frozenset({CHECK}), frozenset({"shop"})),  # api is in another namespace
    ):
        diff = _diff([web], rows, scope)
        assert diff.resolved == 0 and "resolved" not in diff.changes, scope
    assert _diff([web], rows, Scope(frozenset({CHECK}), frozenset({"payments"}))).resolved == 1


def test_an_unknown_finding_vouches_for_nothing() -> None:
    web = _finding("web")
    diff = _diff([replace(web, status=Status.UNKNOWN)], [])
    assert diff.new == 0 and not diff.inserts and not diff.events


def test_a_resolved_finding_seen_again_reopens() -> None:
    web = _finding("web")
    diff = _diff([web], [_row(web, 1, status="resolved")])
    assert diff.reopened == 1 and diff.changes == {"open": [1]}
    assert _actions(diff) == [("finding.reopened", web.fingerprint)]
    assert diff.events[0][3] == {"from": "resolved", "to": "open", "reason": None}


def test_an_already_resolved_finding_is_not_resolved_again() -> None:
    web, api = _finding("web"), _finding("api")
    diff = _diff([web], [_row(web, 1), _row(api, 2, status="resolved")])
    assert diff.resolved == 0 and not diff.events


def test_an_exception_makes_a_finding_exempt_and_its_end_reopens_it() -> None:
    web = _finding("web")
    rule = ExceptionRule(id=4, check_id=CHECK, cluster=CLUSTER, resource_name="web", reason="ok")
    diff = _diff([web], [_row(web, 1)], rules={CHECK: [rule]})
    assert diff.updated == 1 and diff.changes == {"exempt": [1]}
    assert diff.events[0][3] == {"from": "open", "to": "exempt", "reason": "exception 4: ok"}
    back = _diff([web], [_row(web, 1, status="exempt")])
    assert back.changes == {"open": [1]}
    assert back.events[0][3]["reason"] == "no longer exempt"
    new = _diff([web], [], rules={CHECK: [rule]})
    assert new.inserts[0]["status"] == "exempt"


def test_an_annotation_exempts_without_an_exception() -> None:
    web = replace(_finding("web"), status=Status.EXEMPT, exempt_reason="legacy")
    diff = _diff([web], [])
    assert diff.inserts[0]["status"] == "exempt" and diff.events[0][3]["reason"] == "legacy"


def test_a_snooze_is_kept_until_it_ends() -> None:
    web = _finding("web")
    later = NOW + timedelta(days=1)
    kept = _diff([web], [_row(web, 1, status="snoozed", status_until=later)])
    assert kept.unchanged == 1 and not kept.changes and not kept.events
    ended = _diff([web], [_row(web, 1, status="snoozed", status_until=NOW)])
    assert ended.updated == 1 and ended.changes == {"open": [1]}
    assert ended.events[0][3]["reason"] == f"snoozed until {NOW.isoformat()} has passed"


def test_a_changed_message_or_severity_is_refreshed() -> None:
    web = _finding("web")
    diff = _diff([web], [_row(web, 1, message="old", severity="low")])
    assert diff.refreshed == [{"id": 1, "severity": "high", "message": web.message}]
    assert diff.unchanged == 1 and not diff.events


def test_a_finding_reported_twice_counts_once() -> None:
    web = _finding("web")
    assert _diff([web, web], []).new == 1


def test_posture_counts_open_findings_and_fails_unknown_checks() -> None:
    web = _finding("web")
    other = replace(_finding("api"), check_id="k8s.privileged", severity=Severity.CRITICAL)
    severities = {CHECK: "high", "k8s.privileged": "critical", "k8s.host-path": "critical"}
    counts, score = cluster_posture([web], severities, {})
    assert counts == {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0}
    assert list(counts) == ["critical", "high", "medium", "low", "info"]
    assert score == round(100 * 20 / 25)
    unknown = replace(other, status=Status.UNKNOWN)
    counts, score = cluster_posture([web, unknown], severities, {})
    assert counts["critical"] == 0 and score == round(100 * 10 / 25)
    rule = ExceptionRule(id=1, check_id=CHECK, reason="ok")
    assert cluster_posture([web], severities, {CHECK: [rule]}) == (dict.fromkeys(counts, 0), 100)
