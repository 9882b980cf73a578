"""Severity names and their order are spelled once, in :class:`okeguard.checks.model.Severity`;
every table keyed by severity covers exactly those."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from okeguard.audit.models import ClusterPosture
from okeguard.bot.formats import markdown, sarif, table
from okeguard.bot.slack import blocks_common, chart
from okeguard.checks.model import SEVERITIES_DESC, SEVERITY_NAMES
from okeguard.posture import SEVERITY_WEIGHTS

PACKAGE = Path(__file__).resolve().parents[2] / "okeguard"


def test_the_order_is_worst_first_and_the_ranks_follow_it() -> None:
    assert SEVERITY_NAMES == ("critical", "high", "medium", "low", "info")
    assert [s.value for s in SEVERITIES_DESC] == list(SEVERITY_NAMES)
    assert [s.rank for s in SEVERITIES_DESC] == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(
    "table_by_severity",
    [
        SEVERITY_WEIGHTS,
        markdown.ICONS,
        table.STYLES,
        sarif.LEVELS,
        sarif.SECURITY_SEVERITY,
        blocks_common.SEVERITY_EMOJI,
        blocks_common.SEVERITY_RANK,
        chart.SEVERITY_COLOURS,
    ],
)
def test_every_table_keyed_by_severity_covers_each_once(
    table_by_severity: Mapping[str, Any],
) -> None:
    assert sorted(table_by_severity) == sorted(SEVERITY_NAMES)
    for name in SEVERITY_NAMES:  # looked up by the name read from a database or a form
        assert name in table_by_severity


def test_the_posture_table_has_a_column_per_severity() -> None:
    columns = set(ClusterPosture.__table__.columns.keys())
    assert set(SEVERITY_NAMES) <= columns


def _spelled(path: Path) -> bool:
    """True when a literal collection in ``path`` names two severities or more."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            names = {
                item.value
                for item in items
                if isinstance(item, ast.Constant) and item.value in SEVERITY_NAMES
            }
            if len(names) >= 2:
                return True
    return False


def test_no_module_spells_the_severity_names_itself() -> None:
    spelled = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts and _spelled(path)
    }
    assert spelled == set()
