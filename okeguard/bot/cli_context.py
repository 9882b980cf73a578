"""What every ``okeguard`` command shares: its configuration, the audit database, and output.

A command builds its :class:`CliContext` with :meth:`CliContext.of` from its own ``--config``
(and ``--demo``); the group's global options (``okeguard -v``) reach it through click's
``ctx.obj``. Database libraries are imported when a session is opened, so ``okeguard --help``
and scans start fast. Machine-readable output goes to stdout (:func:`write_stdout`) and nothing
else does; messages go to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import click

from okeguard.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from okeguard.config import Config

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in okeguard, never a verdict: 1 stays reserved for findings

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file whose database.url to use (OKEGUARD_DATABASE_URL wins).",
)


@dataclass(frozen=True)
class CliContext:
    """One command's configuration file, the audit database it names, and its output.

    ``config_path`` is the command's ``--config`` (None: the defaults); with ``demo`` and no
    file, the bundled demo's configuration. ``verbose`` counts the group's ``-v``."""

    config_path: str | None = None
    demo: bool = False
    verbose: int = 0

    @classmethod
    def of(cls, config_path: str | None = None, *, demo: bool = False) -> CliContext:
        """The context of the running command: the group's (``ctx.obj``) with this command's
        ``--config`` and ``--demo``."""
        click_ctx = click.get_current_context(silent=True)
        shared = click_ctx.find_object(CliContext) if click_ctx is not None else None
        return replace(shared or cls(), config_path=config_path, demo=demo)

    @cached_property
    def config(self) -> Config:
        """The configuration, loaded once (``ConfigError`` for a bad file)."""
        from okeguard.config import load_config

        path = self.config_path
        if self.demo and path is None:
            from okeguard.inventory.demo import demo_config_path

            found = demo_config_path()
            path = str(found) if found else None
        return load_config(path)

    @property
    def actor(self) -> str:
        """The audit actor of the command line's user under this configuration."""
        from okeguard.bot.identity import cli_actor

        return cli_actor(self.config)

    @property
    def database_url(self) -> str:
        """The audit database: ``OKEGUARD_DATABASE_URL``, else ``database.url`` of
        ``--config``, else the default file."""
        from okeguard.audit.db import resolve_url

        return resolve_url(self.config.database.url if self.config_path else None)

    def session(self, *, read_only: bool = False) -> AbstractContextManager[Session]:
        """:func:`open_session` on this context's database (which must exist)."""
        return open_session(self.database_url, read_only=read_only)

    def migrated_session(self, actor: str | None = None) -> AbstractContextManager[Session]:
        """:func:`migrated_session` on this context's database."""
        return migrated_session(self.database_url, actor)

    def sessions(
        self, actor: str | None = None, *, create: bool = True
    ) -> AbstractContextManager[sessionmaker[Session]]:
        """:func:`sessions_at` this context's database."""
        return sessions_at(self.database_url, actor, create=create)

    def out(self, text: str) -> None:
        """Write ``text`` to stdout as a line."""
        write_line(text)


@contextmanager
def open_session(url: str, *, read_only: bool = False) -> Iterator[Session]:
    """A session on a migrated database; one-line errors for a missing or unreachable one.
    A ``read_only`` one never holds the write lock: the bot keeps appending meanwhile."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from okeguard.audit.db import DatabaseError, describe, make_engine, session_factory, unreachable
    from okeguard.audit.schema import current_revision

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        raise DatabaseError(f"no database at {describe(url)} (run 'okeguard db upgrade' first)")
    if current_revision(url) is None:
        raise DatabaseError(
            f"the database at {describe(url)} has no schema (run 'okeguard db upgrade' first)"
        )
    engine = make_engine(url)
    try:
        with session_factory(engine, read_only=read_only)() as session:
            yield session
    except SQLAlchemyError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()


@contextmanager
def migrated_session(url: str, actor: str | None = None) -> Iterator[Session]:
    """A session on the database at ``url``, created or migrated to the newest schema first
    (audited as ``actor``; default: the command line's user, ``cli_actor()``)."""
    from okeguard.audit import schema
    from okeguard.audit.chain import append_event
    from okeguard.audit.db import describe, make_engine, session_factory
    from okeguard.bot.identity import cli_actor

    before = schema.current_revision(url)
    head = schema.head_revision()
    if before != head:
        schema.upgrade(url)
        engine = make_engine(url)
        try:
            with session_factory(engine).begin() as session:
                append_event(
                    session,
                    actor or cli_actor(),
                    "db.upgrade",
                    ("database", head),
                    {"from": before, "to": head},
                )
        finally:
            engine.dispose()
        what = "created" if before is None else f"migrated from {before}"
        click.echo(f"Database {describe(url)}: {what} (revision {head}).", err=True)
    with open_session(url) as session:
        yield session


@contextmanager
def sessions_at(
    url: str, actor: str | None = None, *, create: bool = True
) -> Iterator[sessionmaker[Session]]:
    """A session factory on the database at ``url``: created or migrated first when ``create``
    (audited as ``actor``, default ``cli_actor()``), else it must exist (a one-line error)."""
    from okeguard.audit.db import make_engine, session_factory

    with migrated_session(url, actor) if create else open_session(url):
        pass
    engine = make_engine(url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def write_stdout(text: str | bytes) -> None:
    """Write ``text`` to stdout as it is; a reader that went away (``| head``) is no error."""
    try:
        if isinstance(text, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(text)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:  # e.g. `okeguard scan ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def write_line(text: str) -> None:
    """:func:`write_stdout` ending in exactly one newline."""
    write_stdout(text if text.endswith("\n") else text + "\n")


def confirm(yes: bool, question: str) -> None:
    """Ask ``question`` on the terminal unless ``yes``; ``UsageError`` when there is none to
    ask on, ``Abort`` when the answer is no."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("not a terminal: add --yes to confirm")
    if not click.confirm(question, err=True):
        raise click.exceptions.Abort()


# What a command leaves to the end of the process: a large scan's inventory, findings and report
# are millions of objects, and freeing them one by one takes about 0.1 s that nobody waits for.
_KEPT: list[object] = []


def keep_until_exit(*objects: object) -> None:
    """Keep ``objects`` alive to the end of the process, which ends without freeing them when
    the command ran as the ``okeguard`` program (:func:`exit_without_freeing`).

    Everything alive is also moved out of the cyclic garbage collector's sight (``gc.freeze``):
    the scan built its millions of objects with the collector paused, and its next collection
    would otherwise walk them all (0.1 s at 10,000 workloads) to find nothing to free."""
    import gc

    _KEPT.extend(objects)
    gc.freeze()


def exit_without_freeing(code: int) -> None:
    """End the process with ``code`` once its output is out, without freeing what
    :func:`keep_until_exit` kept; returns when nothing was kept."""
    if not _KEPT:
        return
    import logging

    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader that went away, a stream closed
            stream.flush()
    logging.shutdown()
    os._exit(code)
