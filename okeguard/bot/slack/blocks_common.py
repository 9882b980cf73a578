"""Shared parts of the Slack message builders: the :class:`Message` type, escaping, clipping and
the few block shapes every message uses.

Everything is built with ``slack_sdk.models.blocks`` so the SDK validates Slack's limits when a
block is serialised (``to_dict()``); the helpers here only make sure we never hand it text that
would fail (a section holds at most 3,000 characters, a header 150, a message 50 blocks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from okeguard.checks.model import SEVERITIES_DESC, SEVERITY_NAMES, ResourceRef, Severity

MAX_BLOCKS = 50  # Slack's limit for one message
SECTION_CHARS = 3000  # Slack's limit for a section's text
CONTEXT_CHARS = 2000  # keep context elements well inside Slack's text limit
HEADER_CHARS = 150
FALLBACK_CHARS = 3000  # the notification text: short, it is only the preview

SEVERITY_EMOJI: Mapping[str, str] = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":large_blue_circle:",
    Severity.INFO: ":white_circle:",
}
SEVERITY_RANK: Mapping[str, int] = {s.value: s.rank for s in SEVERITIES_DESC}

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]+$")
_MENTION = re.compile(r"^<@[UW][A-Z0-9]+>$")


@dataclass(frozen=True)
class Message:
    """A Slack message: ``text`` is the notification fallback, ``blocks`` what is shown.

    ``diff_truncated`` tells the app to upload the full diff as a file; ``ephemeral`` that the
    message is meant for the person who asked only (``chat.postEphemeral`` / ``respond``).
    """

    text: str
    blocks: list[Block]
    diff_truncated: bool = False
    ephemeral: bool = False

    def payload(self) -> dict[str, Any]:
        """``text`` and ``blocks`` as JSON-ready dicts (validated by the SDK on the way)."""
        return {"text": self.text, "blocks": [b.to_dict() for b in self.blocks]}


def message(
    text: str, blocks: Sequence[Block], *, diff_truncated: bool = False, ephemeral: bool = False
) -> Message:
    """A :class:`Message`, refusing more than :data:`MAX_BLOCKS` blocks (a bug, not input)."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: a Slack message holds at most {MAX_BLOCKS}")
    return Message(
        text=clip_plain(text, FALLBACK_CHARS),
        blocks=list(blocks),
        diff_truncated=diff_truncated,
        ephemeral=ephemeral,
    )


def escape(text: str) -> str:
    """``text`` made safe for mrkdwn: ``&``, ``<`` and ``>`` as entities (no links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip_plain(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clip_mrkdwn(text: str, limit: int) -> str:
    """Already-escaped mrkdwn cut to ``limit`` characters without splitting an entity."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # never leave half of "&amp;" behind
    return cut + "…"


def code(text: str) -> str:
    """Inline code of user text (escaped; backticks would end the span, so they become quotes)."""
    return "`" + escape(text.replace("`", "'")) + "`"


def mention(user: str) -> str:
    """``<@U123>`` for a Slack user id, the escaped name for anyone else (e.g. a CLI user)."""
    if _MENTION.match(user):
        return user
    if _SLACK_USER.match(user):
        return f"<@{user}>"
    return escape(user)


def severity_label(severity: str) -> str:
    return f"{SEVERITY_EMOJI.get(severity, ':white_circle:')} {severity}"


def severity_counts(by_severity: Mapping[str, int]) -> str:
    """``:red_circle: 5 critical · :large_orange_circle: 14 high · …`` (every severity)."""
    return " · ".join(f"{SEVERITY_EMOJI[s]} {by_severity.get(s, 0)} {s}" for s in SEVERITY_NAMES)


def score_text(score: int, change: int | None, *, since: str) -> str:
    """``*82*/100 (▲ 3 since the last scan)``; ▲ is better, ▼ worse."""
    if change is None:
        trend = "first measurement"
    elif change > 0:
        trend = f"▲ {change} since {since}"
    elif change < 0:
        trend = f"▼ {-change} since {since}"
    else:
        trend = f"unchanged since {since}"
    return f"*{score}*/100 ({trend})"


def slack_date(at: datetime) -> str:
    """A date Slack shows in each reader's own time zone; the fallback is UTC, zone named."""
    utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def target_label(target: Mapping[str, Any]) -> str:
    """A plan target (``ResourceRef.to_dict()``) for people: ``Deployment shop/web [app]``."""
    ref = ResourceRef(
        kind=str(target.get("kind") or "?"),
        namespace=target.get("namespace"),
        name=str(target.get("name") or "?"),
        container=target.get("container"),
        ocid=target.get("ocid"),
    )
    return ref.display()


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=clip_plain(text, HEADER_CHARS), emoji=True))


def section(mrkdwn: str) -> SectionBlock:
    """A section of already-escaped mrkdwn, clipped to Slack's limit."""
    return SectionBlock(text=MarkdownTextObject(text=clip_mrkdwn(mrkdwn, SECTION_CHARS)))


def context(*mrkdwn: str) -> ContextBlock:
    """A context block of already-escaped mrkdwn elements (at most 10)."""
    return ContextBlock(
        elements=[MarkdownTextObject(text=clip_mrkdwn(t, CONTEXT_CHARS)) for t in mrkdwn[:10]]
    )


def pack_lines(
    lines: Sequence[str],
    *,
    max_blocks: int,
    title: str = "",
    more: str = "and {n} more",
    limit: int = SECTION_CHARS,
) -> tuple[list[SectionBlock], int]:
    """Already-escaped ``lines`` packed into at most ``max_blocks`` sections (``title`` atop the
    first). Lines that do not fit are dropped and counted: the last section then ends with
    ``more`` (``{n}`` is the count). Returns the sections and how many lines were left out.
    """
    if max_blocks <= 0:
        return [], len(lines)
    reserve = len(more) + 16  # room for the "and N more" line, kept free in the last section
    title = clip_mrkdwn(title, limit - reserve - 1)
    chunks: list[list[str]] = [[title] if title else []]
    size = len(title)
    shown = 0
    for n, raw in enumerate(lines):
        line = clip_mrkdwn(raw, limit - reserve - 1)
        spare = 0 if n == len(lines) - 1 else reserve
        if len(line) > limit - size - 1 - (spare if len(chunks) == max_blocks else 0):
            if len(chunks) == max_blocks:
                break
            chunks.append([])
            size = 0
            if len(line) > limit - 1 - (spare if len(chunks) == max_blocks else 0):
                break
        chunks[-1].append(line)
        size += len(line) + 1
        shown += 1
    omitted = len(lines) - shown
    if omitted:
        chunks[-1].append("_" + escape(more.format(n=omitted)) + "_")
    return [section("\n".join(chunk)) for chunk in chunks if chunk], omitted


def bullets(items: Iterable[str]) -> list[str]:
    return [f"• {item}" for item in items]
