"""``/okeguard``: one table, :data:`SUBCOMMANDS`, says for each subcommand how it is typed, what
it does, whether it is quick (answered in the acknowledgement: database reads, exceptions) or
slow (acknowledged at once, then done by a lazy listener that posts when done: scan, fix,
digest), and which function does it. Help, usage and dispatch all come from the table.

Anything not understood gets the usage, only to the person who typed it: a handler raises
``UsageError`` (any ``OkeguardError``) with the problem.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from okeguard.bot.slack import blocks, query_commands
from okeguard.bot.slack.approval_flow import request_fix_for
from okeguard.bot.slack.delivery import once
from okeguard.bot.slack.exception_commands import exceptions_command
from okeguard.bot.slack.people import actor_of
from okeguard.bot.slack.replies import post, upload
from okeguard.bot.slack.work import bot_context
from okeguard.errors import OkeguardError, UsageError

if TYPE_CHECKING:
    from slack_bolt import Ack, App, BoltContext, Respond

    from okeguard.bot.slack.work import BotContext

log = logging.getLogger(__name__)

# (the bot's context, the arguments, the Slack body) -> the answer; slow handlers post instead
Handler = Callable[["BotContext", tuple[str, ...], dict[str, Any]], "blocks.Message | None"]
# (the bot's context, the arguments): raises UsageError for what a slow subcommand cannot run
Check = Callable[["BotContext", tuple[str, ...]], None]


@dataclass(frozen=True)
class Subcommand:
    """One ``/okeguard`` subcommand: ``usage`` as help shows it (it starts with ``name``),
    ``help`` what it does; a ``slow`` one is acknowledged with ``progress`` (after ``check``
    found no usage problem) and its ``handler`` runs in a lazy listener."""

    name: str
    usage: str
    help: str
    handler: Handler
    slow: bool = False
    progress: str = ""
    check: Check | None = None


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


# ---------------------------------------------------------------- the slow ones


def _check_scan(ctx: BotContext, args: tuple[str, ...]) -> None:
    names = {c.name for c in ctx.config.clusters}
    if args and args[0] not in names:
        configured = ", ".join(sorted(names)) or "none"
        raise UsageError(f"no configured cluster '{args[0]}' (configured: {configured})")
    if len(args) > 2:
        raise UsageError("usage: /okeguard scan [cluster] [namespace]")


def _scan(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> None:
    from okeguard.bot.slack.work import scan_and_record, summary_message

    for part in scan_and_record(ctx, args[:1], args[1:2], actor_of(body["user_id"])):
        post(ctx, body["channel_id"], summary_message(part))


def _check_fix(ctx: BotContext, args: tuple[str, ...]) -> None:
    if len(args) != 1:
        raise UsageError(
            "usage: /okeguard fix FINDING (a fingerprint prefix from /okeguard findings)"
        )


def _fix(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> None:
    request_fix_for(ctx, args[0], body["user_id"], body["channel_id"])


def _digest(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> None:
    send_digest(ctx, body["channel_id"], clusters=(), actor=actor_of(body["user_id"]))


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


def _help(ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]) -> blocks.Message:
    return help_message()


# ---------------------------------------------------------------- the table

SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "scan",
        "scan [cluster] [namespace]",
        "scan now and post the summary",
        _scan,
        slow=True,
        progress="Scanning",
        check=_check_scan,
    ),
    Subcommand(
        "findings",
        "findings [cluster] [severity]",
        "list open findings, worst first",
        query_commands.findings,
    ),
    Subcommand(
        "fix",
        "fix FINDING",
        "preview the fix of a finding (fingerprint prefix) and request it",
        _fix,
        slow=True,
        progress="Planning the fix",
        check=_check_fix,
    ),
    Subcommand(
        "approvals",
        "approvals",
        "remediation requests waiting for approval",
        query_commands.approvals,
    ),
    Subcommand(
        "exceptions",
        "exceptions [add|list|remove|approve|reject]",
        "accepted risks and waivers",
        exceptions_command,
    ),
    Subcommand(
        "history",
        "history RESOURCE",
        "what happened to a resource, e.g. Deployment/shop/web",
        query_commands.history,
    ),
    Subcommand(
        "digest",
        "digest",
        "post the digest now",
        _digest,
        slow=True,
        progress="Building the digest",
    ),
    Subcommand(
        "status",
        "status",
        "the bot's clusters, last scans, scheduler and database",
        query_commands.status,
    ),
    Subcommand("help", "help", "this message", _help),
)
BY_NAME = {s.name: s for s in SUBCOMMANDS}


def help_message() -> blocks.Message:
    """``/okeguard help``: every subcommand of :data:`SUBCOMMANDS` with what it does."""
    return blocks.help_message([(s.usage, s.help) for s in SUBCOMMANDS])


def usage_error(text: str) -> blocks.Message:
    """The problem with a ``/okeguard`` command, then every subcommand's usage."""
    return blocks.usage_error(text, [(s.usage, s.help) for s in SUBCOMMANDS])


def _subcommand(command: Command) -> Subcommand:
    found = BY_NAME.get(command.name)
    if found is None:
        raise UsageError(f"unknown subcommand '{command.name}'")
    return found


# ---------------------------------------------------------------- the listeners


def acknowledge(ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
    """Answer a quick subcommand at once; acknowledge a slow one with its progress line."""
    ctx, command = bot_context(context), parse(body.get("text", ""))
    try:
        subcommand = _subcommand(command)
        if subcommand.slow:
            if subcommand.check is not None:
                subcommand.check(ctx, command.args)
            ack(text=f":hourglass_flowing_sand: {subcommand.progress}…")
            return
        answer = subcommand.handler(ctx, command.args, body)
    except OkeguardError as exc:
        answer = usage_error(str(exc))
    if answer is None:
        ack()
    else:
        ack(**answer.payload())


def run_slow(body: dict[str, Any], respond: Respond, context: BoltContext) -> None:
    """Run a slow subcommand after its acknowledgement (the others are done by then)."""
    ctx, command = bot_context(context), parse(body.get("text", ""))
    subcommand = BY_NAME.get(command.name)
    if subcommand is None or not subcommand.slow:
        return
    try:
        if subcommand.check is not None:
            subcommand.check(ctx, command.args)
    except OkeguardError:
        return  # the acknowledgement gave the usage
    try:
        subcommand.handler(ctx, command.args, body)
    except OkeguardError as exc:
        respond(**usage_error(str(exc)).payload())
    except Exception:
        log.exception("/okeguard %s failed", command.name)
        respond(text=f":warning: /okeguard {command.name} failed; see the bot's logs")


def register(app: App) -> None:
    """Wire ``/okeguard``."""
    app.command("/okeguard")(ack=acknowledge, lazy=[once(run_slow)])
