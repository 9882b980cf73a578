"""The quick ``/okeguard`` subcommands that read the audit database: ``findings``,
``approvals``, ``history`` and ``status``. Each is a handler of the ``commands.SUBCOMMANDS``
table: it takes the bot's context, the arguments and the Slack body, reads through
``okeguard.audit.queries`` and returns the answer (a ``UsageError`` becomes the usage)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from okeguard.audit import queries
from okeguard.bot.slack import blocks
from okeguard.bot.slack.digest import finding_row, request_row
from okeguard.errors import UsageError

if TYPE_CHECKING:
    from okeguard.audit.models import AuditEvent
    from okeguard.bot.slack.work import BotContext

LIST_LIMIT = 200  # findings shown in one answer
READ_LIMIT = 5000  # findings read to pick them from


def findings(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> blocks.Message:
    """``findings [cluster] [severity]``: the open findings, worst first."""
    clusters = {c.name for c in ctx.config.clusters}
    title = "Open findings"
    severities: list[str] = []
    on: list[str] = []
    for arg in args:
        if arg.lower() in queries.SEVERITY_ORDER:
            severities.append(arg.lower())
            title += f", {arg.lower()}"
        elif arg in clusters or not clusters:
            on.append(arg)
            title += f" on {arg}"
        else:
            raise UsageError(
                f"'{arg}' is neither a configured cluster nor a severity: "
                "/okeguard findings [cluster] [severity]"
            )
    with ctx.sessions() as session:
        rows = queries.open_findings(session, severities=severities, clusters=on, limit=READ_LIMIT)
        found = [finding_row(r) for r in rows]
    found.sort(key=lambda r: (queries.SEVERITY_ORDER.index(r.severity), r.check_id, r.resource))
    return blocks.findings_list(found[:LIST_LIMIT], title=title)


def approvals(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> blocks.Message:
    """``approvals``: the requests waiting for approval (expired ones left out)."""
    with ctx.sessions() as session:
        rows = [request_row(r, r.created_at) for r in queries.pending_requests(session, ctx.now())]
    return blocks.approvals_list(rows)


def history(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> blocks.Message:
    """``history RESOURCE``: ``KIND/NAMESPACE/NAME``, ``KIND/NAME`` (any namespace) or a
    finding id (``queries.parse_finding_ref``); the newest events, its requests' included."""
    if len(args) != 1:
        raise UsageError("usage: /okeguard history KIND/NAMESPACE/NAME or a fingerprint")
    resource = args[0]
    parts = resource.split("/")
    with ctx.sessions() as session:
        if ":" not in resource and len(parts) in (2, 3):
            kind, *namespace, name = parts
            found = queries.findings_on_resource(session, kind, name, *namespace)
        else:
            found = queries.findings_by_ref(session, queries.parse_finding_ref(resource))
        checks = {f.fingerprint: f.check_id for f in found}
        events = [
            (e.at, e.actor, _what(e, checks))
            for e in queries.finding_history(session, list(checks), limit=blocks.HISTORY_EVENTS)
        ]
    if not checks:
        raise UsageError(f"no recorded finding on '{resource}'")
    return blocks.history_message(resource, events)


def _what(event: AuditEvent, checks: dict[str, str]) -> str:
    """An audit event as a history line: the action and what it was about."""
    if event.subject_type == "finding":
        return f"{event.action} ({checks.get(event.subject_id, event.subject_id[:12])})"
    return f"{event.action} (request #{event.subject_id})"


def status(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> blocks.Message:
    """``status``: the bot's version, clusters, last scan, pending work and schedule."""
    from okeguard import __version__

    with ctx.sessions() as session:
        last = queries.last_scan(session)
        pending = queries.pending_request_count(session)
        exceptions = queries.exception_count(session)
    schedule = ctx.config.schedule
    lines = {
        "Version": __version__,
        "Clusters": ", ".join(c.name for c in ctx.config.clusters) or "none configured",
        "Last scan": (
            f"{last.started_at:%Y-%m-%d %H:%M} UTC by {last.started_by}"
            + ("" if last.complete else " (incomplete)")
            if last is not None
            else "never"
        ),
        "Pending approvals": str(pending),
        "Exceptions": str(exceptions),
        "Scheduled scans": str(len(schedule.scans)),
        "Digests": ", ".join(f"<#{d.channel}> at {d.time} {d.timezone}" for d in schedule.digests)
        or "none",
    }
    return blocks.status_message(lines)
