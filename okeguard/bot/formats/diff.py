"""Unified diffs for a terminal: the plan diff of ``okeguard fix``."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def colored_diff(diff: str) -> str:
    """A unified diff with ANSI colours: headers bold, hunks cyan, additions green, removals
    red."""
    text = Text()
    for line in diff.splitlines(keepends=True):
        style = next((s for prefix, s in _DIFF_STYLES if line.startswith(prefix)), None)
        text.append(line, style)
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        width=10_000,
        soft_wrap=True,
        highlight=False,
    )
    console.print(text, end="")
    return buffer.getvalue()
