"""PostgreSQL storage settings that keep recorded scans from bloating the findings table."""

from __future__ import annotations

from sqlalchemy import text

from okeguard.audit import schema
from okeguard.audit.db import make_engine

RELOPTIONS = (
    "SELECT reloptions FROM pg_class"
    " WHERE relname = 'findings' AND relnamespace = to_regnamespace(current_schema())"
)


def findings_options(url: str) -> list[str] | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            options: list[str] | None = conn.execute(text(RELOPTIONS)).scalar()
            return options
    finally:
        engine.dispose()


def test_findings_pages_leave_room_for_in_place_updates(postgres_url: str) -> None:
    schema.upgrade(postgres_url)
    assert "fillfactor=50" in (findings_options(postgres_url) or [])
    schema.downgrade(postgres_url, "0001")
    assert not findings_options(postgres_url)
