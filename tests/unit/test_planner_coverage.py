"""Every registered check can be acted on: its ``remediation`` is ``guidance`` (people follow the
docs) or names a registered planner callable with a planner's arguments; every planner serves a
check, and every operation a planner writes names a registered action. A check registered with
a misspelt remediation fails here, not in front of a user."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import pytest

from okeguard.checks.model import Finding, ResourceRef, Severity, Status
from okeguard.checks.registry import CheckSpec, all_checks
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.remediations.engine import ACTIONS
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.planners import (
    GUIDANCE,
    PLANNERS,
    Planner,
    plan_finding,
    planner,
    planner_for,
)
from okeguard.remediations.registry import Registry

PLANNER_PARAMETERS = 4  # finding, inventory, settings, variant
REMEDIATIONS = Path(__file__).resolve().parents[2] / "okeguard" / "remediations"


def unresolved(specs: Iterable[CheckSpec], registry: Registry[Planner] = PLANNERS) -> list[str]:
    """``check id: why`` for every check whose remediation resolves to no usable planner."""
    problems = []
    for spec in specs:
        if spec.remediation == GUIDANCE:
            continue
        found = registry.get(spec.remediation)
        if found is None:
            problems.append(f"{spec.id}: remediation {spec.remediation!r} has no planner")
            continue
        try:
            inspect.signature(found).bind(*range(PLANNER_PARAMETERS))
        except TypeError as exc:
            problems.append(f"{spec.id}: {found.__name__} is not a planner ({exc})")
    return problems


def test_every_check_has_a_planner_or_guidance() -> None:
    specs = all_checks()
    assert len(specs) > 40  # the catalogue was really loaded
    assert unresolved(specs) == []


def test_every_planner_is_used_by_some_check() -> None:
    used = {spec.remediation for spec in all_checks()}
    assert set(PLANNERS) <= used, set(PLANNERS) - used


def test_every_operation_a_planner_writes_is_a_registered_action() -> None:
    """The operations are named where the plans are built (``action="…"``); each must run."""
    named = {
        name
        for path in REMEDIATIONS.glob("*.py")
        for name in re.findall(r'\baction="([^"]+)"', path.read_text(encoding="utf-8"))
    }
    assert len(named) > 10, named  # the pattern still finds them
    assert named - set(ACTIONS) == set()


def _not_a_planner(finding: object) -> Plan:
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("remediation", "registered", "needle"),
    [
        ("add-default-deny-polcy", None, "'add-default-deny-polcy' has no planner"),
        ("Guidance", None, "'Guidance' has no planner"),
        ("add-default-deny-policy", _not_a_planner, "_not_a_planner is not a planner"),
    ],
)
def test_a_broken_remediation_is_caught(
    remediation: str, registered: Planner | None, needle: str
) -> None:
    """The check above fails for a misspelt id or a function that is not a planner."""
    registry: Registry[Planner] = Registry("remediation")
    if registered is not None:
        registry.add(remediation, registered)
    spec = next(s for s in all_checks() if s.id == "k8s.missing-network-policy")
    [problem] = unresolved([dataclasses.replace(spec, remediation=remediation)], registry)
    assert problem.startswith("k8s.missing-network-policy: ") and needle in problem


def test_the_dispatcher_agrees_with_the_check() -> None:
    """``planner_for`` (what ``okeguard fix`` calls) resolves every remediation in use and refuses
    a misspelt one by name."""
    for remediation in {spec.remediation for spec in all_checks()} - {GUIDANCE}:
        assert callable(planner_for(remediation))
    with pytest.raises(PlanError, match="unknown remediation 'add-default-deny-polcy'"):
        planner_for("add-default-deny-polcy")
    with pytest.raises(PlanError, match="no automatic fix"):
        planner_for(GUIDANCE)


def _finding(remediation: str) -> Finding:
    ref = ResourceRef("Namespace", None, "shop")
    return Finding(
        "k8s.missing-network-policy", Severity.MEDIUM, Status.OPEN, "prod", ref, "m", ("P9",),
        remediation, "f" * 32,
    )  # fmt: skip


def test_plan_finding_asks_the_registry_it_is_given() -> None:
    registry: Registry[Planner] = Registry("remediation")
    planned = cast(Plan, object())
    seen: list[tuple[object, ...]] = []

    @planner("add-default-deny-policy", registry=registry)
    def plan_it(*args: object) -> Plan:
        seen.append(args)
        return planned

    inventory, settings = cast(Inventory, object()), RemediationConfig()  # passed through
    found = _finding("add-default-deny-policy")
    assert plan_finding(found, inventory, settings, "strict", registry=registry) is planned
    assert seen == [(found, inventory, settings, "strict")]
    with pytest.raises(ValueError, match="remediation registered twice: add-default-deny-policy"):
        planner("add-default-deny-policy", registry=registry)(plan_it)
    with pytest.raises(PlanError, match="unknown remediation 'rotate-secret'"):
        plan_finding(_finding("rotate-secret"), inventory, settings, registry=registry)
