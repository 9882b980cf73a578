"""Which planner plans which remediation, and the one entry point :func:`plan_finding`.

A planner is a pure function registered with :func:`planner` under the remediation id that
checks name (``@check(remediation=…)``); ``guidance`` is the id of checks with no automatic fix.
"""

from __future__ import annotations

from collections.abc import Callable

from okeguard.checks.model import Finding
from okeguard.checks.registry import GUIDANCE
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.remediations.plan import Plan, PlanError
from okeguard.remediations.registry import Registry, load_catalogue

Planner = Callable[[Finding, Inventory, RemediationConfig, str], Plan]


# remediation id -> planner; filled by ``@planner`` in the modules ``catalogue.py`` imports
PLANNERS: Registry[Planner] = Registry("remediation", load=load_catalogue)


def planner(
    remediation: str, *, registry: Registry[Planner] = PLANNERS
) -> Callable[[Planner], Planner]:
    """Register the decorated function as the planner of ``remediation``."""

    def register(func: Planner) -> Planner:
        registry.add(remediation, func)
        return func

    return register


def planner_for(remediation: str, *, registry: Registry[Planner] = PLANNERS) -> Planner:
    """The planner of ``remediation``; PlanError for ``guidance`` or an unknown id."""
    found = registry.get(remediation)
    if found is not None:
        return found
    if remediation == GUIDANCE:
        raise PlanError("this finding has no automatic fix: follow the guidance in docs/checks.md")
    raise PlanError(f"unknown remediation {remediation!r}")


def plan_finding(
    finding: Finding,
    inventory: Inventory,
    settings: RemediationConfig,
    variant: str = "default",
    *,
    registry: Registry[Planner] = PLANNERS,
) -> Plan:
    """The plan fixing ``finding`` in ``inventory`` (raises :class:`PlanError` when there is none).

    Pure: the same finding and inventory always give the same plan, hence the same hash.
    """
    if finding.status.value != "open":
        raise PlanError(f"finding {finding.fingerprint[:12]} is {finding.status.value}, not open")
    return planner_for(finding.remediation, registry=registry)(
        finding, inventory, settings, variant
    )
