"""Settings for every test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist gives its workers ``COLUMNS`` (80), which okeguard honours as the width to
    fit tables to, piped or not; a test that wants a width sets it itself."""
    monkeypatch.delenv("COLUMNS", raising=False)
