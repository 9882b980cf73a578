"""``okeguard remediations``: list, show, approve, reject, apply and reconcile recorded requests.

Thin, like ``okeguard fix`` (``cli_fix``): the rules live in ``okeguard.remediations``, and who
may approve in ``okeguard.approval_policy`` (the same rule as in Slack). The actor is the OS uid
(``okeguard.bot.identity``), never ``$USER``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CliContext, confirm
from okeguard.bot.cli_fix import render_plan, report_result
from okeguard.errors import UsageError

if TYPE_CHECKING:
    from okeguard.remediations.live import LiveCluster


@click.group("remediations")
def remediations_group() -> None:
    """Remediation requests: list, show, approve, reject, apply, reconcile.

    \b
    Examples:
      okeguard remediations list --state pending-approval
      okeguard remediations show 12
      okeguard remediations approve 12 --hash 3f9c2a71d0e4…(all 64 hex digits)
      okeguard remediations apply 12 --config okeguard.yaml --yes
      okeguard remediations reconcile --config okeguard.yaml
    """


_DB_OPTION = click.option(
    "--config", "config_path", metavar="FILE", help="Configuration file (database.url, clusters)."
)


@remediations_group.command("list")
@_DB_OPTION
@click.option("--state", "states", multiple=True, help="Only requests in this state (repeatable).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
def list_requests(config_path: str | None, states: tuple[str, ...], output_format: str) -> None:
    """List remediation requests, newest first."""
    from okeguard.audit import queries
    from okeguard.audit.models import RequestState

    for state in states:
        if state not in {s.value for s in RequestState}:
            names = ", ".join(s.value for s in RequestState)
            raise UsageError(f"--state: unknown state '{state}' (one of {names})")
    cli = CliContext.of(config_path)
    with cli.session() as session:
        rows = [_request_dict(r) for r in queries.remediation_requests(session, states)]
    if output_format == "json":
        cli.out(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No remediation requests.", err=True)
        return
    lines = [
        f"{'ID':>4}  {'STATE':<17} {'REMEDIATION':<24} {'CLUSTER':<16} {'PLAN':<12}  REQUESTER -> APPROVER"
    ]
    for r in rows:
        lines.append(
            f"{r['id']:>4}  {r['state']:<17} {r['remediation']:<24} {r['cluster']:<16} "
            f"{r['plan_hash'][:12]:<12}  {r['requester']} -> {r['approver'] or '-'}"
        )
    cli.out("\n".join(lines))


def _request_dict(r: Any) -> dict[str, Any]:
    def iso(v: Any) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": r.id,
        "state": r.state,
        "remediation": r.plan.get("remediation"),
        "cluster": r.plan.get("cluster"),
        "check_id": r.plan.get("check_id"),
        "finding": r.finding_fingerprint,
        "plan_hash": r.plan_hash,
        "requester": r.requester,
        "approver": r.approver,
        "reason": r.reason,
        "created_at": iso(r.created_at),
        "decided_at": iso(r.decided_at),
        "applied_at": iso(r.applied_at),
        "expires_at": iso(r.expires_at),
    }


@remediations_group.command("show")
@click.argument("request_id", type=int)
@_DB_OPTION
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def show_request(request_id: int, config_path: str | None, output_format: str) -> None:
    """Show a request: its plan, its diff and every audit event of it."""
    from okeguard.audit.models import RemediationRequest
    from okeguard.remediations.plan import Plan
    from okeguard.remediations.workflow import request_events

    cli = CliContext.of(config_path)
    with cli.session() as session:
        request = session.get(RemediationRequest, request_id)
        if request is None:
            raise UsageError(f"no remediation request {request_id}")
        info = _request_dict(request)
        plan = Plan.from_dict(request.plan)
        events = request_events(session, request_id)
    if output_format == "json":
        for e in events:
            e["at"] = e["at"].isoformat()
        cli.out(json.dumps({**info, "plan": plan.to_dict(), "events": events}, indent=2))
        return
    head = f"Request {request_id}: {info['state']}, requested by {info['requester']}"
    if info["approver"]:
        head += f", decided by {info['approver']}"
    if info["reason"]:
        head += f" ({info['reason']})"
    trail = [
        f"  {e['at']:%Y-%m-%d %H:%M:%S} {e['actor']:<12} {e['action']} {_event_detail(e['payload'])}"
        for e in events
    ]
    cli.out(head + "\n\n" + render_plan(plan) + "\nAudit trail:\n" + "\n".join(trail))


def _event_detail(payload: dict[str, Any]) -> str:
    parts = []
    if "step" in payload:
        parts.append(f"step {payload['step'] + 1}")
    for key in ("reason", "error", "to"):
        if payload.get(key):
            parts.append(str(payload[key]))
    return " ".join(parts)


@remediations_group.command("approve")
@click.argument("request_id", type=int)
@click.option(
    "--hash",
    "plan_hash",
    metavar="HASH",
    required=True,
    help="The full plan hash you reviewed (64 hex digits, from `remediations show`).",
)
@click.option("--reason", help="Why (recorded in the audit trail).")
@_DB_OPTION
def approve_request(
    request_id: int, plan_hash: str, reason: str | None, config_path: str | None
) -> None:
    """Approve a pending request (not your own), naming the full hash of the plan you reviewed."""
    _decide(request_id, True, plan_hash, reason, config_path)


@remediations_group.command("reject")
@click.argument("request_id", type=int)
@click.option("--reason", help="Why (recorded in the audit trail).")
@_DB_OPTION
def reject_request(request_id: int, reason: str | None, config_path: str | None) -> None:
    """Reject a pending request."""
    _decide(request_id, False, None, reason, config_path)


def _decide(
    request_id: int,
    approve: bool,
    plan_hash: str | None,
    reason: str | None,
    config_path: str | None,
) -> None:
    """Approve or reject as the command line's user: refused (and audited) unless their uid is
    in ``cli.approvers``, in the scopes of the request's cluster and remediation, and not the
    requester under any of their names."""
    from okeguard.approval_policy import ApprovalRules, approval_refusal
    from okeguard.audit.models import RemediationRequest
    from okeguard.bot.identity import cli_identity
    from okeguard.exception_governance import MAX_ID
    from okeguard.remediations.approvals import refuse
    from okeguard.remediations.workflow import decide

    cli = CliContext.of(config_path)
    config = cli.config
    person, rules = cli_identity(config), ApprovalRules.of(config)
    what = "approve" if approve else "reject"

    def refusal(request: RemediationRequest) -> str | None:
        return approval_refusal(
            person,
            rules,
            cluster=request.plan.get("cluster"),
            remediation=request.plan.get("remediation"),
            requester=request.requester if approve else None,
        )

    with cli.sessions(person.actor) as sessions:
        if not 1 <= request_id <= MAX_ID:
            raise refuse(
                sessions, request_id, person.actor, what, f"no remediation request {request_id}"
            )
        with sessions() as session:
            found = session.get(RemediationRequest, request_id)
            problem = refusal(found) if found is not None else None
        if found is None:
            problem = f"no remediation request {request_id} (see `okeguard remediations list`)"
        if problem:  # refused here for its reason; ``authorised`` below re-checks
            raise refuse(sessions, request_id, person.actor, what, problem)
        request = decide(
            sessions,
            request_id,
            person.actor,
            config.remediation,
            approve=approve,
            plan_hash=plan_hash,
            reason=reason,
            authorised=lambda _who, current: refusal(current) is None,
        )
    click.echo(f"Request {request_id}: {request.state} by {request.approver}.", err=True)


@remediations_group.command("apply")
@click.argument("request_id", type=int)
@click.option("--context", metavar="NAME", help="Kubeconfig context of the cluster.")
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file.")
@click.option("--cluster", metavar="NAME", help="The configured cluster (default: the plan's).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_DB_OPTION
def apply_approved(
    request_id: int,
    context: str | None,
    kubeconfig: str | None,
    cluster: str | None,
    yes: bool,
    config_path: str | None,
) -> None:
    """Apply an approved request exactly as approved (refused if the target changed)."""
    from okeguard.audit.models import RemediationRequest
    from okeguard.remediations.live import live_cluster
    from okeguard.remediations.workflow import apply_request

    cli = CliContext.of(config_path)
    config = cli.config
    with cli.sessions(cli.actor) as sessions:
        with sessions() as session:
            request = session.get(RemediationRequest, request_id)
            if request is None:
                raise UsageError(f"no remediation request {request_id}")
            plan_cluster = str(request.plan.get("cluster"))
        if (
            cluster is None
            and context is None
            and any(c.name == plan_cluster for c in config.clusters)
        ):
            cluster = plan_cluster
        live = live_cluster(config, cluster=cluster, context=context, kubeconfig=kubeconfig)
        confirm(yes, f"Apply request {request_id} to {live.name}?")
        report_result(apply_request(sessions, request_id, cli.actor, live))


@remediations_group.command("reconcile")
@click.option("--context", metavar="NAME", help="Kubeconfig context (for clusters not configured).")
@click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file.")
@_DB_OPTION
def reconcile_requests(
    context: str | None, kubeconfig: str | None, config_path: str | None
) -> None:
    """Settle requests a crash left 'applying', and expire stale ones (the bot runs this at start)."""
    from okeguard.remediations.live import live_cluster
    from okeguard.remediations.workflow import reconcile

    cli = CliContext.of(config_path)
    config = cli.config

    def live_for(name: str) -> LiveCluster:
        if any(c.name == name for c in config.clusters):
            return live_cluster(config, cluster=name, context=None, kubeconfig=None)
        return live_cluster(config, cluster=None, context=context or name, kubeconfig=kubeconfig)

    actor = cli.actor
    with cli.sessions(actor) as sessions:
        results = reconcile(
            sessions, actor, live_for, lease_seconds=config.remediation.lease_seconds
        )
    for r in results:
        click.echo(f"Request {r.request_id}: {r.state} ({r.reason})", err=True)
    if not results:
        click.echo("Nothing to reconcile.", err=True)
