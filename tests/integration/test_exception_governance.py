"""Exceptions under governance, on SQLite and PostgreSQL: bounded expiry, fleet-wide waivers
waiting for an approver in scope (never their author), compare-and-set decisions, refusals
audited, and only active exceptions exempting recorded findings."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from okeguard.approval_policy import ApprovalRules, Person, cli_person, slack_person
from okeguard.audit.chain import verify_chain
from okeguard.audit.crosscheck import crosscheck
from okeguard.audit.models import AuditEvent, ExceptionRule, FindingRecord
from okeguard.audit.recording import record_scan
from okeguard.audit.stores import decide_exception
from okeguard.audit.types import utcnow
from okeguard.config import Config, ExceptionsConfig
from okeguard.exception_governance import (
    FAR_FUTURE,
    ExceptionRefused,
    Waiver,
    add_governed,
    decide_governed,
    remove_governed,
)
from okeguard.scanning import scan_inventory
from tests.helpers import inventory
from tests.integration.database import Database

ALICE, BOB, CAROL, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0MALLORY"
STALE = "k8s.stale-secret"
LIMIT = ExceptionsConfig(max_days=30)


def _config(**slack: Any) -> Config:
    return Config.model_validate(
        {
            "clusters": [{"name": "a"}, {"name": "b"}],
            "slack": {"approvers": {"users": [BOB, CAROL]}, **slack},
            "cli": {"approvers": [{"uid": 1000, "name": "alice", "slack_user": ALICE}]},
        }
    )


RULES = ApprovalRules.of(_config())


def _slack(user: str, rules: ApprovalRules = RULES) -> Person:
    return slack_person(user, rules.cli)


def _waiver(days: float | None = 10, **selector: str) -> Waiver:
    expires = utcnow() + timedelta(days=days) if days is not None else None
    return Waiver(STALE, "rotated by the vendor", expires, **selector)


def _events(database: Database, action: str) -> list[AuditEvent]:
    with database.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _refused(database: Database, call: Any, needle: str) -> None:
    before = len(_events(database, "exception.refused"))
    with pytest.raises(ExceptionRefused) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)
    refusals = _events(database, "exception.refused")
    assert len(refusals) == before + 1 and needle in refusals[-1].payload


def test_every_exception_expires_within_the_limit(database: Database) -> None:
    mallory = _slack(MALLORY)

    def add(waiver: Waiver) -> Any:
        return lambda: add_governed(database.sessions, waiver, mallory, RULES, LIMIT)

    _refused(database, add(_waiver(None, cluster="a")), "an exception must expire, at most 30")
    _refused(database, add(_waiver(31, cluster="a")), "lasts at most 30 days (exceptions.max_days)")
    huge = Waiver(STALE, "forever", FAR_FUTURE, cluster="a")
    _refused(database, add(huge), "choose an expiry by")
    _refused(database, add(_waiver(-1, cluster="a")), "in the past")
    rule = add_governed(database.sessions, _waiver(30, cluster="a"), mallory, RULES, LIMIT)
    assert (rule.state, rule.author, rule.approved_by) == ("active", "slack:U0MALLORY", None)
    assert [e.actor for e in _events(database, "exception.refused")] == ["slack:U0MALLORY"] * 4
    with database.sessions() as session:
        assert verify_chain(session) is None
        assert crosscheck(session) == []


def _record(database: Database) -> dict[str, str]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "creationTimestamp": "2020-01-01T00:00:00Z",
        },
    }
    now = utcnow()
    report = scan_inventory(inventory([secret], whole_cluster=True, cluster="a"), Config(), now=now)
    with database.sessions.begin() as session:
        record_scan(session, report, actor="cli:alice", started_by="test", now=now)
    with database.sessions() as session:
        return {r.check_id: r.status for r in session.scalars(select(FindingRecord))}


def test_a_fleet_wide_exception_waits_for_an_approver_then_exempts(database: Database) -> None:
    # `*` parts count as unset: no cluster and no resource name is fleet-wide
    waiver = _waiver(10, cluster="*", namespace="shop", name="*")
    assert waiver.fleet_wide
    pending = add_governed(database.sessions, waiver, _slack(MALLORY), RULES, LIMIT)
    assert (pending.state, pending.cluster, pending.resource_name) == (
        "pending-approval",
        None,
        None,
    )
    assert _record(database)[STALE] == "open"  # waiting: it exempts nothing

    rid = pending.id
    _refused(
        database,
        lambda: decide_governed(database.sessions, rid, _slack(MALLORY), RULES, approve=True),
        "slack:U0MALLORY may not approve",
    )
    approved = decide_governed(database.sessions, rid, _slack(CAROL), RULES, approve=True)
    assert (approved.state, approved.approved_by) == ("active", "slack:U0CAROL")
    assert approved.approved_at is not None
    assert _record(database)[STALE] == "exempt"
    # a second approval acts no more
    _refused(
        database,
        lambda: decide_governed(database.sessions, rid, _slack(BOB), RULES, approve=True),
        "is active, not pending approval",
    )
    assert len(_events(database, "exception.approved")) == 1
    # an approver's own fleet-wide exception needs no second approver
    own = add_governed(database.sessions, _waiver(5), _slack(BOB), RULES, LIMIT)
    assert (own.state, own.approved_by) == ("active", "slack:U0BOB")
    with database.sessions() as session:
        assert verify_chain(session) is None
        assert crosscheck(session) == []


def test_the_author_never_approves_their_waiver_under_another_name(database: Database) -> None:
    # Alice is no Slack approver: her fleet-wide waiver, made in Slack, waits ...
    rule = add_governed(database.sessions, _waiver(), _slack(ALICE), RULES, LIMIT)
    assert rule.state == "pending-approval"
    # ... and she may approve on the command line (uid 1000), but not her own
    alice_cli = cli_person(1000, RULES.cli)
    _refused(
        database,
        lambda: decide_governed(database.sessions, rule.id, alice_cli, RULES, approve=True),
        "a requester cannot approve their own request (requested as slack:U0ALICE)",
    )
    # the same for a waiver she made on the command line before her uid was mapped
    unmapped = cli_person(1000, ApprovalRules().cli)
    early = add_governed(database.sessions, _waiver(), unmapped, RULES, LIMIT)
    assert (early.author, early.state) == ("uid:1000", "pending-approval")
    _refused(
        database,
        lambda: decide_governed(database.sessions, early.id, alice_cli, RULES, approve=True),
        "(requested as uid:1000)",
    )
    # a waiver someone else made, she approves
    other = add_governed(database.sessions, _waiver(), _slack(MALLORY), RULES, LIMIT)
    done = decide_governed(database.sessions, other.id, alice_cli, RULES, approve=True)
    assert (done.state, done.approved_by) == ("active", "cli:alice")


def test_approving_a_fleet_wide_waiver_needs_an_approver_of_every_cluster(
    database: Database,
) -> None:
    rules = ApprovalRules.of(_config(approvers_by_cluster={"a": {"users": [CAROL]}}))
    # Bob approves in general but not for cluster a: his own waiver waits, and he cannot approve
    mine = add_governed(database.sessions, _waiver(), _slack(BOB, rules), rules, LIMIT)
    assert mine.state == "pending-approval"
    other = add_governed(database.sessions, _waiver(), _slack(MALLORY, rules), rules, LIMIT)
    _refused(
        database,
        lambda: decide_governed(
            database.sessions, other.id, _slack(BOB, rules), rules, approve=True
        ),
        "may not approve for cluster a (not in slack.approvers_by_cluster.a)",
    )
    done = decide_governed(database.sessions, other.id, _slack(CAROL, rules), rules, approve=True)
    assert done.state == "active"
    # a waiver on one resource of cluster b needs no approval at all
    one = add_governed(
        database.sessions, _waiver(cluster="b", name="web"), _slack(MALLORY, rules), rules, LIMIT
    )
    assert one.state == "active"


def test_reject_expiry_and_ids_that_cannot_exist(database: Database) -> None:
    rule = add_governed(database.sessions, _waiver(1), _slack(MALLORY), RULES, LIMIT)
    _refused(
        database,
        lambda: decide_governed(
            database.sessions,
            rule.id,
            _slack(CAROL),
            RULES,
            approve=True,
            now=utcnow() + timedelta(days=2),
        ),
        "expired before it was approved",
    )
    _refused(
        database,
        lambda: decide_governed(database.sessions, rule.id, _slack(MALLORY), RULES, approve=False),
        "may not approve",
    )
    rejected = decide_governed(
        database.sessions, rule.id, _slack(BOB), RULES, approve=False, reason="too broad"
    )
    assert (rejected.state, rejected.approved_by) == ("rejected", None)
    [event] = _events(database, "exception.rejected")
    assert event.actor == "slack:U0BOB" and "too broad" in event.payload
    for huge in (2**31, 2**63, 10**40):
        _refused(
            database,
            lambda huge=huge: remove_governed(database.sessions, huge, _slack(BOB)),
            f"no exception {huge}",
        )
        _refused(
            database,
            lambda huge=huge: decide_governed(
                database.sessions, huge, _slack(BOB), RULES, approve=True
            ),
            f"no exception {huge}",
        )
    _refused(database, lambda: remove_governed(database.sessions, 0, _slack(BOB)), "no exception 0")
    removed = remove_governed(database.sessions, rule.id, _slack(MALLORY))
    assert removed.check_id == STALE
    _refused(
        database,
        lambda: remove_governed(database.sessions, rule.id, _slack(MALLORY)),
        f"no exception {rule.id}",
    )
    with database.sessions() as session:
        assert session.scalars(select(ExceptionRule)).all() == []
        assert verify_chain(session) is None
        assert crosscheck(session) == []


def test_two_simultaneous_approvals_act_once(database: Database) -> None:
    rule = add_governed(database.sessions, _waiver(), _slack(MALLORY), RULES, LIMIT)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(user: str) -> None:
        barrier.wait()
        try:
            decide_governed(database.sessions, rule.id, _slack(user), RULES, approve=True)
            outcomes.append("approved")
        except ExceptionRefused as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=approve, args=(u,)) for u in (BOB, CAROL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes)[0] == "approved" and len(outcomes) == 2
    assert outcomes.count("approved") == 1, outcomes
    assert len(_events(database, "exception.approved")) == 1
    # the store's compare-and-set itself: the second call changes nothing
    with database.sessions.begin() as session:
        assert not decide_exception(session, rule.id, "slack:U0BOB", approve=False)
    with database.sessions() as session:
        assert session.get(ExceptionRule, rule.id).state == "active"  # type: ignore[union-attr]
        assert verify_chain(session) is None
        assert crosscheck(session) == []
