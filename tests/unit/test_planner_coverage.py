"""Every registered check's ``remediation`` names something that can plan it: ``guidance``, or a
key of ``PLANNERS`` whose module imports and whose function is callable with a planner's
arguments. A check registered with a misspelt remediation fails here, not in front of a user."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Iterable

import pytest

from okeguard.checks.registry import CheckSpec, all_checks
from okeguard.remediations.plan import PlanError
from okeguard.remediations.planners import PLANNERS, planner_for

PLANNER_PARAMETERS = 4  # finding, inventory, settings, variant


def unresolved(specs: Iterable[CheckSpec]) -> list[str]:
    """``check id: why`` for every check whose remediation resolves to no usable planner."""
    problems = []
    for spec in specs:
        if spec.remediation == "guidance":
            continue
        if spec.remediation not in PLANNERS:
            problems.append(f"{spec.id}: remediation {spec.remediation!r} is not in PLANNERS")
            continue
        module_name, function_name = PLANNERS[spec.remediation]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            problems.append(f"{spec.id}: module {module_name} does not import ({exc})")
            continue
        planner = getattr(module, function_name, None)
        if not callable(planner):
            problems.append(f"{spec.id}: {module_name}.{function_name} is not callable")
            continue
        try:
            inspect.signature(planner).bind(*range(PLANNER_PARAMETERS))
        except TypeError as exc:
            problems.append(f"{spec.id}: {function_name} is not a planner ({exc})")
    return problems


def test_every_check_remediation_resolves_to_a_planner() -> None:
    specs = all_checks()
    assert len(specs) > 40  # the catalogue was really loaded
    assert unresolved(specs) == []


def test_every_planner_is_used_by_some_check() -> None:
    used = {spec.remediation for spec in all_checks()}
    assert set(PLANNERS) <= used, set(PLANNERS) - used


@pytest.mark.parametrize(
    ("remediation", "planners", "needle"),
    [
        ("add-default-deny-polcy", None, "'add-default-deny-polcy' is not in PLANNERS"),
        ("Guidance", None, "'Guidance' is not in PLANNERS"),
        (
            "add-default-deny-policy",
            {"add-default-deny-policy": ("okeguard.remediations.no_such_module", "plan")},
            "does not import",
        ),
        (
            "add-default-deny-policy",
            {"add-default-deny-policy": ("okeguard.remediations.network_policy", "POLICY_NAME")},
            "is not callable",
        ),
        (
            "add-default-deny-policy",
            {"add-default-deny-policy": ("okeguard.remediations.network_policy", "nothing")},
            "is not callable",
        ),
        (
            "add-default-deny-policy",
            {"add-default-deny-policy": ("okeguard.timestamps", "parse_timestamp")},
            "is not a planner",
        ),
    ],
)
def test_a_broken_remediation_is_caught(
    monkeypatch: pytest.MonkeyPatch,
    remediation: str,
    planners: dict[str, tuple[str, str]] | None,
    needle: str,
) -> None:
    """The check above fails for a misspelt id, a missing module or a missing function."""
    spec = next(s for s in all_checks() if s.id == "k8s.missing-network-policy")
    if planners is not None:
        monkeypatch.setitem(PLANNERS, remediation, planners[remediation])
    [problem] = unresolved([dataclasses.replace(spec, remediation=remediation)])
    assert problem.startswith("k8s.missing-network-policy: ") and needle in problem


def test_the_dispatcher_agrees_with_the_check() -> None:
    """``planner_for`` (what ``okeguard fix`` calls) resolves every remediation in use and refuses
    a misspelt one by name."""
    for remediation in {spec.remediation for spec in all_checks()} - {"guidance"}:
        assert callable(planner_for(remediation))
    with pytest.raises(PlanError, match="unknown remediation 'add-default-deny-polcy'"):
        planner_for("add-default-deny-polcy")
    with pytest.raises(PlanError, match="no automatic fix"):
        planner_for("guidance")
