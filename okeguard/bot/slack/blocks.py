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
    "notice",
    "parse_accept_risk",
    "plan_preview_modal",
    "refusal",
    "scan_summary",
    "status_message",
    "usage_error",
]

HISTORY_EVENTS = 40

Usage = tuple[str, str]  # (a subcommand as typed, e.g. "scan [cluster] [namespace]"; what it does)


def _usage_lines(usages: Sequence[Usage]) -> list[str]:
    return [f"`/okeguard {usage}` — {what}" for usage, what in usages]


def help_message(usages: Sequence[Usage]) -> Message:
    """``/okeguard help``: every subcommand (``usages``, in order) with what it does."""
    blocks: list[Block] = [
        header("okeguard: keep OKE clusters on security best practices"),
        section("\n".join(_usage_lines(usages))),
        context(
            "Examples: `/okeguard scan shop-prod storefront` · `/okeguard findings shop-prod high`"
            " · `/okeguard fix 118c1684ba1d`"
        ),
    ]
    return message("okeguard commands: " + ", ".join(u for u, _ in usages), blocks, ephemeral=True)


def usage_error(text: str, usages: Sequence[Usage]) -> Message:
    """A ``/okeguard`` command that could not be understood: the problem, then the usage."""
    blocks: list[Block] = [
        section(f":warning: {escape(text)}"),
        section("\n".join(_usage_lines(usages))),
    ]
    return message(f"okeguard: {text}", blocks, ephemeral=True)


def refusal(text: str) -> Message:
    """Why something was refused (not authorised, not allowed now); shown only to the asker."""
    return message(f"okeguard: {text}", [section(f":no_entry: {escape(text)}")], ephemeral=True)


def notice(text: str, *, icon: str = ":white_check_mark:") -> Message:
    """What was done (snoozed, accepted, added…) or where it went; shown only to the asker."""
    return message(f"okeguard: {text}", [section(f"{icon} {escape(text)}")], ephemeral=True)


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
