"""Renderers of a scan report: ``table`` (people), ``json`` (the contract), ``sarif`` (code
scanning) and ``markdown`` (pull-request comments). Each is a function from report to text."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from okeguard.scanning import ScanReport

FORMATS = ("table", "json", "sarif", "markdown")


def renderer(name: str) -> Callable[..., str | bytes]:
    """The render function of a format (imported lazily: only the chosen one is loaded).

    JSON and SARIF render to UTF-8 bytes, table and markdown to text."""
    module = {"json": "json_format", "sarif": "sarif", "markdown": "markdown"}.get(name, "table")
    render: Callable[..., str | bytes] = importlib.import_module(
        f"okeguard.bot.formats.{module}"
    ).render
    return render


__all__ = ["FORMATS", "ScanReport", "renderer"]
