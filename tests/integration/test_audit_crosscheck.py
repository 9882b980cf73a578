"""The state tables cross-checked against the audit chain, on SQLite and PostgreSQL: requests
and exceptions changed behind okeguard's back with raw SQL are named, one line each."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from okeguard.audit.crosscheck import crosscheck
from okeguard.audit.models import RequestState
from okeguard.audit.stores import (
    add_exception,
    create_request,
    plan_hash,
    remove_exception,
    transition,
)
from okeguard.audit.trust import verify_trail
from okeguard.audit.types import utcnow
from tests.integration.database import Database

S = RequestState
PLAN = {"operations": [{"op": "replace", "path": "/spec/replicas", "value": 1}]}
EVIL = {"operations": [{"op": "replace", "path": "/spec/privileged", "value": True}]}


def _sql(database: Database, statement: str, **params: Any) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(statement), params)


def _problems(database: Database) -> list[str]:
    with database.sessions() as session:
        return [str(m) for m in crosscheck(session)]


def _request(database: Database, until: RequestState, *, named: str | None = "stored") -> int:
    """A request walked through the real transitions up to ``until``."""
    with database.sessions.begin() as session:
        request = create_request(session, plan=PLAN, requester="alice")
        rid = request.id
        transition(session, rid, S.PROPOSED, S.PENDING_APPROVAL, "alice")
        if until is S.PENDING_APPROVAL:
            return rid
        extra = (
            {} if named is None else {"plan_hash": plan_hash(PLAN) if named == "stored" else named}
        )
        transition(session, rid, S.PENDING_APPROVAL, S.APPROVED, "bob", approver="bob", **extra)
        if until is S.APPROVED:
            return rid
        transition(session, rid, S.APPROVED, S.APPLYING, "bob")
        transition(session, rid, S.APPLYING, S.APPLIED, "bob", applied_at=utcnow())
    return rid


def test_requests_moved_by_okeguard_agree_with_the_chain(database: Database) -> None:
    _request(database, S.PENDING_APPROVAL)
    _request(database, S.APPLIED)
    _request(database, S.APPROVED, named=None)  # an approval event from before plan_hash
    with database.sessions() as session:
        report = verify_trail(session, keys=None, anchors=[])
    assert report.ok and report.requests == 3
    assert report.confirmed()[-1] == (
        "OK: 3 remediation requests and 0 exceptions agree with the audit chain"
    )


def test_a_request_approved_by_a_direct_update_is_named(database: Database) -> None:
    rid = _request(database, S.PENDING_APPROVAL)
    _sql(database, "UPDATE remediation_requests SET state = 'approved', approver = 'mallory'")
    problems = _problems(database)
    assert f"remediation request {rid}: state is approved but the chain has no approval event" in (
        problems
    )
    assert any(
        p.startswith(f"remediation request {rid}: state is approved but its newest state change")
        and p.endswith("is to pending-approval")
        for p in problems
    )
    assert len(problems) == 2


def test_an_approver_changed_in_the_table_is_named(database: Database) -> None:
    rid = _request(database, S.APPLIED)
    _sql(database, "UPDATE remediation_requests SET approver = 'mallory'")
    (problem,) = _problems(database)
    assert problem.startswith(f"remediation request {rid}: approver is mallory but the chain's")
    assert problem.endswith("was by bob")


def test_a_plan_rewritten_in_the_database_is_named(database: Database) -> None:
    rid = _request(database, S.APPROVED)
    # plan edited, plan_hash column left alone: the stored plan no longer hashes to it
    _sql(database, "UPDATE remediation_requests SET plan = :p", p=json.dumps(EVIL))
    (problem,) = _problems(database)
    assert problem == (
        f"remediation request {rid}: its stored plan hashes to {plan_hash(EVIL)[:12]}… but its "
        f"plan_hash column says {plan_hash(PLAN)[:12]}… (plan edited in the database)"
    )
    # plan_hash rewritten too: the proposal and the approval still name the original
    _sql(database, "UPDATE remediation_requests SET plan_hash = :h", h=plan_hash(EVIL))
    problems = _problems(database)
    assert len(problems) == 2
    assert problems[0].startswith(f"remediation request {rid}: plan_hash is {plan_hash(EVIL)[:12]}")
    assert "remediation.proposed event" in problems[0]
    assert problems[1].startswith(f"remediation request {rid}: its approval (event")
    assert f"names plan hash {plan_hash(PLAN)[:12]}…" in problems[1]


def test_an_approval_naming_another_hash_is_named(database: Database) -> None:
    rid = _request(database, S.APPROVED, named="9" * 64)
    (problem,) = _problems(database)
    assert problem.startswith(f"remediation request {rid}: its approval (event")
    assert "names plan hash 999999999999…" in problem


def test_a_request_row_deleted_or_inserted_is_named(database: Database) -> None:
    rid = _request(database, S.PENDING_APPROVAL)
    _sql(database, "DELETE FROM remediation_requests")
    (problem,) = _problems(database)
    assert problem.startswith(f"remediation request {rid}: the chain proposed it (event 1)")
    _sql(
        database,
        "INSERT INTO remediation_requests (id, state, plan, plan_hash, requester, created_at,"
        " updated_at) VALUES (:id, 'approved', :p, :h, 'mallory', :t, :t)",
        id=rid,
        p=json.dumps(PLAN),
        h=plan_hash(PLAN),
        t=utcnow(),
    )
    assert f"remediation request {rid}: state is approved but the chain has no approval event" in (
        _problems(database)
    )


def _exception(database: Database, **kwargs: Any) -> int:
    with database.sessions.begin() as session:
        rule = add_exception(
            session,
            check_id="k8s.host-path",
            reason="reads /var/log",
            author="alice",
            cluster="prod",
            namespace="logging",
            name="fluent-bit",
            expires_at=utcnow() + timedelta(days=30),
            **kwargs,
        )
        return rule.id


def test_exceptions_changed_behind_okeguards_back_are_named(database: Database) -> None:
    kept = _exception(database)
    widened = _exception(database)
    extended = _exception(database)
    assert _problems(database) == []
    _sql(database, "UPDATE exceptions SET resource_name = NULL WHERE id = :id", id=widened)
    _sql(database, "UPDATE exceptions SET check_id = 'k8s.privileged' WHERE id = :id", id=kept)
    _sql(
        database,
        "UPDATE exceptions SET expires_at = :t WHERE id = :id",
        t=utcnow() + timedelta(days=3650),
        id=extended,
    )
    problems = _problems(database)
    assert len(problems) == 3
    assert problems[0].startswith(
        f"exception {kept}: check id is k8s.privileged but its exception.added event"
    )
    assert problems[1].startswith(f'exception {widened}: selector is {{"cluster": "prod"')
    assert '"name": null' in problems[1] and '"name": "fluent-bit"' in problems[1]
    assert problems[2].startswith(f"exception {extended}: expires_at is ")


def test_an_exception_inserted_removed_or_deleted_in_the_database_is_named(
    database: Database,
) -> None:
    removed = _exception(database)
    deleted = _exception(database)
    with database.sessions.begin() as session:
        remove_exception(session, removed, "bob")
    _sql(database, "DELETE FROM exceptions WHERE id = :id", id=deleted)
    _sql(
        database,
        "INSERT INTO exceptions (id, check_id, cluster, reason, author, created_at, state)"
        " VALUES (:id, 'k8s.privileged', 'prod', 'x', 'mallory', :t, 'active')",
        id=removed,
        t=utcnow(),
    )
    _sql(
        database,
        "INSERT INTO exceptions (id, check_id, reason, author, created_at, state)"
        " VALUES (99, 'k8s.privileged', 'x', 'mallory', :t, 'active')",
        t=utcnow(),
    )
    assert _problems(database) == [
        f"exception {removed}: the chain removed it (event 3) but the row still exists",
        "exception 99: the chain has no exception.added event for it (row inserted?)",
        f"exception {deleted}: the chain added it (event 2) and never removed it, but the table "
        "has no such row (row deleted)",
    ]


def test_a_pending_exception_activated_by_a_direct_update_is_named(database: Database) -> None:
    from okeguard.audit.stores import decide_exception  # exceptions that need an approver

    pending = _exception(database, state="pending-approval")
    approved = _exception(database, state="pending-approval")
    with database.sessions.begin() as session:
        assert decide_exception(session, approved, "carol", approve=True)
    assert _problems(database) == []
    _sql(
        database,
        "UPDATE exceptions SET state = 'active', approved_by = 'mallory' WHERE id = :id",
        id=pending,
    )
    _sql(database, "UPDATE exceptions SET approved_by = 'mallory' WHERE id = :id", id=approved)
    assert _problems(database) == [
        f"exception {pending}: state is active but the chain says pending-approval (event 1)",
        f"exception {approved}: approved_by is mallory but the chain says carol (event 3)",
    ]
