"""``--format json``: the ``okeguard.scan/v1`` contract, documented in ``docs/output.md``."""

from __future__ import annotations

import orjson

from okeguard.scanning import ScanReport


def render(report: ScanReport, **_: object) -> bytes:
    """UTF-8 JSON bytes: written as they are, never decoded into a second copy."""
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
