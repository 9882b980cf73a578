"""The runner finds each operation's action in the registry it is given, so a plan runs against
fake actions without a cluster; the default registry holds every action and refuses a name
registered twice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from okeguard.config import RemediationConfig
from okeguard.remediations.engine import (
    ACTIONS,
    Action,
    Backends,
    StepFailed,
    action,
    action_for,
    execute_plan,
)
from okeguard.remediations.plan import Operation, Plan
from okeguard.remediations.registry import Registry


def _plan(*names: str) -> Plan:
    ops = tuple(Operation(name, {"kind": "Thing", "name": name}, {}, name) for name in names)
    return Plan("fix", "prod", "check", "f" * 32, {}, ops, "")


def _fakes(calls: list[str], *, failing: str = "") -> Registry[Action]:
    registry: Registry[Action] = Registry("operation")
    for name in ("fake.one", "fake.two"):

        @action(name, registry=registry)
        class Fake:
            label = name

            def dry_run(self, op: Operation, backends: Backends) -> None:
                calls.append(f"dry-run {self.label}")

            def run(self, op: Operation, backends: Backends, token: str) -> dict[str, Any]:
                if self.label == failing:
                    raise StepFailed("refused")
                calls.append(f"run {self.label}")
                return {}

            def verify(self, op: Operation, backends: Backends, record: Mapping[str, Any]) -> None:
                calls.append(f"verify {self.label}")

            def in_effect(self, op: Operation, backends: Backends, record: Any, token: str) -> bool:
                return True

            def revert(
                self, op: Operation, backends: Backends, record: Any, token: str
            ) -> dict[str, Any]:
                calls.append(f"revert {self.label}")
                return {}

    return registry


def test_a_plan_runs_the_actions_of_the_registry_it_is_given() -> None:
    calls: list[str] = []
    events: list[str] = []
    outcome = execute_plan(
        _plan("fake.one", "fake.two"),
        Backends(RemediationConfig()),
        lambda name, _payload: events.append(name),
        registry=_fakes(calls),
    )
    assert outcome.state == "applied" and outcome.verified
    assert calls == [
        "dry-run fake.one",
        "run fake.one",
        "dry-run fake.two",
        "run fake.two",
        "verify fake.one",
        "verify fake.two",
    ]
    assert events[-1] == "remediation.verified"


def test_a_refused_step_rolls_back_through_the_same_registry() -> None:
    calls: list[str] = []
    outcome = execute_plan(
        _plan("fake.one", "fake.two"),
        Backends(RemediationConfig()),
        lambda *_: None,
        registry=_fakes(calls, failing="fake.two"),
    )
    assert outcome.state == "rolled-back"
    assert calls[-1] == "revert fake.one"


def test_an_operation_no_action_has_is_refused_by_name() -> None:
    with pytest.raises(StepFailed, match=r"unknown operation 'k8s\.patch' in the plan"):
        action_for(_plan("k8s.patch").operations[0], _fakes([]))
    assert "fake.one" not in ACTIONS and "k8s.patch" in ACTIONS


def test_an_action_name_registered_twice_is_refused() -> None:
    registry = _fakes([])
    found = registry.get("fake.one")
    assert found is not None
    with pytest.raises(ValueError, match=r"operation registered twice: fake\.one"):
        action("fake.one", registry=registry)(type(found))
