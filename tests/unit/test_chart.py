"""The digest's trend chart: a PNG of the requested size, deterministic, None without data."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta

import pytest

from okeguard.bot.slack.chart import trend_png
from okeguard.bot.slack.digest_model import Digest

TODAY = date(2026, 11, 20)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _digest(trend: dict[str, dict[date, dict[str, int]]]) -> Digest:
    return Digest(
        generated_at=datetime(2026, 11, 20, 9, tzinfo=UTC),
        since=None,
        clusters=(),
        pending_approvals=(),
        expiring_exceptions=(),
        remediations_applied=(),
        trend=trend,
    )


def _series(scale: int, days: int = 30) -> dict[date, dict[str, int]]:
    return {
        TODAY - timedelta(days=d): {
            "critical": scale,
            "high": d % 4,
            "medium": 2 * scale,
            "low": 1,
            "info": d % 2,
        }
        for d in range(days)
    }


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"  # the first chunk, by the PNG spec
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.mark.parametrize(("width", "height"), [(1200, 600), (800, 400), (640, 480)])
def test_the_png_has_the_requested_size(width: int, height: int) -> None:
    png = trend_png(
        _digest({"prod": _series(2), "dev": _series(1)}), width_px=width, height_px=height
    )
    assert png is not None
    assert _size(png) == (width, height)


def test_no_trend_data_gives_no_chart() -> None:
    assert trend_png(_digest({})) is None
    assert trend_png(_digest({"prod": {}})) is None


def test_a_single_day_of_one_cluster_is_drawn() -> None:
    png = trend_png(_digest({"prod": {TODAY: {"high": 3}}}))
    assert png is not None and _size(png) == (1200, 600)


def test_more_than_six_clusters_draw_the_six_with_most_findings() -> None:
    many = {f"cluster-{i}": _series(i + 1) for i in range(9)}
    png = trend_png(_digest(many))
    assert png is not None and _size(png) == (1200, 600)
    # cluster-0..2 have the fewest findings: not drawn, so changing them changes nothing ...
    hidden = dict(many, **{"cluster-0": _series(2, days=5)})
    assert trend_png(_digest(hidden)) == png
    # ... while changing a drawn cluster changes the picture.
    shown = dict(many, **{"cluster-8": _series(8, days=5)})
    assert trend_png(_digest(shown)) != png


def test_the_same_digest_gives_the_same_bytes() -> None:
    trend = {"prod": _series(3), "stage": _series(1, days=10)}
    first = trend_png(_digest(trend))
    second = trend_png(_digest({k: dict(v) for k, v in reversed(trend.items())}))
    assert first is not None and first == second
    assert b"Software" not in first  # no version string that would change between installs
