"""``okeguard findings``, ``okeguard exceptions`` and ``okeguard scan --record``.

Every change made here is audited with the OS user as actor. Commands that write (``scan
--record``, ``exceptions add``) create or migrate the database on first use, with the
``db.upgrade`` audit event that ``okeguard db upgrade`` writes; commands that only read or
remove ask for ``okeguard db upgrade`` instead of creating an empty database.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_db import _CONFIG_OPTION, _out, _session, _url, parse_duration, to_csv
from okeguard.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from okeguard.audit.models import ExceptionRule, FindingRecord
    from okeguard.audit.recording import RecordResult
    from okeguard.service import ScanReport


@contextmanager
def _migrated_session(url: str) -> Iterator[Session]:
    """A session on the database at ``url``, created or migrated to the newest schema first."""
    from okeguard.audit import schema
    from okeguard.audit.chain import append_event
    from okeguard.audit.db import describe, make_engine, session_factory

    before = schema.current_revision(url)
    head = schema.head_revision()
    if before != head:
        schema.upgrade(url)
        engine = make_engine(url)
        try:
            with session_factory(engine).begin() as session:
                append_event(
                    session,
                    getpass.getuser(),
                    "db.upgrade",
                    ("database", head),
                    {"from": before, "to": head},
                )
        finally:
            engine.dispose()
        what = "created" if before is None else f"migrated from {before}"
        click.echo(f"Database {describe(url)}: {what} (revision {head}).", err=True)
    with _session(url) as session:
        yield session


def record_report(report: ScanReport, config_url: str | None) -> RecordResult:
    """Record a scan report in the audit database (``okeguard scan --record``)."""
    from okeguard.audit.db import resolve_url
    from okeguard.audit.recording import record_scan

    user = getpass.getuser()
    with _migrated_session(resolve_url(config_url)) as session, session.begin():
        return record_scan(session, report, actor=user, started_by=f"cli:{user}")


# ---------------------------------------------------------------- findings


@click.group("findings")
def findings_group() -> None:
    """List the findings recorded by 'okeguard scan --record' and the bot.

    \b
    Examples:
      okeguard findings list --status open --severity high
      okeguard findings list --cluster shop-prod --format csv > findings.csv
    """


_FINDING_FIELDS = (
    "fingerprint",
    "status",
    "severity",
    "check_id",
    "cluster",
    "resource_kind",
    "resource_namespace",
    "resource_name",
    "resource_container",
    "message",
    "first_seen",
    "last_seen",
    "resolved_at",
)


def _finding_dict(row: FindingRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FINDING_FIELDS:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _render_findings(rows: list[FindingRecord], output_format: str) -> str:
    if output_format == "json":
        return json.dumps([_finding_dict(r) for r in rows], indent=2, ensure_ascii=False)
    if output_format == "csv":
        return to_csv([_finding_dict(r) for r in rows], _FINDING_FIELDS)
    lines = [f"{'STATUS':<14} {'SEVERITY':<9} {'CHECK':<34} {'CLUSTER':<16} RESOURCE"]
    for r in rows:
        where = (
            f"{r.resource_namespace}/{r.resource_name}" if r.resource_namespace else r.resource_name
        )
        container = f" [{r.resource_container}]" if r.resource_container else ""
        lines.append(
            f"{r.status:<14} {r.severity:<9} {r.check_id:<34} {r.cluster:<16} "
            f"{r.resource_kind} {where}{container}"
        )
    lines.append(f"{len(rows)} finding{'s' if len(rows) != 1 else ''}")
    return "\n".join(lines)


@findings_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["open", "resolved", "exempt", "accepted-risk", "snoozed"]),
    help="Only findings with this status (repeatable; default: all).",
)
@click.option(
    "--severity", "severities", multiple=True, metavar="SEVERITY", help="Only this severity."
)
@click.option("--cluster", "clusters", multiple=True, metavar="NAME", help="Only this cluster.")
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "csv"]),
    help="table for people, json or csv for tools.",
)
@_CONFIG_OPTION
def findings_list(
    statuses: tuple[str, ...],
    severities: tuple[str, ...],
    clusters: tuple[str, ...],
    output_format: str,
    config_path: str | None,
) -> None:
    """List recorded findings, worst severity first."""
    from sqlalchemy import case, select

    from okeguard.audit.models import FindingRecord
    from okeguard.checks.model import Severity

    try:
        wanted = [Severity.parse(s) for s in severities]
    except ValueError as exc:
        raise UsageError(f"--severity: {exc}") from None
    rank = case({s.value: -s.rank for s in Severity}, value=FindingRecord.severity, else_=0)
    query = select(FindingRecord).order_by(
        rank, FindingRecord.check_id, FindingRecord.cluster, FindingRecord.id
    )
    if statuses:
        query = query.where(FindingRecord.status.in_(statuses))
    if wanted:
        query = query.where(FindingRecord.severity.in_([s.value for s in wanted]))
    if clusters:
        query = query.where(FindingRecord.cluster.in_(clusters))
    with _session(_url(config_path)) as session:
        rows = list(session.scalars(query))
    _out(_render_findings(rows, output_format))


# ---------------------------------------------------------------- exceptions


@click.group("exceptions")
def exceptions_group() -> None:
    """Exempt a check on selected resources for a while, with a reason (audited).

    \b
    Examples:
      okeguard exceptions add --check k8s.stale-secret --namespace legacy \\
          --reason "rotated by the vendor until the migration" --expires 30d
      okeguard exceptions list
      okeguard exceptions remove 3
    """


def parse_expiry(value: str, now: datetime | None = None) -> datetime:
    """``30d``/``12h``/``2w`` from now, or an ISO date (end of that day, UTC) or date/time."""
    now = now or datetime.now(UTC)
    text = value.strip()
    delta = parse_duration(text)
    if delta is not None:
        when = now + delta
    else:
        try:
            if len(text) == 10:
                when = datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
            else:
                when = datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            raise UsageError(
                f"--expires: cannot read '{value}' (expected e.g. 30d, 12h or 2026-12-31)"
            ) from None
    if when <= now:
        raise UsageError(f"--expires: {value} is in the past")
    return when


def _exception_dict(rule: ExceptionRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "check_id": rule.check_id,
        "cluster": rule.cluster,
        "kind": rule.resource_kind,
        "namespace": rule.resource_namespace,
        "name": rule.resource_name,
        "reason": rule.reason,
        "author": rule.author,
        "created_at": rule.created_at.isoformat(),
        "expires_at": rule.expires_at.isoformat() if rule.expires_at else None,
    }


def _selector(rule: ExceptionRule) -> str:
    parts = [
        f"{label}={value}"
        for label, value in (
            ("cluster", rule.cluster),
            ("kind", rule.resource_kind),
            ("namespace", rule.resource_namespace),
            ("name", rule.resource_name),
        )
        if value is not None
    ]
    return " ".join(parts) or "everything"


@exceptions_group.command("add")
@click.option("--check", "check_id", required=True, metavar="ID", help="The check to except.")
@click.option("--cluster", metavar="NAME", help="Only in this cluster.")
@click.option("--namespace", metavar="NS", help="Only in this namespace.")
@click.option("--kind", metavar="KIND", help="Only resources of this kind (e.g. Deployment).")
@click.option("--name", metavar="NAME", help="Only resources with this name.")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept in the audit trail).")
@click.option(
    "--expires", required=True, metavar="WHEN", help="30d, 12h, 2w, or a date like 2026-12-31."
)
@_CONFIG_OPTION
def exceptions_add(
    check_id: str,
    cluster: str | None,
    namespace: str | None,
    kind: str | None,
    name: str | None,
    reason: str,
    expires: str,
    config_path: str | None,
) -> None:
    """Add an exception; it takes effect at the next recorded scan and expires by itself."""
    from okeguard.audit.stores import add_exception
    from okeguard.service import validate_check_ids

    validate_check_ids([check_id])
    if not reason.strip():
        raise UsageError("--reason must not be empty")
    expires_at = parse_expiry(expires)
    with _migrated_session(_url(config_path)) as session, session.begin():
        rule = add_exception(
            session,
            check_id=check_id,
            reason=reason.strip(),
            author=getpass.getuser(),
            cluster=cluster,
            kind=kind,
            namespace=namespace,
            name=name,
            expires_at=expires_at,
        )
        rule_id = rule.id
    click.echo(
        f"Added exception {rule_id}: {check_id} on {_selector(rule)} "
        f"until {expires_at:%Y-%m-%d %H:%M} UTC.",
        err=True,
    )
    _out(str(rule_id))


@exceptions_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired exceptions.")
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json"]),
    help="table for people, json for tools.",
)
@_CONFIG_OPTION
def exceptions_list(show_all: bool, output_format: str, config_path: str | None) -> None:
    """List the exceptions in force (with --all, expired ones too)."""
    from sqlalchemy import select

    from okeguard.audit.models import ExceptionRule
    from okeguard.audit.stores import active_exceptions

    with _session(_url(config_path)) as session:
        if show_all:
            rules = list(session.scalars(select(ExceptionRule).order_by(ExceptionRule.id)))
        else:
            rules = active_exceptions(session)
    if output_format == "json":
        _out(json.dumps([_exception_dict(r) for r in rules], indent=2, ensure_ascii=False))
        return
    lines = [f"{'ID':>4}  {'CHECK':<34} {'EXPIRES (UTC)':<17} {'AUTHOR':<12} SELECTOR / REASON"]
    for r in rules:
        expiry = f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "never"
        lines.append(
            f"{r.id:>4}  {r.check_id:<34} {expiry:<17} {r.author:<12} {_selector(r)}: {r.reason}"
        )
    _out("\n".join(lines))


@exceptions_group.command("remove")
@click.argument("exception_id", type=int, metavar="ID")
@_CONFIG_OPTION
def exceptions_remove(exception_id: int, config_path: str | None) -> None:
    """Remove an exception (audited); its findings reopen at the next recorded scan."""
    from okeguard.audit.stores import remove_exception

    with _session(_url(config_path)) as session, session.begin():
        rule = remove_exception(session, exception_id, getpass.getuser())
        if rule is None:
            raise UsageError(f"no exception {exception_id} (see 'okeguard exceptions list --all')")
    click.echo(f"Removed exception {exception_id} ({rule.check_id}).", err=True)
