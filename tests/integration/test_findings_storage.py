"""PostgreSQL storage settings that keep recorded scans from bloating the findings table."""

from __future__ import annotations

from sqlalchemy import text

from okeguard.audit import schema
from okeguard.audit.db import make_engine


def test_findings_pages_leave_room_for_in_place_updates(postgres_url: str) -> None:
    schema.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        options = conn.execute(
            text(
                "SELECT reloptions FROM pg_class WHERE relname = 'findings' AND relnamespace = to_regnamespace(current_schema())"
            )
        ).scalar()
    engine.dispose()
    assert options is not None and "fillfactor=50" in options
    schema.downgrade(postgres_url, "0001")
    engine = make_engine(postgres_url)
    with engine.connect() as conn:
        options = conn.execute(
            text(
                "SELECT reloptions FROM pg_class WHERE relname = 'findings' AND relnamespace = to_regnamespace(current_schema())"
            )
        ).scalar()
    engine.dispose()
    assert not options
