"""``--format json``: the ``okeguard.scan/v1`` contract, documented in ``docs/output.md``."""

from __future__ import annotations

import orjson

from okeguard.service import ScanReport


def render(report: ScanReport, **_: object) -> str:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
