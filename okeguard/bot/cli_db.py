"""``okeguard db`` and ``okeguard audit``: the audit database from the command line.

Database libraries are imported inside the commands so ``okeguard --help`` and scans start fast.
Every change made here is audited with the command line's user as actor (the OS uid:
``okeguard.bot.identity.cli_actor``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CONFIG_OPTION, CliContext
from okeguard.errors import OkeguardError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from okeguard.audit.models import AuditEvent


class ChainBrokenError(OkeguardError):
    """``okeguard audit verify`` found a bad row."""

    exit_code = 1


@click.group("db")
def db_group() -> None:
    """Create, migrate and inspect the audit database.

    \b
    Examples:
      okeguard db upgrade
      OKEGUARD_DATABASE_URL=postgresql+psycopg://okeguard@db/okeguard okeguard db current
    """


@db_group.command("upgrade")
@CONFIG_OPTION
def db_upgrade(config_path: str | None) -> None:
    """Create the database or migrate it to the newest schema (audited)."""
    from okeguard.audit import schema
    from okeguard.audit.chain import append_event
    from okeguard.audit.db import describe, make_engine, session_factory

    cli = CliContext.of(config_path)
    url = cli.database_url
    before = schema.current_revision(url)
    schema.upgrade(url)
    after = schema.current_revision(url)
    if after != before:
        engine = make_engine(url)
        try:
            with session_factory(engine).begin() as session:
                append_event(
                    session,
                    cli.actor,
                    "db.upgrade",
                    ("database", after or "base"),
                    {"from": before, "to": after},
                )
        finally:
            engine.dispose()
    change = f"upgraded from {before or 'empty'} to {after}" if after != before else "up to date"
    click.echo(f"Database {describe(url)}: {change} (revision {after}).", err=True)


@db_group.command("current")
@CONFIG_OPTION
def db_current(config_path: str | None) -> None:
    """Print the database's schema revision ('none' before the first upgrade)."""
    from okeguard.audit import schema

    cli = CliContext.of(config_path)
    revision = schema.current_revision(cli.database_url)
    head = schema.head_revision()
    note = " (head)" if revision == head else f" (head is {head}: run 'okeguard db upgrade')"
    cli.out(f"{revision or 'none'}{note}")


@click.group("audit")
def audit_group() -> None:
    """Check and read the hash-chained audit trail.

    \b
    Examples:
      okeguard audit verify --anchors anchors.txt
      okeguard audit head >> anchors.txt
      okeguard audit list --since 7d
      okeguard audit export --format csv > audit.csv
    """


@audit_group.command("verify")
@click.option(
    "--head",
    "heads",
    multiple=True,
    metavar="ID:HASH",
    help="An anchor kept outside the database (from 'audit head' or a digest); repeatable.",
)
@click.option(
    "--anchors",
    "anchors_file",
    metavar="FILE",
    help="A file of anchors, one ID:HASH a line ('#' starts a comment).",
)
@CONFIG_OPTION
def audit_verify(heads: tuple[str, ...], anchors_file: str | None, config_path: str | None) -> None:
    """Verify the audit trail: exit 0 when it holds, 1 listing each problem.

    Recomputes every hash and link, checks every row's MAC when an audit key is set
    (OKEGUARD_AUDIT_KEY or OKEGUARD_AUDIT_KEY_FILE), checks that each anchor's row still
    exists with that hash (rows deleted from the end, a rebuilt chain), and that every
    remediation request and exception agrees with its events.

    \b
    Examples:
      okeguard audit verify
      okeguard audit verify --head 1234:3f9c…(64 hex digits) --anchors anchors.txt
    """
    from okeguard.audit.anchors import parse_anchor, read_anchors
    from okeguard.audit.keys import audit_keys
    from okeguard.audit.trust import verify_trail

    anchors = [parse_anchor(h) for h in heads]
    if anchors_file:
        anchors += read_anchors(anchors_file)
    keys = audit_keys()
    cli = CliContext.of(config_path)
    # One read transaction: a consistent snapshot of the chain and the state tables, that takes
    # no lock a writer waits for (SQLite in WAL mode, PostgreSQL MVCC).
    with cli.session(read_only=True) as session:
        report = verify_trail(session, keys=keys, anchors=anchors)
    problems = report.problems
    if len(problems) == 1:
        raise ChainBrokenError(problems[0])
    if problems:
        for line in problems:
            click.echo(f"okeguard: error: {line}", err=True)
        raise ChainBrokenError(f"audit verify found {len(problems)} problems (listed above)")
    cli.out("\n".join(report.confirmed()))
    for level, note in report.limits():
        click.echo(f"okeguard: {level}: {note}", err=True)


@audit_group.command("head")
@click.option(
    "--format",
    "output_format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="text: ID:HASH; json: id, hash and anchor.",
)
@click.option(
    "--record",
    is_flag=True,
    help="Also append an audit.anchored event saying this anchor was taken.",
)
@CONFIG_OPTION
def audit_head(output_format: str, record: bool, config_path: str | None) -> None:
    """Print the chain's head as an anchor, ID:HASH, to keep outside the database.

    Keep anchors where the database's writers cannot reach (a ticket, your log pipeline);
    'audit verify --head ID:HASH' later proves no row up to it was deleted or rewritten.

    \b
    Examples:
      okeguard audit head >> /secure/okeguard-anchors.txt
      okeguard audit head --format json
    """
    from okeguard.audit.anchors import head_anchor, record_anchor

    cli = CliContext.of(config_path)
    with cli.session() as session:
        anchor = head_anchor(session)
        if record:
            record_anchor(session, anchor, cli.actor, "cli")
            session.commit()
    cli.out(json.dumps(anchor.as_dict()) if output_format == "json" else str(anchor))


@audit_group.command("seal")
@click.option(
    "--rekey",
    is_flag=True,
    help="Also MAC again, under the current key, the rows made under OKEGUARD_AUDIT_KEY_PREVIOUS.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be sealed; change nothing.")
@CONFIG_OPTION
def audit_seal(rekey: bool, dry_run: bool, config_path: str | None) -> None:
    """MAC the rows that have none under the audit key (audited as audit.sealed).

    For rows written before the key was set. Sealing attests the chain as it is at this
    moment: verify it against an anchor taken earlier first. Refused for a broken chain or a
    row whose MAC no configured key made.

    \b
    Examples:
      OKEGUARD_AUDIT_KEY_FILE=/secure/audit-key okeguard audit seal --dry-run
      OKEGUARD_AUDIT_KEY_FILE=/secure/audit-key okeguard audit seal
    """
    from okeguard.audit.keys import audit_keys, require_key
    from okeguard.audit.seal import seal_chain

    keys = audit_keys()
    require_key(keys)
    cli = CliContext.of(config_path)
    with cli.session() as session:
        result = seal_chain(session, cli.actor, keys=keys, rekey=rekey, dry_run=dry_run)
        if not dry_run:
            session.commit()
    if not result.changed:
        cli.out(f"Nothing to seal: every row has a MAC under audit key {result.key_id}.")
        return
    what = f"{result.sealed} row{'s' if result.sealed != 1 else ''} without a MAC"
    if rekey:
        what += f" and {result.rekeyed} under the previous key"
    ids = f"ids {result.first_id}-{result.last_id}, {len(result.ranges)} range(s)"
    if dry_run:
        cli.out(f"Would seal {what} ({ids}) under audit key {result.key_id}.")
        return
    cli.out(
        f"Sealed {what} ({ids}) under audit key {result.key_id}; audit event "
        f"{result.event_id} (audit.sealed) records it. The seal attests the chain as it was now."
    )


_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """``30m``/``12h``/``7d``/``2w`` as a timedelta; None when ``text`` is not of that form."""
    match = _RELATIVE.match(text.strip())
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))}) if match else None


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``7d``/``24h``/``30m``/``2w`` ago, or an ISO date/time (local time when it has no zone)."""
    try:
        delta = parse_duration(value)
        if delta is not None:
            return (now or datetime.now(UTC)) - delta
    except (OverflowError, ValueError):
        raise UsageError(
            f"--since: '{value}' reaches before the year 1 (give e.g. 7d, 24h or 2026-11-01)"
        ) from None
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
    from okeguard.audit import queries

    return queries.audit_events(session, since)


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
@CONFIG_OPTION
def audit_list(since: str | None, output_format: str, config_path: str | None) -> None:
    """List audit events, oldest first."""
    when = parse_since(since) if since else None
    cli = CliContext.of(config_path)
    with cli.session(read_only=True) as session:
        cli.out(_render(_events(session, when), output_format))


@audit_group.command("show")
@click.argument("event_id", type=int, metavar="ID")
@CONFIG_OPTION
def audit_show(event_id: int, config_path: str | None) -> None:
    """Show one audit event in full, as JSON."""
    from okeguard.audit.models import AuditEvent

    cli = CliContext.of(config_path)
    with cli.session(read_only=True) as session:
        event = session.get(AuditEvent, event_id)
        if event is None:
            raise UsageError(f"no audit event {event_id} (see 'okeguard audit list')")
        cli.out(json.dumps(_as_dict(event), indent=2, ensure_ascii=False))


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
@CONFIG_OPTION
def audit_export(since: str | None, output_format: str, config_path: str | None) -> None:
    """Export audit events with their hashes, for archiving or a SIEM."""
    when = parse_since(since) if since else None
    cli = CliContext.of(config_path)
    with cli.session(read_only=True) as session:
        cli.out(_render(_events(session, when), output_format))
