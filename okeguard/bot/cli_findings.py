"""``okeguard findings`` and ``okeguard scan --record`` (``okeguard exceptions`` is in
``cli_exceptions``).

Every change made here is audited with the command line's user as actor: the OS uid, named by
``cli.approvers`` (``okeguard.bot.identity``), never ``$USER``. Commands that write (``scan
--record``, ``exceptions add``) create or migrate the database on first use, with the
``db.upgrade`` audit event that ``okeguard db upgrade`` writes; commands that only read or
remove ask for ``okeguard db upgrade`` instead of creating an empty database.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CONFIG_OPTION, CliContext, migrated_session
from okeguard.bot.cli_db import to_csv
from okeguard.errors import UsageError

if TYPE_CHECKING:
    from okeguard.audit.models import FindingRecord
    from okeguard.audit.recording import RecordResult
    from okeguard.scanning import ScanReport


def record_report(
    report: ScanReport, config_url: str | None, actor: str | None = None
) -> RecordResult:
    """Record a scan report in the audit database (``okeguard scan --record``) as ``actor``
    (default: the command line's user, ``cli_actor()``)."""
    from okeguard.audit.db import resolve_url
    from okeguard.audit.recording import record_scan
    from okeguard.bot.identity import cli_actor

    user = actor or cli_actor()
    with migrated_session(resolve_url(config_url), user) as session, session.begin():
        return record_scan(session, report, actor=user, started_by=user)


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
    return findings_table(rows)


def findings_table(rows: list[FindingRecord], width: int | None = None) -> str:
    """The table for people: the ID column is the fingerprint prefix ``okeguard fix`` takes;
    check and cluster columns are as wide as their longest value (capped), and the resource
    gets the rest of the terminal's width, ending in an ellipsis when it does not fit."""
    from okeguard.bot.formats.terminal import ellipsize, short_id, terminal_width

    fit = terminal_width(width)
    check_w = min(max([len("CHECK"), *(len(r.check_id) for r in rows)]), 34)
    cluster_w = min(max([len("CLUSTER"), *(len(r.cluster) for r in rows)]), 16)
    columns = (("STATUS", 14), ("SEVERITY", 9), ("ID", 12), ("CHECK", check_w))
    head = " ".join(f"{name:<{w}}" for name, w in (*columns, ("CLUSTER", cluster_w)))
    room = max(fit - len(head) - 1, 12) if fit else None
    lines = [f"{head} RESOURCE"]
    for r in rows:
        where = (
            f"{r.resource_namespace}/{r.resource_name}" if r.resource_namespace else r.resource_name
        )
        container = f" [{r.resource_container}]" if r.resource_container else ""
        resource = f"{r.resource_kind} {where}{container}"
        cells = (r.status, r.severity, short_id(r.fingerprint), r.check_id, r.cluster)
        widths = (14, 9, 12, check_w, cluster_w)
        lines.append(
            " ".join(f"{ellipsize(c, w):<{w}}" for c, w in zip(cells, widths, strict=True))
            + " "
            + (ellipsize(resource, room) if room else resource)
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
@CONFIG_OPTION
def findings_list(
    statuses: tuple[str, ...],
    severities: tuple[str, ...],
    clusters: tuple[str, ...],
    output_format: str,
    config_path: str | None,
) -> None:
    """List recorded findings, worst severity first."""
    from okeguard.audit import queries
    from okeguard.checks.model import Severity

    try:
        wanted = [Severity.parse(s).value for s in severities]
    except ValueError as exc:
        raise UsageError(f"--severity: {exc}") from None
    cli = CliContext.of(config_path)
    with cli.session() as session:
        rows = list(
            queries.recorded_findings(
                session, statuses=statuses, severities=wanted, clusters=clusters
            )
        )
    cli.out(_render_findings(rows, output_format))
