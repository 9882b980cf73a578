"""Compare-and-set transitions of remediation requests, and the approval race on PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from okeguard.audit.chain import chain_length, verify_chain
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.models import AuditEvent, RemediationRequest, RequestState
from okeguard.audit.stores import TransitionError, create_request, plan_hash, transition
from okeguard.audit.types import utcnow
from tests.integration.database import Database

S = RequestState
PLAN = {"operations": [{"op": "replace", "path": "/spec/x", "value": 1}]}


def _pending(database: Database) -> int:
    with database.sessions.begin() as session:
        request = create_request(
            session, plan=PLAN, requester="alice", finding_fingerprint="f" * 64
        )
        assert transition(session, request.id, S.PROPOSED, S.PENDING_APPROVAL, "alice")
        return request.id


def test_the_happy_path_records_every_step(database: Database) -> None:
    request_id = _pending(database)
    steps = [
        (S.PENDING_APPROVAL, S.APPROVED, {"approver": "bob", "decided_at": utcnow()}),
        (S.APPROVED, S.APPLYING, {}),
        (S.APPLYING, S.APPLIED, {"applied_at": utcnow()}),
    ]
    for expected, new, fields in steps:
        with database.sessions.begin() as session:
            assert transition(session, request_id, expected, new, "bob", **fields)
    with database.sessions() as session:
        request = session.get(RemediationRequest, request_id)
        assert request is not None
        assert request.state == "applied" and request.approver == "bob"
        assert request.plan == PLAN and request.plan_hash == plan_hash(PLAN)
        assert request.applied_at is not None and request.applied_at.tzinfo is not None
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions == [
            "remediation.proposed",
            "remediation.pending-approval",
            "remediation.approved",
            "remediation.applying",
            "remediation.applied",
        ]
        assert verify_chain(session) is None


def test_a_lost_compare_and_set_writes_nothing(database: Database) -> None:
    request_id = _pending(database)
    with database.sessions.begin() as session:
        assert transition(session, request_id, S.PENDING_APPROVAL, S.REJECTED, "carol")
    with database.sessions.begin() as session:
        assert not transition(session, request_id, S.PENDING_APPROVAL, S.APPROVED, "bob")
    with database.sessions() as session:
        assert session.get(RemediationRequest, request_id).state == "rejected"  # type: ignore[union-attr]
        assert chain_length(session) == 3


@pytest.mark.parametrize(
    ("expected", "new"),
    [(S.PROPOSED, S.APPROVED), (S.PENDING_APPROVAL, S.APPLIED), (S.REJECTED, S.APPROVED)],
)
def test_forbidden_transitions_are_refused(
    database: Database, expected: RequestState, new: RequestState
) -> None:
    request_id = _pending(database)
    with database.sessions.begin() as session, pytest.raises(TransitionError):
        transition(session, request_id, expected, new, "bob")


def test_a_transition_cannot_touch_the_plan(database: Database) -> None:
    request_id = _pending(database)
    with database.sessions.begin() as session, pytest.raises(TransitionError, match="plan"):
        transition(session, request_id, S.PENDING_APPROVAL, S.APPROVED, "bob", plan={})


@pytest.mark.slow
def test_simultaneous_approvals_have_exactly_one_winner(postgres_url: str) -> None:
    from okeguard.audit import schema

    schema.upgrade(postgres_url)
    threads, rounds = 20, 30
    engine = make_engine(postgres_url, pool_size=threads + 2, max_overflow=0)
    database = Database(postgres_url, engine, session_factory(engine))
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in range(rounds):
                request_id = _pending(database)
                barrier = threading.Barrier(threads)

                def approve(
                    n: int, request_id: int = request_id, b: threading.Barrier = barrier
                ) -> bool:
                    b.wait()
                    with database.sessions.begin() as session:
                        return transition(
                            session,
                            request_id,
                            S.PENDING_APPROVAL,
                            S.APPROVED,
                            f"user{n}",
                            approver=f"user{n}",
                        )

                results = list(pool.map(approve, range(threads)))
                assert results.count(True) == 1, results
                with database.sessions() as session:
                    approvals = session.scalar(
                        select(func.count())
                        .select_from(AuditEvent)
                        .where(
                            AuditEvent.action == "remediation.approved",
                            AuditEvent.subject_id == str(request_id),
                        )
                    )
                    assert approvals == 1
                    winner = f"user{results.index(True)}"
                    assert session.get(RemediationRequest, request_id).approver == winner  # type: ignore[union-attr]
        with database.sessions() as session:
            assert chain_length(session) == rounds * 3
            assert verify_chain(session) is None
    finally:
        engine.dispose()
    print(f"race: {threads} threads x {rounds} rounds in {time.monotonic() - started:.2f}s")
