"""``okeguard exceptions``: add, list, approve, reject and remove exceptions (audited).

Thin: the rules (longest expiry, fleet-wide exceptions waiting for an approver, who may
approve) live in ``okeguard.exception_governance``, which the Slack bot calls too. The actor is
the OS uid, named by ``cli.approvers`` (``okeguard.bot.identity``), never ``$USER``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CONFIG_OPTION, CliContext, write_line
from okeguard.bot.cli_db import parse_duration
from okeguard.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from okeguard.audit.models import ExceptionRule
    from okeguard.config import Config


@click.group("exceptions")
def exceptions_group() -> None:
    """Exempt a check on selected resources for a while, with a reason (audited).

    An exception that names neither a cluster nor a resource name waives the check across the
    fleet: unless an approver adds it, it waits for one (`exceptions approve ID`).

    \b
    Examples:
      okeguard exceptions add --check k8s.stale-secret --cluster shop-prod --namespace legacy \\
          --reason "rotated by the vendor until the migration" --expires 30d
      okeguard exceptions list
      okeguard exceptions approve 4 --config okeguard.yaml
      okeguard exceptions remove 3
    """


def parse_expiry(value: str, now: datetime | None = None) -> datetime:
    """``30d``/``12h``/``2w`` from now, or an ISO date (end of that day, UTC) or date/time.

    A value too large to compute becomes the far future (refused by the longest-expiry rule).
    """
    from okeguard.exception_governance import FAR_FUTURE

    now = now or datetime.now(UTC)
    text = value.strip()
    try:
        delta = parse_duration(text)
        if delta is not None:
            return _future(now + delta, value, now)
    except (OverflowError, ValueError):
        return FAR_FUTURE
    try:
        if len(text) == 10:
            when = datetime.combine(date.fromisoformat(text), time.max, tzinfo=UTC)
        else:
            when = datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise UsageError(
            f"--expires: cannot read '{value}' (expected e.g. 30d, 12h or 2026-12-31)"
        ) from None
    except OverflowError:
        return FAR_FUTURE
    return _future(when, value, now)


def _future(when: datetime, value: str, now: datetime) -> datetime:
    if when <= now:
        raise UsageError(f"--expires: {value} is in the past")
    return when


def _exception_dict(rule: ExceptionRule) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": rule.id,
        "state": rule.state,
        "check_id": rule.check_id,
        "cluster": rule.cluster,
        "kind": rule.resource_kind,
        "namespace": rule.resource_namespace,
        "name": rule.resource_name,
        "reason": rule.reason,
        "author": rule.author,
        "approved_by": rule.approved_by,
        "created_at": iso(rule.created_at),
        "approved_at": iso(rule.approved_at),
        "expires_at": iso(rule.expires_at),
    }


@contextmanager
def _governed(
    config_path: str | None, *, create: bool
) -> Iterator[tuple[Config, sessionmaker[Session]]]:
    """(the configuration, a session factory): the database is created or migrated first when
    ``create``, else it must exist. Refusals (``ExceptionRefused``) are one-line errors, exit 2."""
    cli = CliContext.of(config_path)
    with cli.sessions(cli.actor, create=create) as sessions:
        yield cli.config, sessions


@exceptions_group.command("add")
@click.option("--check", "check_id", required=True, metavar="ID", help="The check to except.")
@click.option("--cluster", metavar="NAME", help="Only in this cluster.")
@click.option("--namespace", metavar="NS", help="Only in this namespace.")
@click.option("--kind", metavar="KIND", help="Only resources of this kind (e.g. Deployment).")
@click.option("--name", metavar="NAME", help="Only resources with this name.")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept in the audit trail).")
@click.option(
    "--expires",
    required=True,
    metavar="WHEN",
    help="30d, 12h, 2w, or a date like 2026-12-31; at most exceptions.max_days (90) away.",
)
@CONFIG_OPTION
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
    from okeguard.approval_policy import ApprovalRules
    from okeguard.audit.queries import exception_pairs
    from okeguard.bot.identity import cli_identity
    from okeguard.exception_governance import Waiver, add_governed
    from okeguard.scanning import validate_check_ids

    validate_check_ids([check_id])
    if not reason.strip():
        raise UsageError("--reason must not be empty")
    expires_at = parse_expiry(expires)
    waiver = Waiver(check_id, reason.strip(), expires_at, cluster, kind, namespace, name)
    with _governed(config_path, create=True) as (config, sessions):
        rule = add_governed(
            sessions, waiver, cli_identity(config), ApprovalRules.of(config), config.exceptions
        )
    pending = " It waits for an approver: okeguard exceptions approve ID."
    click.echo(
        f"Added exception {rule.id} ({rule.state}): {check_id} on {exception_pairs(rule)} "
        f"until {expires_at:%Y-%m-%d %H:%M} UTC."
        + (pending.replace("ID", str(rule.id)) if rule.state == "pending-approval" else ""),
        err=True,
    )
    write_line(str(rule.id))


@exceptions_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired and rejected exceptions.")
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json"]),
    help="table for people, json for tools.",
)
@CONFIG_OPTION
def exceptions_list(show_all: bool, output_format: str, config_path: str | None) -> None:
    """List the exceptions in force and those waiting for approval (with --all, every one)."""
    from okeguard.audit.queries import exception_pairs, listed_exceptions
    from okeguard.audit.types import utcnow

    cli = CliContext.of(config_path)
    with cli.session() as session:
        rules = list(listed_exceptions(session, utcnow(), every=show_all))
    if output_format == "json":
        cli.out(json.dumps([_exception_dict(r) for r in rules], indent=2, ensure_ascii=False))
        return
    lines = [
        f"{'ID':>4}  {'STATE':<16} {'CHECK':<34} {'EXPIRES (UTC)':<17} {'AUTHOR':<14} "
        "SELECTOR / REASON"
    ]
    for r in rules:
        expiry = f"{r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "never"
        lines.append(
            f"{r.id:>4}  {r.state:<16} {r.check_id:<34} {expiry:<17} {r.author:<14} "
            f"{exception_pairs(r)}: {r.reason}"
        )
    cli.out("\n".join(lines))


def _decide(exception_id: int, approve: bool, reason: str | None, config_path: str | None) -> None:
    from okeguard.approval_policy import ApprovalRules
    from okeguard.bot.identity import cli_identity
    from okeguard.exception_governance import decide_governed

    with _governed(config_path, create=False) as (config, sessions):
        rule = decide_governed(
            sessions,
            exception_id,
            cli_identity(config),
            ApprovalRules.of(config),
            approve=approve,
            reason=reason,
        )
    who = rule.approved_by or cli_identity(config).actor
    click.echo(f"Exception {exception_id}: {rule.state} by {who}.", err=True)


_ID = click.argument("exception_id", type=int, metavar="ID")


@exceptions_group.command("approve")
@_ID
@click.option("--reason", help="Why (recorded in the audit trail).")
@CONFIG_OPTION
def exceptions_approve(exception_id: int, reason: str | None, config_path: str | None) -> None:
    """Approve an exception waiting for approval (an approver's, not its author's)."""
    _decide(exception_id, True, reason, config_path)


@exceptions_group.command("reject")
@_ID
@click.option("--reason", help="Why (recorded in the audit trail).")
@CONFIG_OPTION
def exceptions_reject(exception_id: int, reason: str | None, config_path: str | None) -> None:
    """Reject an exception waiting for approval (approvers only)."""
    _decide(exception_id, False, reason, config_path)


@exceptions_group.command("remove")
@_ID
@CONFIG_OPTION
def exceptions_remove(exception_id: int, config_path: str | None) -> None:
    """Remove an exception (audited); its findings reopen at the next recorded scan."""
    from okeguard.bot.identity import cli_identity
    from okeguard.exception_governance import remove_governed

    with _governed(config_path, create=False) as (config, sessions):
        rule = remove_governed(sessions, exception_id, cli_identity(config))
    click.echo(f"Removed exception {exception_id} ({rule.check_id}).", err=True)
