"""``/okeguard exceptions list|add|remove|approve|reject``: answered at once, only to the asker.

Thin: the rules (longest expiry, fleet-wide exceptions waiting for an approver, who may
approve) are in ``okeguard.exception_governance``, which the command line calls too. Every
refusal is a one-line ephemeral answer and an ``exception.refused`` audit event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from okeguard.approval_policy import ApprovalRules, Person, slack_person
from okeguard.audit import queries
from okeguard.audit.models import ExceptionState
from okeguard.bot.slack import blocks
from okeguard.bot.slack.delivery import claim
from okeguard.errors import UsageError
from okeguard.exception_governance import (
    FAR_FUTURE,
    MAX_ID,
    ExceptionRefused,
    Waiver,
    add_governed,
    decide_governed,
    refuse,
    remove_governed,
)

if TYPE_CHECKING:
    from okeguard.bot.slack.work import BotContext

USAGE = "usage: /okeguard exceptions [list | add … | remove ID | approve ID | reject ID [reason]]"
ADD_USAGE = (
    "usage: /okeguard exceptions add CHECK-ID CLUSTER/KIND/NAMESPACE/NAME DAYS REASON "
    '(* for any part, e.g. k8s.host-path shop-prod/DaemonSet/*/fluent-bit 30 "log agent")'
)


def exceptions_command(
    ctx: BotContext, args: tuple[str, ...], body: dict[str, Any]
) -> blocks.Message:
    """Answer ``/okeguard exceptions …``: a message only the asker sees."""
    action = args[0].lower() if args else "list"
    if action == "list":
        return _list(ctx)
    if action not in ("add", "remove", "approve", "reject"):
        raise UsageError(USAGE)
    if not claim(ctx, body, part="exceptions"):  # a write: once, whichever replica got it
        return blocks.notice("Already done.", icon=":information_source:")
    user = body["user_id"]
    person = slack_person(user, ctx.config.cli)
    try:
        if not ctx.authorizer.may_request(user):
            raise refuse(
                ctx.sessions,
                person.actor,
                action,
                "you may not change exceptions (slack.requesters)",
            )
        if action == "add":
            return _add(ctx, args, person)
        exception_id = _exception_id(args)
        if exception_id is None:
            raise UsageError(USAGE)
        if action == "remove":
            rule = remove_governed(ctx.sessions, exception_id, person)
            return blocks.notice(f"Exception removed: #{exception_id} ({rule.check_id}).")
        rule = decide_governed(
            ctx.sessions,
            exception_id,
            person,
            ApprovalRules.of(ctx.config),
            approve=action == "approve",
            reason=" ".join(args[2:]) or None,
            members=ctx.authorizer.members,
            now=ctx.now(),
        )
        return blocks.notice(f"Exception #{exception_id} is {rule.state} by {person.actor}.")
    except ExceptionRefused as exc:
        ctx.metrics.refusals.labels(f"exceptions {action}").inc()
        return blocks.refusal(str(exc))


def _number(text: str) -> int | None:
    """A plain (ASCII) number; one too long to be sensible becomes ``MAX_ID + 1``."""
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 12 else MAX_ID + 1


def _exception_id(args: tuple[str, ...]) -> int | None:
    return _number(args[1].removeprefix("#")) if len(args) >= 2 else None


def _add(ctx: BotContext, args: tuple[str, ...], person: Person) -> blocks.Message:
    from okeguard.checks.registry import get_check

    # add CHECK_ID CLUSTER/KIND/NAMESPACE/NAME DAYS REASON…
    days = _number(args[3].removesuffix("d")) if len(args) > 3 else None
    if len(args) < 5 or days is None:
        raise UsageError(ADD_USAGE)
    check_id, selector, reason = args[1], args[2], " ".join(args[4:]).strip()
    if get_check(check_id) is None:
        raise UsageError(f"unknown check id '{check_id}' (see `okeguard checks`)")
    parts = selector.split("/")
    if len(parts) != 4:
        raise UsageError(f"selector '{selector}' is not CLUSTER/KIND/NAMESPACE/NAME")
    now = ctx.now()
    # beyond the limit (perhaps too large to add to a date): the governance refuses it, audited
    limit = ctx.config.exceptions.max_days
    expires = now + timedelta(days=days) if days <= limit else FAR_FUTURE
    cluster, kind, namespace, name = parts
    rule = add_governed(
        ctx.sessions,
        Waiver(check_id, reason, expires, cluster, kind, namespace, name),
        person,
        ApprovalRules.of(ctx.config),
        ctx.config.exceptions,
        members=ctx.authorizer.members,
        now=now,
    )
    if rule.state == ExceptionState.PENDING_APPROVAL.value:
        return blocks.notice(
            f"Exception #{rule.id} waits for an approver: it covers every cluster and resource "
            f"(/okeguard exceptions approve {rule.id}).",
            icon=":hourglass_flowing_sand:",
        )
    return blocks.notice(f"Exception #{rule.id} added for {days} days.")


def _list(ctx: BotContext) -> blocks.Message:
    with ctx.sessions() as session:
        rules = queries.listed_exceptions(session, ctx.now(), limit=200)
        lines = [
            f"#{r.id} `{r.check_id}` {queries.exception_scope(r)}: {r.reason} (by {r.author}"
            + (f", until {r.expires_at:%Y-%m-%d}" if r.expires_at else "")
            + (", *waiting for an approver*" if r.state != ExceptionState.ACTIVE.value else "")
            + ")"
            for r in rules
        ]
    return blocks.status_message({"Exceptions": "\n".join(lines) or "none"})
