"""Slack messages: built from real scans and plans, validated by slack_sdk, never over 50 blocks."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from okeguard.bot.slack.blocks import (
    AcceptRiskError,
    Message,
    accept_risk_modal,
    apply_result,
    approval_decided,
    approval_request,
    approvals_list,
    digest_message,
    findings_list,
    history_message,
    parse_accept_risk,
    plan_preview_modal,
    refusal,
    scan_summary,
    status_message,
)
from okeguard.bot.slack.commands import help_message, usage_error
from okeguard.bot.slack.digest_model import (
    ClusterDigest,
    Digest,
    ExceptionRow,
    FindingRow,
    RequestRow,
)
from okeguard.checks.model import Finding, Severity, Status
from okeguard.inventory.model import Gap
from okeguard.remediations.plan import Plan
from okeguard.scanning import ScanReport
from okeguard.service import ScanRequest, run_scan

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script>&<@U999>"
# the only "<" a message may hold: mentions, dates and user groups we wrote ourselves
ALLOWED_ANGLE = re.compile(r"<(@[UW][A-Z0-9]+|!date\^[^>]+|!subteam\^[^>]+)>")


@pytest.fixture(scope="module")
def report() -> ScanReport:
    return run_scan(ScanRequest(demo=True))


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    """Real plans of two demo findings: a security context patch and an NSG migration."""
    from okeguard.bot.cli_context import CliContext
    from okeguard.bot.cli_fix import load_inventories, locate_finding
    from okeguard.remediations.planners import plan_finding

    config = CliContext(demo=True).config
    inventories = load_inventories(config, demo=True, snapshot=None, live=None)
    out = {}
    for name, ref in (("context", "k8s.privileged:platform/shop-admin"), ("nsg", "267e90626dde")):
        finding, inventory = locate_finding(config, inventories, ref)
        out[name] = plan_finding(finding, inventory, config.remediation)
    return out


def texts(payload: Any) -> list[str]:
    """Every "text" string in a serialised block tree."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found += texts(value)
    elif isinstance(payload, list):
        for item in payload:
            found += texts(item)
    return found


def mrkdwn(payload: Any) -> list[str]:
    """Every mrkdwn text object's text (plain_text is shown literally by Slack)."""
    if isinstance(payload, dict):
        if payload.get("type") == "mrkdwn":
            return [str(payload["text"])]
        return [t for value in payload.values() for t in mrkdwn(value)]
    if isinstance(payload, list):
        return [t for item in payload for t in mrkdwn(item)]
    return []


def serialise(blocks: list[Block]) -> list[dict[str, Any]]:
    """The SDK's validation runs in ``to_dict``; the mrkdwn never holds an unescaped ``<``."""
    out = [b.to_dict() for b in blocks]
    json.dumps(out)
    assert mrkdwn(out)
    for text in mrkdwn(out):
        assert "<" not in ALLOWED_ANGLE.sub("", text), text
    return out


def check_message(msg: Message) -> list[dict[str, Any]]:
    assert isinstance(msg, Message)
    assert msg.text
    assert 1 <= len(msg.blocks) <= 50
    return serialise(msg.blocks)


def check_view(view: View) -> dict[str, Any]:
    out = view.to_dict()  # validates title (<= 24), blocks (<= 100), private_metadata
    serialise(view.blocks)
    return out


def buttons(msg_blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in msg_blocks if b["type"] == "actions" for e in b["elements"]]


def many(findings: list[Finding], n: int, *, name: str = "svc") -> list[Finding]:
    """``n`` distinct findings cycling through the demo's."""
    out = []
    for i in range(n):
        f = findings[i % len(findings)]
        out.append(
            replace(
                f,
                resource=replace(f.resource, name=f"{name}-{i}"),
                fingerprint=f"{i:032x}",
            )
        )
    return out


# ---------------------------------------------------------------- scan summary


def summary(report: ScanReport, new: list[Finding], changed: list[Finding], **kw: Any) -> Message:
    args: dict[str, Any] = {
        "unchanged_count": 41,
        "score": 71,
        "score_change": -3,
        "cluster_label": "shop-prod",
    }
    return scan_summary(report, new=new, changed=changed, **{**args, **kw})


def test_scan_summary_lists_only_new_and_changed_with_exact_buttons(report: ScanReport) -> None:
    open_ = report.open_findings
    new = [f for f in open_ if f.remediation != "guidance"][:3] + [
        f for f in open_ if f.remediation == "guidance"
    ][:2]
    changed = [f for f in open_ if f.remediation != "guidance"][3:4]
    unchanged = [f for f in open_ if f not in new and f not in changed]
    out = check_message(summary(report, new, changed))
    body = "\n".join(texts(out))
    assert "*71*/100" in body and "▼ 3" in body
    assert ":red_circle: 5 critical" in body
    assert "and 41 findings unchanged since the last scan" in body
    assert "more new findings" not in body

    actionable = {f.fingerprint for f in new + changed if f.remediation != "guidance"}
    by_value: dict[str, list[dict[str, Any]]] = {}
    for b in buttons(out):
        by_value.setdefault(b["value"], []).append(b)
    assert set(by_value) == actionable  # guidance findings have no buttons
    for fp, elements in by_value.items():
        assert [(e["action_id"], e["text"]["text"]) for e in elements] == [
            ("okeguard.preview", "Preview fix"),
            ("okeguard.request", "Request fix"),
            ("okeguard.snooze", "Snooze 7 days"),
            ("okeguard.accept", "Accept risk…"),
        ]
        assert all(e["value"] == fp for e in elements)
        assert elements[1]["style"] == "primary"
    assert "guidance" in body
    for f in new + changed:
        assert f"`{f.resource.display()}`" in body
    for f in unchanged:  # unchanged ones are only counted
        if not any(f.resource == g.resource for g in new + changed):
            assert f"`{f.resource.display()}` _" not in body
    assert body.count("_changed_") == 1


def test_scan_summary_says_what_was_incomplete(report: ScanReport) -> None:
    gappy = replace(report, gaps=[Gap("kubernetes", "networkpolicies", "forbidden (403)")])
    out = check_message(summary(gappy, [], []))
    body = "\n".join(texts(out))
    assert "*Incomplete:* networkpolicies" in body
    assert "findings for these are `unknown`, not passing" in body
    assert "forbidden (403)" in body
    assert "No new or changed findings" in body


def test_scan_summary_of_1000_new_findings_shows_the_worst_and_counts_the_rest(
    report: ScanReport,
) -> None:
    new = many(report.open_findings, 1000)
    msg = summary(report, new, [])
    out = check_message(msg)
    assert len(msg.blocks) <= 50
    last = texts(out[-1])[0]
    match = re.fullmatch(
        r"… and (\d+) more new findings: `okeguard findings list` or `/okeguard findings`", last
    )
    assert match, last
    shown = sum(t.count("_new_") for t in texts(out))
    assert shown + int(match.group(1)) == 1000
    # worst first: the severities of the listed groups never increase
    ranks = [
        Severity(t.split(" · ")[1]).rank
        for t in texts(out)
        if " new or changed" in t.split("\n")[0]
    ]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == Severity.CRITICAL.rank


def test_scan_summary_escapes_resource_names_and_messages(report: ScanReport) -> None:
    f = next(f for f in report.open_findings if f.remediation != "guidance")
    evil = replace(f, resource=replace(f.resource, name=HOSTILE), message=HOSTILE)
    out = check_message(summary(report, [evil], [], cluster_label=HOSTILE))
    body = "\n".join(texts(out))
    assert "&lt;script&gt;alert('x')&lt;/script&gt;&amp;&lt;@U999&gt;" in body
    assert "<script>" not in "".join(t for t in texts(out[1:]))


def test_unknown_findings_get_no_buttons(report: ScanReport) -> None:
    f = next(f for f in report.open_findings if f.remediation != "guidance")
    unknown = replace(f, status=Status.UNKNOWN)
    out = check_message(summary(report, [unknown], []))
    assert buttons(out) == []
    assert "_unknown_" in "\n".join(texts(out))


# ---------------------------------------------------------------- plans and approvals


def test_plan_preview_modal(plans: dict[str, Plan]) -> None:
    plan = plans["context"]
    view, truncated = plan_preview_modal(plan, fingerprint=plan.finding)
    out = check_view(view)
    assert not truncated
    assert out["title"]["text"] == "Fix preview" and "submit" not in out
    assert out["close"]["text"] == "Close"
    body = "\n".join(texts(out["blocks"]))
    assert plan.hash[:12] in body and plan.hash in body
    assert "```" in body and "+    runAsNonRoot: true" in body
    assert "harden the pod template" in body and "UID 10001" in body
    assert buttons(out["blocks"]) == [
        {
            "type": "button",
            "action_id": "okeguard.request",
            "value": plan.finding,
            "style": "primary",
            "text": {"type": "plain_text", "text": "Request fix", "emoji": True},
        }
    ]


def test_plan_preview_modal_truncates_a_100kb_diff(plans: dict[str, Plan]) -> None:
    plan = replace(plans["nsg"], diff="+ <rule> & more\n" * 7000)
    view, truncated = plan_preview_modal(plan, fingerprint=plan.finding)
    out = check_view(view)
    assert truncated and len(out["blocks"]) <= 100
    body = "\n".join(texts(out["blocks"]))
    assert "full diff is attached" in body and "+ &lt;rule&gt; &amp; more" in body


def test_approval_request_buttons_and_contents(plans: dict[str, Plan]) -> None:
    plan = plans["nsg"]
    msg = approval_request(
        42, plan, requester="U123ABC", expires_at=NOW + timedelta(hours=24), approvers_hint="<@U7>"
    )
    out = check_message(msg)
    body = "\n".join(texts(out))
    assert "<@U123ABC>" in body and "move-rules-to-nsg" in body
    assert f"*`{plan.hash[:12]}`*" in body and plan.hash in body
    assert "create NSG okeguard-shop-prod-endpoint" in body  # steps
    assert "pool-legacy" in body  # risks
    assert "<!date^" in body
    approve, reject = buttons(out)
    assert approve["action_id"] == "okeguard.approve"
    assert approve["value"] == f"42:{plan.hash}" and approve["style"] == "primary"
    assert plan.hash[:12] in approve["confirm"]["text"]["text"]
    assert reject == {
        "type": "button",
        "action_id": "okeguard.reject",
        "value": "42",
        "style": "danger",
        "text": {"type": "plain_text", "text": "Reject", "emoji": True},
    }
    assert msg.diff_truncated is ("full diff attached" in body)


def test_approval_request_with_a_100kb_diff_and_many_risks(plans: dict[str, Plan]) -> None:
    plan = replace(
        plans["nsg"],
        diff="x" * 100 + "\n" + ("- old line\n+ new line\n" * 5000),
        risks=tuple(f"risk {i}: " + "r" * 400 for i in range(200)),
    )
    msg = approval_request(
        7, plan, requester="cli:alice", expires_at=NOW, approvers_hint="the platform team"
    )
    out = check_message(msg)
    assert msg.diff_truncated
    assert "full diff attached" in "\n".join(texts(out))
    assert "cli:alice" in "\n".join(texts(out))


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("approved", None, "Approved by <@U2> — applying"),
        ("rejected", "too risky <now>", "Rejected by <@U2>: too risky &lt;now&gt;"),
        ("expired", None, "Expired"),
        ("applied", None, "Applied and verified"),
        ("rolled-back", "pods crash-looped", "Rolled back: pods crash-looped"),
        ("superseded", None, "Superseded: the target changed since approval"),
        ("failed", "timeout", "Failed: timeout"),
    ],
)
def test_approval_decided_has_no_buttons(
    plans: dict[str, Plan], state: str, reason: str | None, expected: str
) -> None:
    out = check_message(
        approval_decided(9, plans["context"], state=state, actor="U2", reason=reason)
    )
    assert buttons(out) == []
    assert expected in "\n".join(texts(out))


def test_apply_result_caps_its_events() -> None:
    events = [f"step {i}: patched Deployment shop/web-{i} <ok>" for i in range(500)]
    out = check_message(apply_result("rolled-back", "verification failed", 12, events))
    body = "\n".join(texts(out))
    assert "Rolled back" in body and "verification failed" in body and "Request #12" in body
    assert "more events" in body
    check_message(apply_result("applied", None, 12, []))


# ---------------------------------------------------------------- accept risk


def test_accept_risk_modal() -> None:
    view = accept_risk_modal("abc123", "k8s.privileged on Deployment <x>", today=date(2026, 1, 1))
    out = check_view(view)
    assert out["callback_id"] == "okeguard.accept_risk"
    assert out["private_metadata"] == "abc123"
    reason, expires = out["blocks"][1], out["blocks"][2]
    assert (reason["block_id"], reason["element"]["action_id"]) == ("reason", "reason")
    assert reason["element"]["multiline"] is True and not reason.get("optional")
    assert (expires["block_id"], expires["element"]["action_id"]) == ("expires", "expires")
    assert expires["element"]["type"] == "datepicker"
    assert expires["element"]["initial_date"] == "2026-01-31"


def values(reason: str | None, day: str | None) -> dict[str, Any]:
    return {
        "reason": {"reason": {"type": "plain_text_input", "value": reason}},
        "expires": {"expires": {"type": "datepicker", "selected_date": day}},
    }


def test_parse_accept_risk() -> None:
    today = date(2026, 1, 1)
    assert parse_accept_risk(values("  behind the WAF  ", "2026-02-01"), today=today) == (
        "behind the WAF",
        date(2026, 2, 1),
    )


@pytest.mark.parametrize(
    ("reason", "day", "field"),
    [
        ("", "2026-02-01", "reason"),
        ("   ", "2026-02-01", "reason"),
        (None, "2026-02-01", "reason"),
        ("ok", "2025-12-31", "expires"),
        ("ok", "2026-01-01", "expires"),
        ("ok", None, "expires"),
        ("ok", "next week", "expires"),
    ],
)
def test_parse_accept_risk_refuses(reason: str | None, day: str | None, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: ") as caught:
        parse_accept_risk(values(reason, day), today=date(2026, 1, 1))
    assert isinstance(caught.value, AcceptRiskError) and caught.value.field == field


def test_parse_accept_risk_refuses_an_empty_form() -> None:
    with pytest.raises(AcceptRiskError, match="reason"):
        parse_accept_risk({})


# ---------------------------------------------------------------- digest


def row(i: int, severity: str = "high", cluster: str = "shop-prod") -> FindingRow:
    return FindingRow(
        fingerprint=f"{i:032x}",
        check_id="k8s.run-as-root",
        severity=severity,
        cluster=cluster,
        resource=f"Deployment shop/web-{i} (container app)",
        message=f"container app runs as root <{i}>",
    )


def request(i: int, state: str = "pending-approval") -> RequestRow:
    return RequestRow(
        id=i,
        remediation="add-security-context",
        cluster="shop-prod",
        check_id="k8s.run-as-root",
        state=state,
        requester="U1",
        approver="U2" if state == "applied" else None,
        at=NOW,
        expires_at=NOW + timedelta(days=1),
    )


def digest(
    clusters: int, rows: int, *, requests: int = 3, exceptions: int = 2, first: bool = False
) -> Digest:
    return Digest(
        generated_at=NOW,
        since=None if first else NOW - timedelta(days=1),
        clusters=tuple(
            ClusterDigest(
                cluster=f"cluster-{c}",
                score=50 + c % 50,
                score_change=None if first else (c % 7) - 3,
                by_severity={"critical": 1, "high": rows, "medium": 3, "low": 0, "info": 2},
                new=tuple(row(i, cluster=f"cluster-{c}") for i in range(rows)),
                resolved=tuple(row(i + 10_000, "medium") for i in range(rows)),
                top_risks=tuple(row(i, "critical") for i in range(min(rows, 5))),
                incomplete=("oci:vcn (403)",) if c % 2 else (),
            )
            for c in range(clusters)
        ),
        pending_approvals=tuple(request(i) for i in range(requests)),
        expiring_exceptions=tuple(
            ExceptionRow(
                id=i,
                check_id="k8s.latest-tag",
                selector="cluster shop-prod, Deployment shop/web",
                author="U3",
                reason="vendor image <pinned soon>",
                expires_at=NOW + timedelta(days=3),
            )
            for i in range(exceptions)
        ),
        remediations_applied=tuple(request(i, "applied") for i in range(requests)),
    )


def test_digest_message_for_two_clusters() -> None:
    out = check_message(digest_message(digest(2, 8), chart_attached=True))
    body = "\n".join(texts(out))
    assert "*cluster-0*" in body and "*cluster-1*" in body
    assert "▼ 3" in body and "▼ 2" in body
    assert "and 3 more" in body  # 8 new findings, 5 shown
    assert "*Top risks*" in body and "*Resolved*" in body
    assert "Pending approvals" in body and "Exceptions expiring this week" in body
    assert "Remediations applied" in body and "approved by <@U2>" in body
    assert "chart is attached" in body
    assert "findings for these are `unknown`, not passing" in body
    assert buttons(out) == []


def test_first_digest_without_chart() -> None:
    out = check_message(
        digest_message(digest(1, 0, requests=0, exceptions=0, first=True), chart_attached=False)
    )
    body = "\n".join(texts(out))
    assert "First digest" in body and "first measurement" in body
    assert "chart" not in body and "Pending approvals*: none" in body


@pytest.mark.parametrize("clusters", [0, 1, 10, 11, 40, 500])
def test_digest_stays_within_50_blocks(clusters: int) -> None:
    msg = digest_message(digest(clusters, 500, requests=300, exceptions=300), chart_attached=True)
    check_message(msg)


# ---------------------------------------------------------------- the small ones


def test_help_and_usage_error() -> None:
    out = check_message(help_message())
    body = "\n".join(texts(out))
    for sub in (
        "scan [cluster] [namespace]",
        "findings [cluster] [severity]",
        "fix FINDING",
        "approvals",
        "exceptions [add|list|remove|approve|reject]",
        "history RESOURCE",
        "digest",
        "status",
        "help",
    ):
        assert f"`/okeguard {sub}`" in body
    msg = usage_error("unknown subcommand '<frob>'")
    out = check_message(msg)
    assert msg.ephemeral and "unknown subcommand '&lt;frob&gt;'" in texts(out)[0]


def test_refusal_status_history_and_lists(report: ScanReport) -> None:
    msg = refusal("only approvers may approve <sorry>")
    assert msg.ephemeral and "&lt;sorry&gt;" in texts(check_message(msg))[0]
    check_message(status_message({"clusters": "shop-prod, shop-legacy", "database": "ok <3"}))
    check_message(status_message({f"key {i}": "v" * 500 for i in range(300)}))
    events = [(NOW - timedelta(hours=i), "U1", f"event {i} <x>") for i in range(1000)]
    out = check_message(history_message("Deployment/shop/<web>", events))
    assert "older events" in "\n".join(texts(out))
    check_message(history_message("Deployment/shop/web", []))
    check_message(approvals_list([request(i) for i in range(1000)]))
    check_message(approvals_list([]))
    out = check_message(findings_list(report.findings, title="Open findings"))
    assert out[0]["type"] == "header"
    out = check_message(findings_list(many(report.findings, 1000), title="All"))
    assert "and " in texts(out)[-1]
    check_message(findings_list([], title="None"))
    check_message(findings_list([row(1)], title="Rows"))


# ---------------------------------------------------------------- properties


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n_new=st.integers(0, 600),
    n_changed=st.integers(0, 300),
    name_len=st.integers(1, 250),
    with_gaps=st.integers(0, 80),
)
def test_scan_summary_never_exceeds_50_blocks(
    report: ScanReport, n_new: int, n_changed: int, name_len: int, with_gaps: int
) -> None:
    new = many(report.findings, n_new, name="n" * name_len)
    changed = many(report.findings[7:], n_changed, name="c" * name_len)
    gappy = replace(report, gaps=[Gap("oci", f"oci:area{i}", "r" * 200) for i in range(with_gaps)])
    msg = summary(gappy, new, changed)
    check_message(msg)
    out_text = "\n".join(texts([b.to_dict() for b in msg.blocks]))
    if n_new + n_changed:
        assert "_new_" in out_text or "_changed_" in out_text


@settings(max_examples=40, deadline=None)
@given(
    clusters=st.integers(0, 80),
    rows=st.integers(0, 60),
    requests=st.integers(0, 200),
    exceptions=st.integers(0, 200),
)
def test_digest_never_exceeds_50_blocks(
    clusters: int, rows: int, requests: int, exceptions: int
) -> None:
    check_message(
        digest_message(
            digest(clusters, rows, requests=requests, exceptions=exceptions),
            chart_attached=bool(clusters % 2),
        )
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(diff_lines=st.integers(0, 6000), line_len=st.integers(0, 4000))
def test_diffs_of_any_size_fit(plans: dict[str, Plan], diff_lines: int, line_len: int) -> None:
    plan = replace(plans["context"], diff="\n".join(["&" * line_len] * diff_lines))
    view, truncated = plan_preview_modal(plan, fingerprint=plan.finding)
    check_view(view)
    msg = approval_request(1, plan, requester="U1", expires_at=NOW, approvers_hint="U2")
    check_message(msg)
    if diff_lines * (line_len * 5 + 1) < 2500:
        assert not truncated and not msg.diff_truncated
