"""Alembic environment, run programmatically by :mod:`okeguard.audit.schema` (no alembic.ini).

The caller hands over either an open connection (``config.attributes["connection"]``) or a URL
(``config.attributes["url"]``); the URL never goes through the ini parser, so a ``%`` in it is safe.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from okeguard.audit.db import make_engine
from okeguard.audit.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.attributes["url"])
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("okeguard migrations run online only (okeguard db upgrade)")
run_migrations_online()
