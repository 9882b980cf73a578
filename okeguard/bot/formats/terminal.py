"""Text for people on a terminal: whether to colour it, its width, word wrapping and ellipses.

Plain string work on purpose (no rich ``Table``): a report of 100,000 findings renders in a
fraction of a second, and only lines longer than the width pay for wrapping.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import TextIO

ELLIPSIS = "…"
MIN_WIDTH = 50  # the longest "  <id>  <check id>" head fits; narrower helps nobody
SHORT_ID = 12  # hex characters of a fingerprint shown to people; `okeguard fix` accepts them


def short_id(fingerprint: str) -> str:
    """The fingerprint prefix shown in tables (and accepted by ``okeguard fix``)."""
    return fingerprint[:SHORT_ID]


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a replaced or closed stream)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_color(no_color: bool = False, stream: TextIO | None = None) -> bool:
    """Colour only on a terminal: never with ``--no-color``, ``NO_COLOR`` set or ``TERM=dumb``."""
    if no_color or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream or sys.stdout)


def terminal_width(width: int | None = None) -> int | None:
    """The width to fit text for people into, or None for no fitting.

    ``width`` > 0 is taken as given and 0 means "do not fit" (a file). Otherwise ``COLUMNS``
    when set, else the size of the terminal on stdout; None when stdout is not a terminal, so
    piped output keeps one line per finding for grep."""
    if width is not None:
        return max(width, MIN_WIDTH) if width > 0 else None
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), MIN_WIDTH)
    if not is_terminal(sys.stdout):
        return None
    return max(shutil.get_terminal_size().columns, MIN_WIDTH)


def ellipsize(text: str, room: int) -> str:
    """``text`` cut to ``room`` characters, ending with an ellipsis when it was cut."""
    if len(text) <= room:
        return text
    return text[: max(room - 1, 0)] + ELLIPSIS if room > 0 else ""


def ellipsize_left(text: str, room: int) -> str:
    """``text`` cut to ``room`` characters from the left (``…/deploy/app.yaml:12``): for paths,
    whose end (the file and line) is what a reader needs."""
    if len(text) <= room:
        return text
    return ELLIPSIS + text[len(text) - max(room - 1, 0) :] if room > 0 else ""


def wrap(text: str, width: int | None, indent: str = "", first_indent: str | None = None) -> str:
    """``text`` wrapped at word boundaries to ``width`` (None: not wrapped), each line indented
    (the first by ``first_indent`` when given). Words longer than a line are broken."""
    first = indent if first_indent is None else first_indent
    if width is None or len(first) + len(text) <= width:
        return first + text
    return "\n".join(
        textwrap.wrap(
            text,
            width=width,
            initial_indent=first,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
    )
