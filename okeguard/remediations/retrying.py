"""Retrying a transient failure before it can undo a good fix.

A rollout watch that reads a 503 once, or a write answered 429 because the API server was busy,
would otherwise fail the step and roll back a change that was fine. :class:`Retrier` retries
such a call a few times, with backoff, and reports every retry (``on_retry``) so the run's audit
trail shows it. What is retried:

- **429** on any call: the server refused it before doing anything (Kubernetes' priority and
  fairness, OCI throttling), so sending it again cannot apply it twice;
- **5xx** (but 501), a timeout or a reset, on **reads** only (and on server-side dry runs, which
  store nothing): a write answered so may have landed, and sending it again could apply it twice
  or read back a 412 of its own; the rollback looks at the live state instead;
- a connection that could not be made, on any call (the Kubernetes writer tells it apart): the
  request never left.

Never a 409 or a 412 (a precondition failed: the object changed), nor any other 4xx. The wait is
the server's ``Retry-After`` when it names one, else exponential backoff with jitter; a call
gives up after ``RemediationConfig.retry_attempts`` tries or ``retry_max_seconds`` in all,
including a ``Retry-After`` that would run past it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from okeguard.config import RemediationConfig

READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one call is retried (see the module doc)."""

    attempts: int = 4  # tries in all, the first included; 1: no retries
    total_seconds: float = 30.0  # tries and waits of one call together
    base_seconds: float = 0.5  # the first backoff; it doubles, with jitter
    max_wait_seconds: float = 8.0  # the longest backoff (a Retry-After may be longer)

    @classmethod
    def from_settings(cls, settings: RemediationConfig) -> RetryPolicy:
        return cls(
            attempts=settings.retry_attempts,
            total_seconds=settings.retry_max_seconds,
            base_seconds=settings.retry_base_seconds,
            max_wait_seconds=max(settings.retry_base_seconds, 8.0),
        )

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The pause before retry number ``retry`` (1 = the first): half of the doubled base
        (capped), plus a random part of the other half ("equal jitter")."""
        ceiling = min(self.max_wait_seconds, self.base_seconds * 2.0 ** (retry - 1))
        return float(ceiling / 2 + rand() * ceiling / 2)


def transient(method: str, status: int | None, *, idempotent: bool = False) -> bool:
    """Whether a failure of ``method`` is retried: ``status`` None is a timeout or a reset.
    ``idempotent`` marks a write that stores nothing (a server-side dry run) or never left."""
    if status == 429:
        return True
    read = method.upper() in READ_METHODS or idempotent
    return read and (status is None or (status >= 500 and status != 501))


def parse_retry_after(value: Any, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryNote:
    """One retry: which call failed how, on which try, and how long the run waits."""

    call: str  # "GET /apis/apps/v1/namespaces/shop/deployments/web", "OCI get_cluster"
    status: int | None  # None: a timeout or a reset
    reason: str  # "503", "429 TooManyRequests", "ConnectTimeout"
    attempt: int  # the try that failed, 1-based
    wait_seconds: float
    retry_after: bool  # the wait is the server's Retry-After

    def payload(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "status": self.status,
            "reason": self.reason,
            "attempt": self.attempt,
            "wait_seconds": round(self.wait_seconds, 3),
            "retry_after": self.retry_after,
        }


OnRetry = Callable[[RetryNote], None]


class Retrier:
    """Decides whether and how long to wait before the next try of a call, and reports it.

    A writer holds one; :class:`~okeguard.remediations.engine.Backends` sets its ``policy`` from
    the configuration, and the engine sets ``on_retry`` while a run records its audit trail.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self.on_retry: OnRetry | None = None

    def wait(self, attempt: int, started: float, retry_after: float | None) -> float | None:
        """The pause before try ``attempt + 1`` of a call started at ``started`` (``clock``
        time), or None when the call must give up: out of tries, or the pause would end past
        the time allowed."""
        if attempt >= self.policy.attempts:
            return None
        pause = retry_after if retry_after is not None else self.policy.backoff(attempt, self.rand)
        if self.clock() - started + pause > self.policy.total_seconds:
            return None
        return pause

    def pause(self, note: RetryNote) -> None:
        """Report ``note`` (the audit trail), then wait. A report that raises (the run lost its
        lease) stops the call there."""
        if self.on_retry is not None:
            self.on_retry(note)
        self.sleep(note.wait_seconds)


@contextmanager
def reporting_to(retriers: Sequence[Retrier], on_retry: OnRetry) -> Iterator[None]:
    """While inside, ``retriers`` report to ``on_retry``; their earlier reporters come back
    after."""
    before = [r.on_retry for r in retriers]
    for retrier in retriers:
        retrier.on_retry = on_retry
    try:
        yield
    finally:
        for retrier, previous in zip(retriers, before, strict=True):
            retrier.on_retry = previous
