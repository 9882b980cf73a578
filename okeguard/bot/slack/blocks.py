"""Slack messages of okeguard: pure functions from data to :class:`Message` (text + blocks) or
modal :class:`~slack_sdk.models.views.View`, built with ``slack_sdk.models.blocks`` so Slack's
limits are validated when serialised. Every message holds at most 50 blocks.

The larger messages live beside this module (``blocks_scan``, ``blocks_fix``, ``blocks_digest``);
this one holds the small ones of ``/okeguard`` and re-exports the rest, so the app imports
everything from here.

Action ids (a contract with the app): ``okeguard.preview``, ``okeguard.request``,
``okeguard.snooze``, ``okeguard.accept`` (value: the finding's fingerprint), ``okeguard.approve``
(value ``"<request id>:<plan hash>"``), ``okeguard.reject`` (value: the request id); the
accept-risk modal's callback id is ``okeguard.accept_risk``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from okeguard.bot.slack.blocks_common import (
    MAX_BLOCKS,
    SEVERITY_EMOJI,
    Message,
    code,
    context,
    escape,
    header,
    mention,
    message,
    pack_lines,
    section,
    slack_date,
)
from okeguard.bot.slack.blocks_digest import digest_message, request_line
from okeguard.bot.slack.blocks_fix import (
    ACTION_APPROVE,
    ACTION_REJECT,
    CALLBACK_ACCEPT_RISK,
    AcceptRiskError,
    accept_risk_modal,
    apply_result,
    approval_decided,
    approval_request,
    parse_accept_risk,
    plan_preview_modal,
)
from okeguard.bot.slack.blocks_scan import (
    ACTION_ACCEPT,
    ACTION_PREVIEW,
    ACTION_REQUEST,
    ACTION_SNOOZE,
    findings_list,
    is_actionable,
    scan_summary,
)
from okeguard.bot.slack.digest_model import RequestRow

__all__ = [
    "ACTION_ACCEPT",
    "ACTION_APPROVE",
    "ACTION_PREVIEW",
    "ACTION_REJECT",
    "ACTION_REQUEST",
    "ACTION_SNOOZE",
    "CALLBACK_ACCEPT_RISK",
    "MAX_BLOCKS",
    "SEVERITY_EMOJI",
    "AcceptRiskError",
    "Message",
    "accept_risk_modal",
    "apply_result",
    "approval_decided",
    "approval_request",
    "approvals_list",
    "digest_message",
    "error_modal",
    "escape",
    "findings_list",
    "help_message",
    "history_message",
    "is_actionable",
    "loading_modal",
    "parse_accept_risk",
    "plan_preview_modal",
    "refusal",
    "scan_summary",
    "status_message",
    "usage_error",
]

SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("scan [cluster] [namespace]", "scan now and post the summary"),
    ("findings [cluster] [severity]", "list open findings, worst first"),
    ("fix FINDING", "preview the fix of a finding (fingerprint prefix) and request it"),
    ("approvals", "remediation requests waiting for approval"),
    ("exceptions [add|list|remove|approve|reject]", "accepted risks and waivers"),
    ("history RESOURCE", "what happened to a resource, e.g. Deployment/shop/web"),
    ("digest", "post the digest now"),
    ("status", "the bot's clusters, last scans, scheduler and database"),
    ("help", "this message"),
)
HISTORY_EVENTS = 40


def _usage_lines() -> list[str]:
    return [f"`/okeguard {usage}` — {what}" for usage, what in SUBCOMMANDS]


def help_message() -> Message:
    """``/okeguard help``: every subcommand with what it does."""
    blocks: list[Block] = [
        header("okeguard: keep OKE clusters on security best practices"),
        section("\n".join(_usage_lines())),
        context(
            "Examples: `/okeguard scan shop-prod storefront` · `/okeguard findings shop-prod high`"
            " · `/okeguard fix 118c1684ba1d`"
        ),
    ]
    return message(
        "okeguard commands: " + ", ".join(u for u, _ in SUBCOMMANDS), blocks, ephemeral=True
    )


def usage_error(text: str) -> Message:
    """A ``/okeguard`` command that could not be understood: the problem, then the usage."""
    blocks: list[Block] = [
        section(f":warning: {escape(text)}"),
        section("\n".join(_usage_lines())),
    ]
    return message(f"okeguard: {text}", blocks, ephemeral=True)


def refusal(text: str) -> Message:
    """Why something was refused (not authorised, not allowed now); shown only to the asker."""
    return message(f"okeguard: {text}", [section(f":no_entry: {escape(text)}")], ephemeral=True)


def status_message(lines: Mapping[str, str]) -> Message:
    """``/okeguard status``: one ``*name*: value`` line per entry."""
    rows = [f"*{escape(name)}*: {escape(value)}" for name, value in lines.items()]
    blocks: list[Block] = [header("okeguard status")]
    sections, _ = pack_lines(rows or ["_(nothing to report)_"], max_blocks=5)
    blocks += sections
    text = "; ".join(f"{k}: {v}" for k, v in list(lines.items())[:10])
    return message(f"okeguard status: {text}", blocks)


def approvals_list(rows: Sequence[RequestRow]) -> Message:
    """``/okeguard approvals``: the requests waiting for approval, oldest first."""
    blocks: list[Block] = [header("Pending approvals")]
    if not rows:
        blocks.append(section(":white_check_mark: Nothing is waiting for approval."))
        return message("No pending approvals", blocks)
    ordered = sorted(rows, key=lambda r: (r.at, r.id))
    sections, _ = pack_lines(
        [f"• {request_line(r)}" for r in ordered],
        max_blocks=5,
        more="and {n} more: okeguard remediations list",
    )
    blocks += sections
    return message(f"{len(rows)} pending approvals", blocks)


def history_message(resource: str, events: Sequence[tuple[datetime, str, str]]) -> Message:
    """``/okeguard history RESOURCE``: its events ``(at, actor, what)``, newest first."""
    blocks: list[Block] = [section(f"*History of* {code(resource)}")]
    if not events:
        blocks.append(section("_No recorded events for this resource._"))
        return message(f"History of {resource}: no events", blocks)
    newest = sorted(events, key=lambda e: e[0], reverse=True)
    lines = [
        f"• {slack_date(at)} · {mention(actor)} · {escape(what)}"
        for at, actor, what in newest[:HISTORY_EVENTS]
    ]
    older = len(newest) - len(lines)
    sections, omitted = pack_lines(lines, max_blocks=5, more="and {n} older events")
    blocks += sections
    if older:
        blocks.append(
            context(f"{older + omitted} older events not shown: `okeguard audit` has them all")
        )
    return message(f"History of {resource}: {len(events)} events", blocks)


def _note_modal(icon: str, text: str) -> View:
    return View(
        type="modal",
        title="Fix preview",
        close="Close",
        blocks=[section(f"{icon} {escape(text)}")],
    )


def loading_modal(text: str) -> View:
    """The modal opened at once (a trigger id lives 3 s), updated when the work is done."""
    return _note_modal(":hourglass_flowing_sand:", text)


def error_modal(text: str) -> View:
    """What replaces a loading modal when the work failed: the one-line reason."""
    return _note_modal(":warning:", text)
