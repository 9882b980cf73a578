"""Engines and sessions for the audit database, from a URL.

The URL comes from ``OKEGUARD_DATABASE_URL``, else ``database.url`` in the configuration, else a
SQLite file under ``$XDG_STATE_HOME/okeguard/``. Passwords never appear in messages or logs:
everything shown goes through :func:`display_url`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from okeguard.errors import OkeguardError

ENV_URL = "OKEGUARD_DATABASE_URL"
log = logging.getLogger(__name__)

# PostgreSQL session limits set on every connection okeguard opens (unless the URL's ``options``
# already set them). A process frozen inside a transaction (a stopped container, a paused VM)
# would otherwise hold its row locks for ever and every other replica's compare-and-set on that
# row would wait for ever too: the server ends such a session after IDLE_TRANSACTION_SECONDS,
# and nobody waits longer than LOCK_WAIT_SECONDS for a lock. okeguard never keeps a transaction
# open across a call to a cluster, OCI or Slack, so neither limit is near its own work.
IDLE_TRANSACTION_SECONDS = 60
LOCK_WAIT_SECONDS = 90
# SQLite: how long a writer waits for another's write lock before "database is locked".
SQLITE_BUSY_SECONDS = 30
# The execution option that marks an engine's transactions as reads (see session_factory).
READ_ONLY = "okeguard_read_only"


class DatabaseError(OkeguardError):
    """The database is unreachable, misconfigured or not migrated (names it without a password)."""


def default_database_path() -> Path:
    """``$XDG_STATE_HOME/okeguard/okeguard.db``, falling back to ``~/.local/state/okeguard/``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "okeguard" / "okeguard.db"


def resolve_url(config_url: str | None = None) -> str:
    """The database URL to use: the environment, then the configuration, then the default file."""
    return os.environ.get(ENV_URL) or config_url or f"sqlite:///{default_database_path()}"


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise DatabaseError(
            "invalid database URL (expected e.g. sqlite:///path/okeguard.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None


def display_url(url: str | URL) -> str:
    """The URL with any password masked, fit for messages and logs."""
    parsed = url if isinstance(url, URL) else _parse(url)
    return parsed.render_as_string(hide_password=True)


def describe(url: str | URL) -> str:
    """Where the database is, for people: ``host:port/db`` or the SQLite file; no password."""
    parsed = url if isinstance(url, URL) else _parse(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    where = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{where}{port}/{parsed.database or ''}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and serialised writes.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE``: the writer lock is taken before
    the first read, so two appenders can never both read the same chain head (see ``chain.py``).
    A file database is switched to WAL, where readers never block that writer nor it them: a
    long ``audit verify`` (a read-only session: :func:`session_factory`) leaves the bot's
    appends alone.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_SECONDS)
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
    else:
        raise DatabaseError(f"unsupported database '{backend}' (use sqlite or postgresql)")
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"cannot use database {display_url(parsed)}: {exc}") from None
    if backend == "sqlite":
        _serialise_sqlite_writes(engine)
    else:
        _limit_postgresql_sessions(engine, str(parsed.query.get("options", "")))
    return engine


def _limit_postgresql_sessions(engine: Engine, url_options: str) -> None:
    """Name every session after its process and bound idle transactions and lock waits."""
    settings = {"application_name": f"okeguard:{os.getpid()}"}
    if "idle_in_transaction_session_timeout" not in url_options:
        settings["idle_in_transaction_session_timeout"] = f"{IDLE_TRANSACTION_SECONDS}s"
    if "lock_timeout" not in url_options:
        settings["lock_timeout"] = f"{LOCK_WAIT_SECONDS}s"

    @event.listens_for(engine, "connect")
    def _set_limits(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        finally:
            dbapi_connection.autocommit = autocommit


def _serialise_sqlite_writes(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's lazy BEGIN.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        _use_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        # A read-only session's transaction takes no lock until it reads, and then (in WAL) a
        # snapshot only: it never holds up a writer, however long it reads.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _use_wal(dbapi_connection: Any) -> None:
    """Put a file database in WAL mode (it stays so: the mode is stored in the file), with
    ``synchronous=NORMAL``: in WAL a commit then writes the log without waiting for the disk,
    and a power cut can lose the newest commits but never corrupts the database."""
    mode = str(dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode == "memory":  # an in-memory database: nothing to share
        return
    if mode != "wal":
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:  # another process holds the file: next time
            log.warning("could not switch the SQLite database to WAL: %s", exc)
            return
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (CLI output reads them later).

    ``read_only`` sessions (``audit verify``, listings) never take the write lock: on SQLite
    their transactions begin deferred (a WAL snapshot), on PostgreSQL ``READ ONLY``.
    """
    if read_only:
        options: dict[str, Any] = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            options["postgresql_readonly"] = True
        engine = engine.execution_options(**options)
    return sessionmaker(engine, expire_on_commit=False)


def unreachable(url: str | URL, exc: SQLAlchemyError) -> DatabaseError:
    """A one-line error for a database that cannot be reached, naming it without the password."""
    parsed = url if isinstance(url, URL) else _parse(url)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = detail[0] if detail else type(exc).__name__
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    return DatabaseError(f"cannot use the database at {describe(parsed)}: {reason}")
