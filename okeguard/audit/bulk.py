"""Inserting many rows at once, below SQLAlchemy's work per row.

A first recording of a large cluster inserts tens of thousands of findings and as many audit
events; SQLAlchemy's executemany spends most of that time on per-row work. :func:`bulk_insert`
hands the rows to the driver instead, with the same values SQLAlchemy would bind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def bulk_insert(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` below SQLAlchemy's work per
    row: ``COPY`` on PostgreSQL (psycopg), the driver's own ``executemany`` on SQLite, and a
    Core executemany elsewhere (or when a column left out has a default to compute). Each value
    goes through its column type's bind processing as SQLAlchemy would apply it
    (``UTCDateTime`` puts instants in UTC; SQLite stores them as text). Does not commit.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    defaulted = any(c.default is not None for c in table.columns if c.name not in columns)
    copy = dialect.name == "postgresql" and dialect.driver == "psycopg"
    if defaulted or not (copy or (dialect.name == "sqlite" and dialect.paramstyle == "qmark")):
        for start in range(0, len(rows), 5000):
            connection.execute(insert(table), rows[start : start + 5000])
        return
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(column) for column in columns)
    values = _bound_values(
        rows, columns, [table.c[c].type.bind_processor(dialect) for c in columns]
    )
    if copy:
        driver: Any = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {quote(table.name)} ({names}) FROM STDIN") as stream,
        ):
            for row in values:
                stream.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    statement = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
    connection.exec_driver_sql(statement, [tuple(row) for row in values])


def _bound_values(
    rows: Sequence[dict[str, Any]],
    columns: list[str],
    processors: list[Callable[[Any], Any] | None],
) -> Iterator[list[Any]]:
    """Each row's values in ``columns`` order, through the columns' bind processors. A value the
    same as the row before's (``now`` in every row) is processed once."""
    active = [(i, process) for i, process in enumerate(processors) if process is not None]
    last: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = [row[column] for column in columns]
        for i, process in active:
            value = values[i]
            seen = last.get(i)
            if seen is not None and seen[0] is value:
                values[i] = seen[1]
            else:
                values[i] = process(value)
                last[i] = (value, values[i])
        yield values
