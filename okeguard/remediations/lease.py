"""One owner per remediation run: a lease claimed by compare-and-set and renewed while it works.

A run (apply, rollback, reconcile) first claims its request: ``owner`` is set to an id unique to
this process and run, ``lease_until`` to now + ``remediation.lease_seconds``, in one
``UPDATE … WHERE state = … AND (lease_until IS NULL OR lease_until < now)``. Another process
claims the same request only once that lease has run out.

While the run works, a heartbeat thread renews the lease every third of its length, and every
audit event of the run is appended in the same transaction as a renewal that checks the owner
(:meth:`RunLease.emit`). The runner also calls :meth:`RunLease.check` right before each write.
The moment a renewal finds another owner, the run stops with :class:`LeaseLost`, a
BaseException that no ``except Exception`` on the way swallows: the loser writes nothing more,
neither to the cluster nor to the request's state.

What a lease cannot recall: a write already on the wire when its process froze for longer than
the lease. The lease shrinks that window to one request; docs/remediations.md says so.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from okeguard.audit.chain import append_event
from okeguard.audit.models import RemediationRequest, RequestState
from okeguard.audit.types import utcnow

SUBJECT = "remediation_request"
R = RemediationRequest


class LeaseLost(BaseException):
    """This run no longer owns its request: another process took it over after the lease ran out.

    A BaseException, like a crash: nothing on the way may catch it and carry on writing.
    """


def new_owner() -> str:
    """An owner id unique to this process and run: ``host:pid:random``."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim(
    session: Session,
    request_id: int,
    states: Iterable[RequestState | str],
    owner: str,
    seconds: float,
    *,
    now: datetime | None = None,
) -> bool:
    """Take ``request_id`` for ``owner`` if it is in one of ``states`` and nobody's lease holds.

    Compare-and-set in the caller's transaction: True when this call won.
    """
    now = now or utcnow()
    result = session.execute(
        update(R)
        .where(
            R.id == request_id,
            R.state.in_([RequestState(s).value for s in states]),
            or_(R.owner.is_(None), R.lease_until.is_(None), R.lease_until < now),
        )
        .values(owner=owner, lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def renew(session: Session, request_id: int, owner: str, seconds: float) -> bool:
    """Extend ``owner``'s lease on ``request_id``; False when someone else owns it now."""
    result = session.execute(
        update(R)
        .where(R.id == request_id, R.owner == owner)
        .values(lease_until=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def release(session: Session, request_id: int, owner: str) -> bool:
    """Give up ``owner``'s lease without changing the state (a run that had nothing to do)."""
    result = session.execute(
        update(R)
        .where(R.id == request_id, R.owner == owner)
        .values(owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


class RunLease:
    """The lease of one run: checked before each write, renewed by a heartbeat and every event."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        request_id: int,
        owner: str,
        seconds: float,
        actor: str,
    ) -> None:
        self.sessions = sessions
        self.request_id = request_id
        self.owner = owner
        self.seconds = seconds
        self.actor = actor
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _renew(self) -> bool:
        with self.sessions.begin() as session:
            held = renew(session, self.request_id, self.owner, self.seconds)
        if not held:
            self.lost.set()
        return held

    def check(self) -> None:
        """Renew now, and raise :class:`LeaseLost` unless this run still owns its request."""
        if self.lost.is_set() or not self._renew():
            raise LeaseLost(f"request {self.request_id}: lease lost by {self.owner}")

    def emit(self, action: str, payload: Mapping[str, Any]) -> None:
        """Append a run event, in one transaction with a renewal that proves ownership."""
        if self.lost.is_set():
            raise LeaseLost(f"request {self.request_id}: lease lost by {self.owner}")
        with self.sessions.begin() as session:
            if not renew(session, self.request_id, self.owner, self.seconds):
                self.lost.set()
                raise LeaseLost(f"request {self.request_id}: lease lost by {self.owner}")
            append_event(session, self.actor, action, (SUBJECT, self.request_id), payload)

    def _beat(self) -> None:
        interval = self.seconds / 3
        while not self._stop.wait(interval):
            try:
                if not self._renew():
                    return
            except (
                Exception
            ):  # the database is away: the lease runs out, and the next check says so
                continue

    def __enter__(self) -> RunLease:
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{self.request_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
