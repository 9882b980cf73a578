"""Fix messages: the plan preview modal, the accept-risk modal (and its parser), the approval
request with its two-person buttons, the message that replaces it once decided, and the apply
result posted in its thread."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    DatePickerElement,
    InputBlock,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from okeguard.bot.slack.blocks_common import (
    SECTION_CHARS,
    Message,
    bullets,
    clip_mrkdwn,
    clip_plain,
    code,
    context,
    escape,
    header,
    mention,
    message,
    pack_lines,
    section,
    slack_date,
    target_label,
)
from okeguard.bot.slack.blocks_scan import ACTION_REQUEST
from okeguard.remediations.plan import Plan, short_hash

ACTION_APPROVE = "okeguard.approve"
ACTION_REJECT = "okeguard.reject"
CALLBACK_ACCEPT_RISK = "okeguard.accept_risk"
ACCEPT_RISK_DAYS = 30
REASON_MAX_CHARS = 2000
MODAL_DIFF_SECTIONS = 8  # about 23,000 characters of diff in the preview
MESSAGE_DIFF_SECTIONS = 2  # and about 5,800 in the approval message
_FENCE = "```"


def diff_sections(diff: str, *, max_sections: int) -> tuple[list[SectionBlock], bool]:
    """``diff`` as code-block sections (escaped, split at line ends), at most ``max_sections``;
    returns the sections and whether the diff had to be truncated."""
    if not diff.strip():
        return [section("_(no textual diff)_")], False
    # a ``` inside the diff would close the code block: break it with a zero-width space
    text = escape(diff.rstrip("\n")).replace(_FENCE, "`\u200b``")
    room = SECTION_CHARS - 2 * len(_FENCE) - 40  # fences, newlines and the truncation note
    chunks: list[list[str]] = [[]]
    size = 0
    truncated = False
    for raw in text.split("\n"):
        line = raw if len(raw) <= room else raw[: room - 1] + "…"
        if size + len(line) + 1 > room:
            if len(chunks) == max_sections:
                truncated = True
                break
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    if truncated:
        chunks[-1].append("… (truncated)")
    return [section(f"{_FENCE}\n" + "\n".join(c) + f"\n{_FENCE}") for c in chunks], truncated


def _plan_overview(plan: Plan) -> str:
    variant = "" if plan.variant == "default" else f" (variant {escape(plan.variant)})"
    return (
        f"*Remediation:* {escape(plan.remediation)}{variant} for {code(plan.check_id)}\n"
        f"*Target:* {code(target_label(plan.target))} on cluster *{escape(plan.cluster)}*"
    )


def _steps(plan: Plan, *, max_blocks: int) -> list[SectionBlock]:
    lines = [
        f"{n}. {escape(op.description)}" + ("" if op.reversible else " _(cannot be undone)_")
        for n, op in enumerate(plan.operations, 1)
    ]
    if not lines:
        lines = ["_(no operations)_"]
    blocks, _ = pack_lines(lines, max_blocks=max_blocks, title="*Steps*", more="and {n} more steps")
    return blocks


def _risks(plan: Plan, *, max_blocks: int) -> list[SectionBlock]:
    if not plan.risks:
        return [section("*Risks:* none known")]
    blocks, _ = pack_lines(
        bullets(escape(r) for r in plan.risks),
        max_blocks=max_blocks,
        title=":warning: *Risks*",
        more="and {n} more risks: see the full plan",
    )
    return blocks


def _hash_context(plan: Plan) -> Block:
    digest = plan.hash
    return context(f"Plan *`{short_hash(digest)}`* · full hash `{digest}`")


def request_button(fingerprint: str) -> ButtonElement:
    return ButtonElement(
        text="Request fix", action_id=ACTION_REQUEST, value=fingerprint, style="primary"
    )


def plan_preview_modal(plan: Plan, *, fingerprint: str) -> tuple[View, bool]:
    """The "Fix preview" modal: remediation, target, steps, risks, hash and diff, with a
    "Request fix" button. Returns the view and whether the diff was truncated (the app then
    uploads the full diff as a file)."""
    diff_blocks, truncated = diff_sections(plan.diff, max_sections=MODAL_DIFF_SECTIONS)
    blocks: list[Block] = [
        section(_plan_overview(plan)),
        *_steps(plan, max_blocks=3),
        *_risks(plan, max_blocks=4),
        _hash_context(plan),
        *diff_blocks,
    ]
    if truncated:
        blocks.append(context("Diff truncated: the full diff is attached as a file."))
    blocks.append(ActionsBlock(elements=[request_button(fingerprint)]))
    view = View(
        type="modal",
        title="Fix preview",
        close="Close",
        private_metadata=fingerprint,
        blocks=blocks,
    )
    return view, truncated


def accept_risk_modal(fingerprint: str, finding_label: str, *, today: date) -> View:
    """The modal asking why a finding's risk is accepted and until when (default 30 days)."""
    return View(
        type="modal",
        callback_id=CALLBACK_ACCEPT_RISK,
        private_metadata=fingerprint,
        title="Accept risk",
        submit="Accept risk",
        close="Cancel",
        blocks=[
            section(f"Accept the risk of {code(clip_plain(finding_label, 1000))}"),
            InputBlock(
                block_id="reason",
                label="Reason",
                hint="Why this is acceptable, and what mitigates it. Recorded in the audit trail.",
                element=PlainTextInputElement(
                    action_id="reason", multiline=True, max_length=REASON_MAX_CHARS
                ),
            ),
            InputBlock(
                block_id="expires",
                label="Expires on",
                hint="The finding reopens on this day.",
                element=DatePickerElement(
                    action_id="expires",
                    initial_date=(today + timedelta(days=ACCEPT_RISK_DAYS)).isoformat(),
                ),
            ),
        ],
    )


class AcceptRiskError(ValueError):
    """A refused accept-risk submission; ``field`` is the block id to show ``problem`` under."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_accept_risk(
    state_values: Mapping[str, Any], *, today: date | None = None
) -> tuple[str, date]:
    """The reason and expiry of a submitted accept-risk modal (``view["state"]["values"]``).

    Raises :class:`AcceptRiskError` (a ValueError naming the field) for an empty reason, or an
    expiry that is missing, malformed, or not after ``today`` (default: today in UTC).
    """
    today = today or datetime.now(UTC).date()
    reason_value = (state_values.get("reason") or {}).get("reason") or {}
    reason = str(reason_value.get("value") or "").strip()
    if not reason:
        raise AcceptRiskError("reason", "give a reason for accepting the risk")
    if len(reason) > REASON_MAX_CHARS:
        raise AcceptRiskError("reason", f"keep the reason under {REASON_MAX_CHARS} characters")
    expires_value = (state_values.get("expires") or {}).get("expires") or {}
    raw = expires_value.get("selected_date")
    if not raw:
        raise AcceptRiskError("expires", "choose the day the acceptance expires")
    try:
        expires = date.fromisoformat(str(raw))
    except ValueError:
        raise AcceptRiskError("expires", f"'{raw}' is not a date (YYYY-MM-DD)") from None
    if expires <= today:
        raise AcceptRiskError("expires", f"choose a day after today ({today.isoformat()})")
    return reason, expires


def approval_request(
    request_id: int,
    plan: Plan,
    *,
    requester: str,
    expires_at: datetime,
    approvers_hint: str,
) -> Message:
    """The approval request: who asked, what changes where, risks, hash, diff, steps, expiry,
    and Approve / Reject. ``approvers_hint`` is trusted mrkdwn (it may hold mentions)."""
    digest = plan.hash
    target = target_label(plan.target)
    diff_blocks, truncated = diff_sections(plan.diff, max_sections=MESSAGE_DIFF_SECTIONS)
    approve = ButtonElement(
        text="Approve",
        action_id=ACTION_APPROVE,
        value=f"{request_id}:{digest}",
        style="primary",
        confirm=ConfirmObject(
            title="Approve this fix?",
            text=clip_mrkdwn(
                f"Plan *`{short_hash(digest)}`* ({escape(plan.remediation)}) will be applied to "
                f"{code(clip_plain(target, 120))}. Full hash: `{digest}`",
                300,
            ),
            confirm="Approve",
            deny="Cancel",
        ),
    )
    reject = ButtonElement(
        text="Reject", action_id=ACTION_REJECT, value=str(request_id), style="danger"
    )
    blocks: list[Block] = [
        header(f"Approval needed: {plan.remediation}"),
        section(
            f"{mention(requester)} asks to apply a fix (request #{request_id}).\n"
            + _plan_overview(plan)
        ),
        section(f"*Plan hash:* *`{short_hash(digest)}`*\n`{digest}`"),
        *_risks(plan, max_blocks=3),
        *diff_blocks,
    ]
    if truncated:
        blocks.append(context("Diff truncated: full diff attached."))
    blocks += [
        *_steps(plan, max_blocks=2),
        context(f"Expires {slack_date(expires_at)} · Approvers: {approvers_hint}"),
        ActionsBlock(block_id=f"okeguard.approval.{request_id}", elements=[approve, reject]),
    ]
    text = (
        f"Approval needed: {plan.remediation} on {target} ({plan.cluster}), request "
        f"#{request_id}, plan {short_hash(digest)}"
    )
    return message(text, blocks, diff_truncated=truncated)


def decision_line(state: str, actor: str, reason: str | None) -> str:
    """One line saying what became of a request, e.g. ``✅ Approved by <@U2> — applying``."""
    who = mention(actor) if actor else "someone"
    why = f": {escape(reason)}" if reason else ""
    lines = {
        "approved": f":white_check_mark: Approved by {who} — applying",
        "applying": f":white_check_mark: Approved by {who} — applying",
        "applied": f":white_check_mark: Applied and verified (approved by {who})",
        "rejected": f":x: Rejected by {who}{why}",
        "expired": ":hourglass: Expired: nobody approved it in time",
        "rolled-back": f":leftwards_arrow_with_hook: Rolled back{why or ': verification failed'}",
        "failed": f":warning: Failed{why}",
        "superseded": ":repeat: Superseded: the target changed since approval"
        + (f" ({escape(reason)})" if reason else ""),
        "pending-approval": f":hourglass_flowing_sand: Waiting for approval ({who})",
    }
    return lines.get(state, f"{escape(state)} ({who}){why}")


def approval_decided(
    request_id: int, plan: Plan, *, state: str, actor: str, reason: str | None
) -> Message:
    """What replaces an approval request once decided or applied: the outcome, no buttons."""
    outcome = decision_line(state, actor, reason)
    blocks: list[Block] = [
        section(f"{outcome}\n{_plan_overview(plan)}"),
        context(f"Request #{request_id} · plan *`{short_hash(plan.hash)}`* · `{plan.hash}`"),
    ]
    text = f"Request #{request_id} ({plan.remediation}): {state}"
    return message(text, blocks)


_RESULT_LINES = {
    "applied": ":white_check_mark: *Applied and verified*",
    "rolled-back": ":leftwards_arrow_with_hook: *Rolled back*",
    "failed": ":warning: *Failed*",
    "superseded": ":repeat: *Superseded*: the target changed since approval; nothing was written",
}


def apply_result(
    result_state: str, reason: str | None, request_id: int, events: Sequence[str]
) -> Message:
    """The thread reply after an apply: the outcome, why, and what happened step by step."""
    outcome = _RESULT_LINES.get(result_state, f"*{escape(result_state)}*")
    lines = [outcome + (f": {escape(reason)}" if reason else "")]
    blocks: list[Block] = [section("\n".join(lines))]
    if events:
        steps, _ = pack_lines(
            bullets(escape(e) for e in events),
            max_blocks=3,
            title="*What happened*",
            more="and {n} more events: `okeguard audit`",
        )
        blocks += steps
    blocks.append(context(f"Request #{request_id}"))
    text = f"Request #{request_id}: {result_state}" + (f" ({reason})" if reason else "")
    return message(text, blocks)
