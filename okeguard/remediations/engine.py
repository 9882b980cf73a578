"""Running a plan: every step audited before and after it writes, verified, rolled back on failure.

Each operation's ``action`` names an :class:`Action` registered with ``@action(name)``. For step
*i*, the runner:

1. appends ``remediation.step.started`` (the operation and its precomputed ``undo``), so a crash
   during the write still leaves a trail that :func:`reconcile_steps` can follow;
2. asks the action for a server-side dry run where the API has one
   (``remediation.step.dry-run``);
3. writes (``remediation.step.applied`` with the action's result: new ids, versions, etags);

then verifies every step (``remediation.verified``). A call failing transiently (a 429, a 5xx of
a read: ``retrying.py``) is retried first, each retry recorded (``remediation.retried``, with its
step and phase), so a busy API server does not undo a good fix. A failed write or verification
rolls back the steps already applied, newest first (``remediation.step.rolled-back``). An undo that is
refused — the object changed since the step wrote it (:class:`UndoRefused`), or the step cannot
be undone — stops the rollback there: what is still in effect is recorded in
``remediation.rollback-incomplete`` and the run ends ``failed``, never ``rolled-back``. Audit
events are appended through ``emit``, which commits each one at once: the trail survives a crash.

Retried OCI creates carry an ``opc-retry-token`` derived from the request, the plan hash and the
step (:func:`retry_token`), so a step replayed after a crash never creates twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from okeguard.config import RemediationConfig
from okeguard.errors import OkeguardError
from okeguard.remediations.plan import Operation, Plan
from okeguard.remediations.registry import Registry, load_catalogue
from okeguard.remediations.retrying import Retrier, RetryPolicy, reporting_to
from okeguard.remediations.steps import NotUndone, Outcome, StepState, incomplete_reason

Emit = Callable[[str, Mapping[str, Any]], None]
Where = dict[str, Any]  # the step and phase that retries are recorded under


class StepFailed(OkeguardError):
    """A write was refused or failed. ``wrote_nothing`` is True when the API refused it outright
    (a failed precondition, a stale etag, a conflict); False when it may have landed (a timeout,
    a 5xx), in which case rollback first looks at the live state."""

    def __init__(self, message: str, *, wrote_nothing: bool = True) -> None:
        super().__init__(message)
        self.wrote_nothing = wrote_nothing


class UndoRefused(StepFailed):
    """A step took effect but its object changed since (or the live state cannot tell whether it
    took effect): undoing it would overwrite someone else's change, so it is left as it is."""


class VerifyFailed(OkeguardError):
    """The change was made but the result is not healthy (a crash-looping rollout, say)."""


class SimulatedCrash(BaseException):
    """Raised by the crash-injection seam (``crash_after``) to stop a run between two steps.

    A BaseException, so no ``except Exception`` on the way catches it: the process 'dies' there.
    """


@dataclass
class Backends:
    """What the actions write through, and how patiently they wait."""

    settings: RemediationConfig
    kube: Any = None  # okeguard.remediations.kube_writer.KubeWriter
    oci: Any = None  # okeguard.remediations.oci_writer.OciWriter
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    request_id: int = 0
    plan_hash: str = ""
    # Called right before every write and undo: raises (``lease.LeaseLost``) once the run no
    # longer owns its request, so a run taken over by another process writes nothing more.
    guard: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        policy = RetryPolicy.from_settings(self.settings)
        for retrier in self._retriers():
            retrier.policy = policy

    def _retriers(self) -> list[Retrier]:
        found = (getattr(writer, "retrier", None) for writer in (self.kube, self.oci))
        return [r for r in found if isinstance(r, Retrier)]

    def retries_recorded(self, emit: Emit, where: Mapping[str, Any]) -> ContextManager[None]:
        """While inside, every retry of a writer is appended (before its wait) as
        ``remediation.retried``: the retry's call, status, try and wait, and ``where`` (the step
        and phase, kept current by the caller)."""
        return reporting_to(
            self._retriers(), lambda note: emit("remediation.retried", {**where, **note.payload()})
        )

    def wait_until(self, what: str, probe: Callable[[], tuple[bool, str]], timeout: float) -> str:
        """Poll ``probe`` (-> (done, status text)) until done; raise VerifyFailed on timeout."""
        deadline = self.clock() + timeout
        while True:
            self.guard()  # a run taken over while it waits stops here, not after the wait
            done, status = probe()
            if done:
                return status
            if self.clock() >= deadline:
                raise VerifyFailed(f"{what} did not finish within {timeout:g} s: {status}")
            self.sleep(self.settings.poll_interval_seconds)


class Action(Protocol):
    """One kind of operation. ``record`` is what ``run`` returned (None if a crash lost it)."""

    def dry_run(self, op: Operation, backends: Backends) -> None: ...

    def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]: ...

    def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None: ...

    def in_effect(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> bool: ...

    def revert(
        self, op: Operation, backends: Backends, record: Mapping[str, Any] | None, token: str
    ) -> dict[str, Any]: ...


A = TypeVar("A", bound=Action)
# operation name -> action; filled by ``@action`` in the modules ``catalogue.py`` imports
ACTIONS: Registry[Action] = Registry("operation", load=load_catalogue)


def action(name: str, *, registry: Registry[Action] = ACTIONS) -> Callable[[type[A]], type[A]]:
    """Class decorator: register an instance of the decorated :class:`Action` as ``name``."""

    def register(cls: type[A]) -> type[A]:
        registry.add(name, cls())
        return cls

    return register


def action_for(op: Operation, registry: Registry[Action] = ACTIONS) -> Action:
    """The action that runs ``op``; StepFailed when no action has its name."""
    found = registry.get(op.action)
    if found is None:
        raise StepFailed(f"unknown operation {op.action!r} in the plan")
    return found


def retry_token(request_id: int, plan_hash: str, step: int) -> str:
    """The idempotency token of a step: the same on every retry of that step, unique otherwise."""
    digest = hashlib.sha256(f"{request_id}:{plan_hash}:{step}".encode()).hexdigest()
    return f"okeguard-{request_id}-{step}-{digest[:32]}"


def _step_payload(index: int, op: Operation, **extra: Any) -> dict[str, Any]:
    return {"step": index, "action": op.action, "target": dict(op.target), **extra}


def execute_plan(
    plan: Plan,
    backends: Backends,
    emit: Emit,
    *,
    crash_after: int | None = None,
    registry: Registry[Action] = ACTIONS,
) -> Outcome:
    """Run ``plan``'s operations in order, verify, and roll back on failure (see module doc).

    ``crash_after`` (tests only) raises :class:`SimulatedCrash` right after that step's write,
    before its ``applied`` event: the worst moment, when only ``started`` is on record.
    """
    where: Where = {}
    with backends.retries_recorded(emit, where):
        return _execute(plan, backends, emit, where, crash_after, registry)


def _execute(
    plan: Plan,
    backends: Backends,
    emit: Emit,
    where: Where,
    crash_after: int | None,
    registry: Registry[Action],
) -> Outcome:
    done: list[StepState] = []
    for index, op in enumerate(plan.operations):
        act = action_for(op, registry)
        token = retry_token(backends.request_id, backends.plan_hash, index)
        emit(
            "remediation.step.started",
            _step_payload(index, op, undo=dict(op.undo), reversible=op.reversible),
        )
        state = StepState(index, op)
        done.append(state)
        where.update(step=index, action=op.action, phase="dry-run")
        try:
            act.dry_run(op, backends)
            emit("remediation.step.dry-run", _step_payload(index, op, ok=True))
            where["phase"] = "write"
            backends.guard()
            state.record = act.run(op, backends, token)
        except OkeguardError as exc:
            refused = not isinstance(exc, StepFailed) or exc.wrote_nothing
            emit(
                "remediation.step.failed", _step_payload(index, op, error=str(exc), refused=refused)
            )
            if refused:
                done.pop()  # the API refused the write: nothing to undo for this step
            return _undo(done, backends, emit, f"step {index + 1} ({op.action}): {exc}", registry)
        if crash_after == index:
            raise SimulatedCrash(f"crash injected after step {index}")
        emit("remediation.step.applied", _step_payload(index, op, result=state.record))
    try:
        verify_steps(done, backends, where, registry=registry)
    except OkeguardError as exc:
        emit("remediation.verify-failed", {"error": str(exc)})
        return _undo(done, backends, emit, f"verification failed: {exc}", registry)
    emit("remediation.verified", {"steps": len(done)})
    return Outcome("applied", None, done, verified=True)


def _undo(
    done: Sequence[StepState],
    backends: Backends,
    emit: Emit,
    reason: str,
    registry: Registry[Action],
) -> Outcome:
    if not done:
        return Outcome("failed", reason, [])
    not_undone = revert_steps(done, backends, emit, registry=registry)
    if not_undone:
        return Outcome("failed", incomplete_reason(reason, not_undone), [])
    return Outcome("rolled-back", reason, list(done))


def revert_steps(
    steps: Sequence[StepState],
    backends: Backends,
    emit: Emit,
    *,
    only_in_effect: bool = False,
    registry: Registry[Action] = ACTIONS,
) -> list[NotUndone]:
    """Undo ``steps`` newest first; returns what was left in effect (empty: all reverted).

    With ``only_in_effect`` (reconciliation), a step is reverted only when the live state shows
    it took effect; a step that never landed is recorded as such. The first step that cannot be
    undone (irreversible, refused because its object changed since, or failing) stops the
    rollback: the steps before it stay in effect too, because undoing them under it could break
    the target. Those are recorded together in ``remediation.rollback-incomplete``.
    """
    where: Where = {}
    with backends.retries_recorded(emit, where):
        return _revert(list(reversed(steps)), backends, emit, where, only_in_effect, registry)


def _revert(
    pending: list[StepState],
    backends: Backends,
    emit: Emit,
    where: Where,
    only_in_effect: bool,
    registry: Registry[Action],
) -> list[NotUndone]:
    for position, state in enumerate(pending):
        op, index = state.op, state.index
        where.update(step=index, action=op.action, phase="undo")
        act = action_for(op, registry)
        token = retry_token(backends.request_id, backends.plan_hash, index)
        try:
            check_live = only_in_effect or state.record is None
            if check_live and not act.in_effect(op, backends, state.record, token):
                emit("remediation.step.not-in-effect", _step_payload(index, op))
                continue
            if not op.reversible:
                emit("remediation.step.irreversible", _step_payload(index, op))
                why = "it cannot be undone (it deleted or replaced something for good)"
                first = NotUndone(index, op, why)
                return _left_in_effect(
                    first, pending[position + 1 :], backends, emit, where, registry
                )
            backends.guard()
            result = act.revert(op, backends, state.record, token)
        except OkeguardError as exc:
            emit("remediation.step.rollback-failed", _step_payload(index, op, error=str(exc)))
            first = NotUndone(index, op, f"could not be undone: {exc}")
            return _left_in_effect(first, pending[position + 1 :], backends, emit, where, registry)
        emit("remediation.step.rolled-back", _step_payload(index, op, result=result))
    return []


def _left_in_effect(
    first: NotUndone,
    earlier: Sequence[StepState],
    backends: Backends,
    emit: Emit,
    where: Where,
    registry: Registry[Action],
) -> list[NotUndone]:
    """``first`` and the earlier steps still in effect (asked of the live state, reads only);
    recorded as ``remediation.rollback-incomplete``."""
    left = [first]
    for state in earlier:
        where.update(step=state.index, action=state.op.action, phase="check")
        token = retry_token(backends.request_id, backends.plan_hash, state.index)
        try:
            live = action_for(state.op, registry).in_effect(state.op, backends, state.record, token)
        except OkeguardError as exc:
            live, why = True, f"not undone (a later step could not be), and {exc}"
        else:
            why = "still in effect: not undone under a later step that could not be"
        if live:
            left.append(NotUndone(state.index, state.op, why))
    emit("remediation.rollback-incomplete", {"not_undone": [n.payload() for n in left]})
    return left


def verify_steps(
    steps: Sequence[StepState],
    backends: Backends,
    where: Where | None = None,
    *,
    registry: Registry[Action] = ACTIONS,
) -> None:
    """Verify every step (VerifyFailed/StepFailed on the first that is not healthy); ``where``
    (see :meth:`Backends.retries_recorded`) is kept naming the step being verified."""
    for state in steps:
        if where is not None:
            where.update(step=state.index, action=state.op.action, phase="verify")
        action_for(state.op, registry).verify(state.op, backends, state.record or {})


def all_in_effect(
    plan: Plan,
    steps: Sequence[StepState],
    backends: Backends,
    *,
    registry: Registry[Action] = ACTIONS,
) -> bool:
    """Whether every operation of ``plan`` was started and shows in the live state."""
    if len(steps) != len(plan.operations):
        return False
    for state in steps:
        token = retry_token(backends.request_id, backends.plan_hash, state.index)
        try:
            if not action_for(state.op, registry).in_effect(
                state.op, backends, state.record, token
            ):
                return False
        except UndoRefused:
            return False  # changed since: not the run's result; the undo path reports it
    return True
