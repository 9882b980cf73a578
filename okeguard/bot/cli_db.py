"""``okeguard db`` and ``okeguard audit``: the audit database from the command line.

Database libraries are imported inside the commands so ``okeguard --help`` and scans start fast.
Every change made here is audited with the OS user as actor.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from okeguard.errors import OkeguardError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from okeguard.audit.models import AuditEvent

_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file whose database.url to use (OKEGUARD_DATABASE_URL wins).",
)


class ChainBrokenError(OkeguardError):
    """``okeguard audit verify`` found a bad row."""

    exit_code = 1


def _url(config_path: str | None) -> str:
    from okeguard.audit.db import resolve_url
    from okeguard.config import load_config

    config_url = load_config(config_path).database.url if config_path else None
    return resolve_url(config_url)


def _out(text: str) -> None:
    from okeguard.bot.cli import _write_stdout

    _write_stdout(text if text.endswith("\n") else text + "\n")


@contextmanager
def _session(url: str) -> Iterator[Session]:
    """A session on a migrated database; one-line errors for a missing or unreachable one."""
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
        with session_factory(engine)() as session:
            yield session
    except SQLAlchemyError as exc:
        raise unreachable(url, exc) from None
    finally:
        engine.dispose()


@click.group("db")
def db_group() -> None:
    """Create, migrate and inspect the audit database.

    \b
    Examples:
      okeguard db upgrade
      OKEGUARD_DATABASE_URL=postgresql+psycopg://okeguard@db/okeguard okeguard db current
    """


@db_group.command("upgrade")
@_CONFIG_OPTION
def db_upgrade(config_path: str | None) -> None:
    """Create the database or migrate it to the newest schema (audited)."""
    from okeguard.audit import schema
    from okeguard.audit.chain import append_event
    from okeguard.audit.db import describe, make_engine, session_factory

    url = _url(config_path)
    before = schema.current_revision(url)
    schema.upgrade(url)
    after = schema.current_revision(url)
    if after != before:
        engine = make_engine(url)
        try:
            with session_factory(engine).begin() as session:
                append_event(
                    session,
                    getpass.getuser(),
                    "db.upgrade",
                    ("database", after or "base"),
                    {"from": before, "to": after},
                )
        finally:
            engine.dispose()
    change = f"upgraded from {before or 'empty'} to {after}" if after != before else "up to date"
    click.echo(f"Database {describe(url)}: {change} (revision {after}).", err=True)


@db_group.command("current")
@_CONFIG_OPTION
def db_current(config_path: str | None) -> None:
    """Print the database's schema revision ('none' before the first upgrade)."""
    from okeguard.audit import schema

    url = _url(config_path)
    revision = schema.current_revision(url)
    head = schema.head_revision()
    note = " (head)" if revision == head else f" (head is {head}: run 'okeguard db upgrade')"
    _out(f"{revision or 'none'}{note}")


@click.group("audit")
def audit_group() -> None:
    """Check and read the hash-chained audit trail.

    \b
    Examples:
      okeguard audit verify
      okeguard audit list --since 7d
      okeguard audit export --format csv > audit.csv
    """


@audit_group.command("verify")
@_CONFIG_OPTION
def audit_verify(config_path: str | None) -> None:
    """Recompute the whole hash chain: exit 0 when intact, 1 naming the first bad row."""
    from okeguard.audit.chain import chain_length, verify_chain

    with _session(_url(config_path)) as session:
        broken = verify_chain(session)
        if broken is not None:
            raise ChainBrokenError(f"audit chain broken: {broken}")
        count = chain_length(session)
    _out(f"OK: audit chain intact ({count} event{'s' if count != 1 else ''})")


_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """``30m``/``12h``/``7d``/``2w`` as a timedelta; None when ``text`` is not of that form."""
    match = _RELATIVE.match(text.strip())
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}) if match else None


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d``/``24h``/``30m``/``2w`` ago, or an ISO date/time (local time when it has no zone)."""
    delta = parse_duration(value)
    if delta is not None:
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since: cannot read '{value}' (expected e.g. 7d, 24h or 2026-11-01)"
        ) from None
    return parsed.astimezone(UTC)  # a naive value is taken as local time


def to_csv(rows: list[dict[str, Any]], fields: Sequence[str]) -> str:
    """Rows as CSV with a header line (the ``--format csv`` of the audit and findings commands)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _events(session: Session, since: datetime | None) -> list[AuditEvent]:
    from sqlalchemy import select

    from okeguard.audit.models import AuditEvent

    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query))


def _as_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "payload": json.loads(event.payload),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


_EVENT_FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "payload",
    "prev_hash",
    "hash",
)


def _render(events: list[AuditEvent], output_format: str) -> str:
    if output_format == "json":
        return json.dumps([_as_dict(e) for e in events], indent=2, ensure_ascii=False)
    if output_format == "csv":
        # the payload stays the canonical JSON that was hashed, so an export can be re-verified
        rows = [{**_as_dict(e), "payload": e.payload} for e in events]
        return to_csv(rows, _EVENT_FIELDS)
    lines = [f"{'ID':>6}  {'TIME':<25} {'ACTOR':<16} {'ACTION':<28} SUBJECT"]
    for e in events:
        local = e.at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        subject = f"{e.subject_type} {e.subject_id}"
        lines.append(f"{e.id:>6}  {local:<25} {e.actor:<16} {e.action:<28} {subject}")
    return "\n".join(lines)


_SINCE_OPTION = click.option(
    "--since", metavar="WHEN", help="Only events since WHEN: 7d, 24h, 30m or an ISO date/time."
)


@audit_group.command("list")
@_SINCE_OPTION
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "csv"]),
    help="table for people (local time), json or csv for tools (UTC).",
)
@_CONFIG_OPTION
def audit_list(since: str | None, output_format: str, config_path: str | None) -> None:
    """List audit events, oldest first."""
    when = parse_since(since) if since else None
    with _session(_url(config_path)) as session:
        _out(_render(_events(session, when), output_format))


@audit_group.command("show")
@click.argument("event_id", type=int, metavar="ID")
@_CONFIG_OPTION
def audit_show(event_id: int, config_path: str | None) -> None:
    """Show one audit event in full, as JSON."""
    from okeguard.audit.models import AuditEvent

    with _session(_url(config_path)) as session:
        event = session.get(AuditEvent, event_id)
        if event is None:
            raise UsageError(f"no audit event {event_id} (see 'okeguard audit list')")
        _out(json.dumps(_as_dict(event), indent=2, ensure_ascii=False))


@audit_group.command("export")
@_SINCE_OPTION
@click.option(
    "--format",
    "output_format",
    default="json",
    show_default=True,
    type=click.Choice(["json", "csv"]),
    help="Export format; hashes included so the copy can be checked later.",
)
@_CONFIG_OPTION
def audit_export(since: str | None, output_format: str, config_path: str | None) -> None:
    """Export audit events with their hashes, for archiving or a SIEM."""
    when = parse_since(since) if since else None
    with _session(_url(config_path)) as session:
        _out(_render(_events(session, when), output_format))
