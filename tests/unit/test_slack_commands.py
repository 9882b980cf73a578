"""The ``/okeguard`` table and the wiring every listener relies on: help and usage come from one
table, lazy listeners find the bot's context in Bolt's ``context``, which Bolt may deep-copy."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from okeguard.bot.slack import blocks
from okeguard.bot.slack.commands import BY_NAME, SUBCOMMANDS, help_message, parse, usage_error
from okeguard.bot.slack.delivery import once
from okeguard.bot.slack.work import BOLT_KEY, BotContext, bot_context
from okeguard.config import Config


def test_one_table_gives_help_usage_and_the_slow_ones() -> None:
    assert [s.name for s in SUBCOMMANDS] == [
        *("scan", "findings", "fix", "approvals", "exceptions"),
        *("history", "digest", "status", "help"),
    ]
    assert len(BY_NAME) == len(SUBCOMMANDS)
    help_text = json.dumps(help_message().payload())
    usage_text = json.dumps(usage_error("nope").payload())
    for sub in SUBCOMMANDS:
        assert sub.usage.split()[0] == sub.name
        assert f"`/okeguard {sub.usage}`" in help_text and f"`/okeguard {sub.usage}`" in usage_text
        assert bool(sub.progress) == sub.slow  # a slow one says what it is doing
        assert sub.check is None or sub.slow
    assert {s.name for s in SUBCOMMANDS if s.slow} == {"scan", "fix", "digest"}


def test_parse_lowers_the_subcommand_and_groups_quoted_words() -> None:
    assert parse("") == parse("   ") and parse("").name == "help"
    command = parse('Exceptions add k8s.x a/b/c/d 30 "log agent"')
    assert command.name == "exceptions" and command.args[-1] == "log agent"
    assert parse('findings "unclosed').args == ('"unclosed',)


def test_a_success_is_a_notice_not_a_refusal() -> None:
    done = blocks.notice("Exception #1 added for 30 days.").payload()
    refused = blocks.refusal("you may not").payload()
    assert ":no_entry:" not in json.dumps(done) and ":white_check_mark:" in json.dumps(done)
    assert ":no_entry:" in json.dumps(refused)
    assert done["text"] == "okeguard: Exception #1 added for 30 days."


def _context() -> BotContext:
    unused: dict[str, Any] = dict.fromkeys(
        ("sessions", "client", "authorizer", "pacer", "metrics", "live_for", "scan")
    )
    return BotContext(config=Config(), **unused)


def test_the_bot_context_survives_bolts_copy_for_lazy_listeners() -> None:
    from slack_bolt import BoltContext

    ctx = _context()
    context = BoltContext({BOLT_KEY: ctx})
    copied = copy.deepcopy(context.to_copyable())  # what Bolt hands a lazy listener
    assert bot_context(copied) is ctx
    with pytest.raises(TypeError, match="not a BotContext"):
        bot_context({BOLT_KEY: object()})


def test_a_lazy_listener_must_take_the_context() -> None:
    def listener(body: dict[str, Any]) -> None:
        pass

    with pytest.raises(TypeError, match="'context'"):
        once(listener)
