"""Which planner plans which remediation, and the one entry point :func:`plan_finding`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from okeguard.checks.model import Finding
from okeguard.config import RemediationConfig
from okeguard.inventory.model import Inventory
from okeguard.remediations.plan import Plan, PlanError

Planner = Callable[[Finding, Inventory, RemediationConfig, str], Plan]

# remediation id -> (module, planner function); modules load on first use.
PLANNERS: dict[str, tuple[str, str]] = {
    "add-security-context": (
        "okeguard.remediations.security_context",
        "plan_add_security_context",
    ),
    "add-default-deny-policy": (
        "okeguard.remediations.network_policy",
        "plan_add_default_deny_policy",
    ),
    "move-rules-to-nsg": ("okeguard.remediations.nsg_migration", "plan_move_rules_to_nsg"),
    "make-endpoint-private": ("okeguard.remediations.endpoint", "plan_make_endpoint_private"),
    "rotate-secret": ("okeguard.remediations.secret_rotation", "plan_rotate_secret"),
}
# The modules whose actions a plan's operations may name (imported before a plan runs).
ACTION_MODULES = (
    "okeguard.remediations.kube_actions",
    "okeguard.remediations.oci_actions",
    "okeguard.remediations.secret_actions",
)


def load_actions(plan: Plan) -> None:
    """Import the modules registering the operations ``plan`` names (imported on first use)."""
    from okeguard.remediations.engine import ACTIONS

    for module in ACTION_MODULES:
        if all(op.action in ACTIONS for op in plan.operations):
            return
        importlib.import_module(module)


def planner_for(remediation: str) -> Planner:
    try:
        module, name = PLANNERS[remediation]
    except KeyError:
        if remediation == "guidance":
            raise PlanError(
                "this finding has no automatic fix: follow the guidance in docs/checks.md"
            ) from None
        raise PlanError(f"unknown remediation {remediation!r}") from None
    planner: Planner = getattr(importlib.import_module(module), name)
    return planner


def plan_finding(
    finding: Finding, inventory: Inventory, settings: RemediationConfig, variant: str = "default"
) -> Plan:
    """The plan fixing ``finding`` in ``inventory`` (raises :class:`PlanError` when there is none).

    Pure: the same finding and inventory always give the same plan, hence the same hash.
    """
    if finding.status.value != "open":
        raise PlanError(f"finding {finding.fingerprint[:12]} is {finding.status.value}, not open")
    return planner_for(finding.remediation)(finding, inventory, settings, variant)
