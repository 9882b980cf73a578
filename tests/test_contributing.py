"""CONTRIBUTING.md cannot rot silently: every file and folder it names exists, every name it
gives in code is defined where it says, and each recipe has at most three steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
# `okeguard/checks/<area>.py` and the like; a placeholder in <…> stands for any name
NAMED_PATHS = sorted(
    {
        path
        for path in re.findall(r"`([\w.<>-]+(?:/[\w.<>-]*)+)`", TEXT)
        if path.split("/")[0] in {"okeguard", "tests", "docs", ".ci"}
    }
)


def test_the_pattern_still_finds_the_paths() -> None:
    assert len(NAMED_PATHS) > 25, NAMED_PATHS


@pytest.mark.parametrize("path", NAMED_PATHS)
def test_every_named_path_exists(path: str) -> None:
    pattern = re.sub(r"<[^>]+>", "*", path.rstrip("/"))
    assert list(ROOT.glob(pattern)), f"CONTRIBUTING.md names {path}, which does not exist"


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("def check(", "okeguard/checks/registry.py"),
        ("def planner(", "okeguard/remediations/planners.py"),
        ("def action(", "okeguard/remediations/engine.py"),
        ("SUBCOMMANDS: tuple[Subcommand, ...]", "okeguard/bot/slack/commands.py"),
        ("def notice(", "okeguard/bot/slack/blocks.py"),
        ("def refusal(", "okeguard/bot/slack/blocks.py"),
        ("def checks_markdown(", "okeguard/checks/docs.py"),
        ("CATALOGUE = {", "tests/unit/test_catalogue.py"),
        ("def test_docs_checks_md_is_generated_from_the_registry(", "tests/unit/test_catalogue.py"),
        ("class CliContext", "okeguard/bot/cli_context.py"),
    ],
)
def test_the_names_it_gives_are_where_it_says(name: str, home: str) -> None:
    assert name in (ROOT / home).read_text(encoding="utf-8")


def test_each_recipe_has_at_most_three_steps() -> None:
    sections = re.split(r"^## ", TEXT, flags=re.MULTILINE)
    recipes = {s.splitlines()[0]: s for s in sections if s.startswith("How to add")}
    assert set(recipes) == {
        "How to add a check",
        "How to add a remediation",
        "How to add a slash command",
    }
    for title, body in recipes.items():
        steps = re.findall(r"^\d+\. ", body, flags=re.MULTILINE)
        assert 1 <= len(steps) <= 3, f"{title}: {len(steps)} steps"
