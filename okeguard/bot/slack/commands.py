"""``/okeguard``: parse, answer quick things inline, run slow things (scan, fix, digest) in a lazy
listener and post when done. Anything not understood gets the usage, only to the person who
typed it."""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from okeguard.audit import queries
from okeguard.audit.models import AuditEvent
from okeguard.bot.slack import blocks
from okeguard.bot.slack.app import once
from okeguard.bot.slack.people import actor_of
from okeguard.bot.slack.replies import post, upload
from okeguard.errors import OkeguardError

if TYPE_CHECKING:
    from slack_bolt import App

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)
SLOW = frozenset({"scan", "fix", "digest"})
SEVERITIES = queries.SEVERITY_ORDER
LIST_LIMIT = 200


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]


def parse(text: str) -> Command:
    """The subcommand and its arguments (quotes group words); ``help`` when empty."""
    try:
        words = shlex.split(text or "")
    except ValueError:
        words = (text or "").split()
    if not words:
        return Command("help", ())
    return Command(words[0].lower(), tuple(words[1:]))


def register(app: App, ctx: BotContext) -> None:
    """Wire ``/okeguard``."""

    def acknowledge(ack: Any, body: dict[str, Any]) -> None:
        command = parse(body.get("text", ""))
        if command.name in SLOW:
            problem = _check_slow(ctx, command)
            if problem is not None:
                ack(**blocks.usage_error(problem).payload())
                return
            what = {"scan": "Scanning", "fix": "Planning the fix", "digest": "Building the digest"}
            ack(text=f":hourglass_flowing_sand: {what[command.name]}…")
            return
        try:
            message = quick(ctx, command, body)
        except OkeguardError as exc:
            message = blocks.usage_error(str(exc))
        ack(**message.payload())

    def run(body: dict[str, Any], respond: Any) -> None:
        command = parse(body.get("text", ""))
        if command.name not in SLOW or _check_slow(ctx, command) is not None:
            return
        user, channel = body["user_id"], body["channel_id"]
        try:
            slow(ctx, command, user, channel)
        except OkeguardError as exc:
            respond(**blocks.usage_error(str(exc)).payload())
        except Exception:
            log.exception("/okeguard %s failed", command.name)
            respond(text=f":warning: /okeguard {command.name} failed; see the bot's logs")

    app.command("/okeguard")(ack=acknowledge, lazy=[once(ctx)(run)])


def _check_slow(ctx: BotContext, command: Command) -> str | None:
    """A usage problem of a slow command, found before acknowledging it."""
    if command.name == "scan":
        names = {c.name for c in ctx.config.clusters}
        if command.args and command.args[0] not in names:
            return f"no configured cluster '{command.args[0]}' (configured: {', '.join(sorted(names)) or 'none'})"
        if len(command.args) > 2:
            return "usage: /okeguard scan [cluster] [namespace]"
    if command.name == "fix" and len(command.args) != 1:
        return "usage: /okeguard fix FINDING (a fingerprint prefix from /okeguard findings)"
    return None


def slow(ctx: BotContext, command: Command, user: str, channel: str) -> None:
    """Run ``scan``, ``fix`` or ``digest`` and post the result."""
    if command.name == "scan":
        from okeguard.bot.slack.work import scan_and_record, summary_message

        clusters = command.args[:1]
        namespaces = command.args[1:2]
        for part in scan_and_record(ctx, clusters, namespaces, actor_of(user)):
            post(ctx, channel, summary_message(part))
    elif command.name == "fix":
        from okeguard.bot.slack.actions import request_fix_for

        request_fix_for(ctx, command.args[0], user, channel)
    elif command.name == "digest":
        send_digest(ctx, channel, clusters=(), actor=actor_of(user))


def send_digest(ctx: BotContext, channel: str, *, clusters: tuple[str, ...], actor: str) -> None:
    """Build, post (with its chart) and record the digest of ``channel``."""
    from okeguard.bot.slack.chart import trend_png
    from okeguard.bot.slack.digest import build_digest, record_digest

    with ctx.sessions() as session:
        digest = build_digest(session, channel=channel, now=ctx.now(), clusters=clusters or None)
    png = trend_png(digest)
    ts = post(ctx, channel, blocks.digest_message(digest, chart_attached=png is not None))
    if png is not None:
        upload(
            ctx,
            channel,
            content=png,
            filename="okeguard-trend.png",
            title="Open findings by severity, last 30 days",
            thread_ts=ts,
        )
    with ctx.sessions.begin() as session:
        record_digest(session, digest, channel=channel, actor=actor)


def quick(ctx: BotContext, command: Command, body: dict[str, Any]) -> blocks.Message:
    """Answer a quick subcommand (database reads, exceptions) at once."""
    name, args = command.name, command.args
    if name == "help":
        return blocks.help_message()
    if name == "status":
        return _status(ctx)
    if name == "findings":
        return _findings(ctx, args)
    if name == "approvals":
        return _approvals(ctx)
    if name == "exceptions":
        from okeguard.bot.slack.exception_commands import exceptions_command

        return exceptions_command(ctx, args, body)
    if name == "history":
        if len(args) != 1:
            return blocks.usage_error(
                "usage: /okeguard history KIND/NAMESPACE/NAME or a fingerprint"
            )
        return _history(ctx, args[0])
    return blocks.usage_error(f"unknown subcommand '{name}'")


def _findings(ctx: BotContext, args: tuple[str, ...]) -> blocks.Message:
    from okeguard.bot.slack.digest import finding_row

    clusters = {c.name for c in ctx.config.clusters}
    title = "Open findings"
    severities: list[str] = []
    on: list[str] = []
    for arg in args:
        if arg.lower() in SEVERITIES:
            severities.append(arg.lower())
            title += f", {arg.lower()}"
        elif arg in clusters or not clusters:
            on.append(arg)
            title += f" on {arg}"
        else:
            return blocks.usage_error(
                f"'{arg}' is neither a configured cluster nor a severity: /okeguard findings [cluster] [severity]"
            )
    with ctx.sessions() as session:
        rows = queries.open_findings(session, severities=severities, clusters=on, limit=5000)
        found = [finding_row(r) for r in rows]
    found.sort(key=lambda r: (SEVERITIES.index(r.severity), r.check_id, r.resource))
    return blocks.findings_list(found[:LIST_LIMIT], title=title)


def _approvals(ctx: BotContext) -> blocks.Message:
    from okeguard.bot.slack.digest import request_row

    with ctx.sessions() as session:
        requests = queries.pending_requests(session, ctx.now())
        rows = [request_row(r, r.created_at) for r in requests]
    return blocks.approvals_list(rows)


def _history(ctx: BotContext, resource: str) -> blocks.Message:
    """``KIND/NAMESPACE/NAME``, ``KIND/NAME`` (any namespace) or a finding id."""
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
            for e in queries.finding_history(session, list(checks))
        ]
    if not checks:
        return blocks.usage_error(f"no recorded finding on '{resource}'")
    return blocks.history_message(resource, events)


def _what(event: AuditEvent, checks: dict[str, str]) -> str:
    """An audit event as a history line: the action and what it was about."""
    if event.subject_type == "finding":
        return f"{event.action} ({checks.get(event.subject_id, event.subject_id[:12])})"
    return f"{event.action} (request #{event.subject_id})"


def _status(ctx: BotContext) -> blocks.Message:
    from okeguard import __version__

    with ctx.sessions() as session:
        last = queries.last_scan(session)
        pending = queries.pending_request_count(session)
        exceptions = queries.exception_count(session)
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
        "Scheduled scans": str(len(ctx.config.schedule.scans)),
        "Digests": ", ".join(
            f"<#{d.channel}> at {d.time} {d.timezone}" for d in ctx.config.schedule.digests
        )
        or "none",
    }
    return blocks.status_message(lines)
