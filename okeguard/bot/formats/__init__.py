"""Renderers of a scan report: ``table`` (people), ``json`` (the contract), ``sarif`` (code
scanning) and ``markdown`` (pull-request comments). Each is a function from report to text."""

from __future__ import annotations

from collections.abc import Callable

from okeguard.service import ScanReport

FORMATS = ("table", "json", "sarif", "markdown")


def renderer(name: str) -> Callable[..., str | bytes]:
    """The render function of a format (imported lazily: only the chosen one is loaded).

    JSON and SARIF render to UTF-8 bytes, table and markdown to text."""
    if name == "json":
        from okeguard.bot.formats.json_format import render
    elif name == "sarif":
        from okeguard.bot.formats.sarif import render
    elif name == "markdown":
        from okeguard.bot.formats.markdown import render
    else:
        from okeguard.bot.formats.table import render
    return render


__all__ = ["FORMATS", "ScanReport", "renderer"]
