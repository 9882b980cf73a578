"""What a run did, step by step: recorded as it runs, rebuilt from its audit events.

The runner (``engine.py``) keeps a :class:`StepState` per started step and ends with an
:class:`Outcome`; a rollback that could not undo everything names what it left in effect
(:class:`NotUndone`, :func:`incomplete_reason`). :func:`steps_from_events` rebuilds the steps
of an earlier run from the audit trail, for a rollback or a reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from okeguard.remediations.plan import Operation, Plan


@dataclass
class StepState:
    index: int
    op: Operation
    record: dict[str, Any] | None = None  # None: started, result unknown


def target_text(target: Mapping[str, Any]) -> str:
    """An operation's target as people name it: ``Deployment shop/web``, ``VaultSecret db``."""
    kind = str(target.get("kind") or "object")
    name = target.get("name") or target.get("id") or target.get("ocid") or "?"
    namespace = target.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass(frozen=True)
class NotUndone:
    """A step a rollback left in effect, and why."""

    index: int
    op: Operation
    why: str

    def payload(self) -> dict[str, Any]:
        return {
            "step": self.index,
            "action": self.op.action,
            "target": dict(self.op.target),
            "why": self.why,
        }

    def __str__(self) -> str:
        return (
            f"step {self.index + 1} ({self.op.action}) on {target_text(self.op.target)}: {self.why}"
        )


def incomplete_reason(reason: str, not_undone: Sequence[NotUndone]) -> str:
    """``reason`` plus what a rollback left in effect, worded as a call for manual action."""
    objects = list(dict.fromkeys(target_text(n.op.target) for n in not_undone))
    steps = "; ".join(str(n) for n in not_undone)
    return (
        f"{reason}; manual action needed: the rollback is incomplete, check "
        f"{', '.join(objects)} by hand ({'it was' if len(objects) == 1 else 'they were'} left "
        f"as found) — {steps}"
    )


@dataclass
class Outcome:
    """How a run ended: ``state`` is the request's final state."""

    state: str  # applied | rolled-back | failed
    reason: str | None = None
    steps: list[StepState] = field(default_factory=list)
    verified: bool = False


def steps_from_events(plan: Plan, events: Sequence[Mapping[str, Any]]) -> list[StepState]:
    """Rebuild what ran from a request's audit events (``action`` and parsed ``payload``):
    every started step, with its result when ``applied`` was recorded, and minus the steps
    already rolled back or refused."""
    steps: dict[int, StepState] = {}
    for event in events:
        payload = event["payload"]
        index = payload.get("step")
        if not isinstance(index, int) or not 0 <= index < len(plan.operations):
            continue
        action = event["action"]
        if action == "remediation.step.started":
            steps[index] = StepState(index, plan.operations[index])
        elif action == "remediation.step.applied" and index in steps:
            steps[index].record = dict(payload.get("result") or {})
        elif action == "remediation.step.rolled-back" or (
            action == "remediation.step.failed" and payload.get("refused", True)
        ):
            steps.pop(index, None)
    return [steps[i] for i in sorted(steps)]
