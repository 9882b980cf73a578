"""``okeguard fix`` and ``okeguard remediations``: plans, approvals, apply and rollback from a shell.

Thin: every rule lives in ``okeguard.remediations.workflow``, which the Slack bot calls too.
The actor is the OS user, by uid (``okeguard.bot.identity.cli_actor``: ``cli:<name>`` from
``cli.approvers``, else ``uid:<n>``; never ``$USER``). With ``remediation.cli_requires_approval`` on, ``fix --apply`` needs a
request approved by someone else (``okeguard remediations approve``); off, the OS user who
applies is recorded as the approver of their own request, with that reason in the audit trail.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from okeguard.bot.cli_context import CliContext, confirm
from okeguard.errors import OkeguardError, UsageError

if TYPE_CHECKING:
    from okeguard.audit.finding_ids import FindingRef
    from okeguard.checks.model import Finding
    from okeguard.config import Config
    from okeguard.inventory.model import Inventory
    from okeguard.remediations.live import LiveCluster
    from okeguard.remediations.plan import Plan
    from okeguard.remediations.workflow import ApplyResult


class RemediationFailed(OkeguardError):
    """The fix was attempted but did not stick (rolled back, or failed)."""

    exit_code = 1


def load_inventories(
    config: Config,
    *,
    demo: bool,
    snapshot: str | None,
    live: LiveCluster | None,
) -> list[Inventory]:
    """What ``okeguard fix`` plans against: the live cluster, else the demo's or the
    snapshot's inventories."""
    if live is not None:
        return [live.read()]
    from okeguard.inventory.snapshot import load_snapshot

    if demo:
        from okeguard.inventory.demo import demo_snapshot_paths

        return [load_snapshot(p, source_type="demo") for p in demo_snapshot_paths()]
    assert snapshot is not None
    return [load_snapshot(snapshot)]


def locate_finding(
    config: Config, inventories: list[Inventory], ref: str
) -> tuple[Finding, Inventory]:
    """The one open finding ``ref`` names, by the rule every front door uses
    (``okeguard.audit.finding_ids.parse_finding_ref``, which ``okeguard.audit.queries`` applies
    to recorded findings: a fingerprint prefix of at least 6 characters, or
    ``CHECK:NAMESPACE/NAME``), with its inventory. ``UsageError`` otherwise,
    suggesting close ids for an unknown one."""
    from datetime import UTC, datetime

    from okeguard.audit.finding_ids import parse_finding_ref
    from okeguard.scanning import scan_inventory

    wanted = parse_finding_ref(ref)
    hits: list[tuple[Finding, Inventory]] = []
    findings: list[Finding] = []
    for inventory in inventories:
        now = inventory.captured_at if inventory.source.type == "demo" else None
        report = scan_inventory(inventory, config, now=now or datetime.now(UTC))
        findings += report.findings
        hits += [(f, inventory) for f in report.findings if _named(f, wanted)]
    open_hits = [h for h in hits if h[0].status.value == "open"]
    if not hits:
        close = close_finding_ids(ref, findings)
        named = [f"'{c}'" for c in close]
        listed = f"{', '.join(named[:-1])} or {named[-1]}" if len(named) > 1 else "".join(named)
        hint = f"did you mean {listed}?" if named else "the ID column of 'okeguard scan' lists them"
        raise UsageError(f"no finding matches '{ref}' ({hint})")
    if not open_hits:
        raise UsageError(f"finding '{ref}' is {hits[0][0].status.value}, not open: nothing to fix")
    if len(open_hits) > 1:
        shown = ", ".join(f"{f.fingerprint[:12]} ({f.check_id})" for f, _ in open_hits[:5])
        raise UsageError(f"'{ref}' matches {len(open_hits)} findings: {shown}; give more of it")
    return open_hits[0]


def _named(finding: Finding, ref: FindingRef) -> bool:
    r = finding.resource
    return ref.matches(
        fingerprint=finding.fingerprint,
        check_id=finding.check_id,
        kind=r.kind,
        namespace=r.namespace,
        name=r.name,
    )


def _where(finding: Finding) -> str:
    r = finding.resource
    return (
        f"{finding.check_id}:{r.namespace}/{r.name}"
        if r.namespace
        else f"{finding.check_id}:{r.name}"
    )


def close_finding_ids(ref: str, findings: list[Finding], n: int = 3) -> list[str]:
    """Ids of open findings close to ``ref``, best first: ``CHECK:NAMESPACE/NAME`` forms for a
    ref in that form (or a bare check id), else fingerprint prefixes as the scan table shows
    them (a ref is compared with the prefix of its own length, so one mistyped character in
    it is still close)."""
    import difflib

    from okeguard.bot.formats.terminal import short_id

    fixable = [f for f in findings if f.status.value == "open"]
    if ":" in ref:
        forms = list(dict.fromkeys(_where(f) for f in fixable))
        return difflib.get_close_matches(ref, forms, n=n, cutoff=0.6)
    of_check = list(dict.fromkeys(_where(f) for f in fixable if f.check_id == ref))
    if of_check:
        return of_check[:n]
    needle = ref.lower()
    prefixes = {f.fingerprint[: len(needle)]: short_id(f.fingerprint) for f in fixable}
    close = difflib.get_close_matches(needle, list(prefixes), n=n, cutoff=0.75)
    return [prefixes[c] for c in close]


def render_plan(plan: Plan, *, color: bool = False) -> str:
    """The plan for people: what, where, each step, the risks and the diff (its added lines
    green and removed ones red when ``color``)."""
    lines = [
        f"Plan {plan.hash[:12]}  {plan.remediation} (variant {plan.variant}) for {plan.check_id}",
        f"  cluster {plan.cluster}, finding {plan.finding[:12]}",
        f"  plan hash {plan.hash}",
        "",
        "Steps:",
    ]
    for n, op in enumerate(plan.operations, 1):
        tail = "" if op.reversible else "  (cannot be undone)"
        lines.append(f"  {n}. {op.description}{tail}")
    if plan.risks:
        lines += ["", "Risks:"] + [f"  - {r}" for r in plan.risks]
    others = [v for v in plan.variants if v != plan.variant]
    if others:
        lines += ["", f"Other variants: {', '.join(others)} (--variant NAME)"]
    lines += ["", "Diff:"]
    head = "\n".join(lines) + "\n"
    diff = (plan.diff or "(no textual diff)").rstrip("\n") + "\n"
    if color and plan.diff:
        from okeguard.bot.formats.diff import colored_diff

        diff = colored_diff(diff)
    return head + diff


def report_result(result: ApplyResult, expected: str = "applied") -> None:
    """Say on stderr what became of the request; :class:`RemediationFailed` (exit 1) unless it
    ended ``expected``."""
    click.echo(
        f"Request {result.request_id}: {result.state}"
        + (f" ({result.reason})" if result.reason else ""),
        err=True,
    )
    if result.state != expected:
        raise RemediationFailed(f"request {result.request_id} was {result.state}: {result.reason}")


_SOURCE_OPTIONS = [
    click.option("--demo", is_flag=True, help="Plan against the bundled demo (preview only)."),
    click.option("--snapshot", metavar="FILE", help="Plan against a snapshot (preview only)."),
    click.option("--context", metavar="NAME", help="The live cluster of this kubeconfig context."),
    click.option("--kubeconfig", metavar="PATH", help="Kubeconfig file."),
    click.option(
        "--config", "config_path", metavar="FILE", help="Configuration file (okeguard.yaml)."
    ),
    click.option("--cluster", metavar="NAME", help="With --config: the configured cluster."),
]


def _source_options(func: Any) -> Any:
    for option in reversed(_SOURCE_OPTIONS):
        func = option(func)
    return func


@click.command("fix")
@click.argument("finding", required=False)
@_source_options
@click.option("--preview", is_flag=True, help="Show the plan and its diff (the default).")
@click.option(
    "--apply", "do_apply", is_flag=True, help="Apply the plan, verify it, roll back on failure."
)
@click.option(
    "--request", "do_request", is_flag=True, help="Record a request for approval instead."
)
@click.option(
    "--rollback", "rollback_id", type=int, metavar="REQUEST", help="Roll back an applied request."
)
@click.option(
    "--variant", default="default", show_default=True, help="Plan variant (e.g. conservative)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--no-color", is_flag=True, help="No colour in the diff, even on a terminal (or NO_COLOR)."
)
def fix_command(
    finding: str | None,
    demo: bool,
    snapshot: str | None,
    context: str | None,
    kubeconfig: str | None,
    config_path: str | None,
    cluster: str | None,
    preview: bool,
    do_apply: bool,
    do_request: bool,
    rollback_id: int | None,
    variant: str,
    yes: bool,
    output_format: str,
    no_color: bool,
) -> None:
    """Preview, request, apply or roll back the fix of one finding.

    FINDING is a fingerprint (at least 6 characters: the ID column of 'okeguard scan', or
    'fingerprint' in its JSON) or CHECK-ID:NAMESPACE/NAME. The diff is coloured on a terminal.

    \b
    Examples:
      okeguard fix k8s.run-as-root:shop/web --demo
      okeguard fix 3f9c2a71 --context prod --variant conservative
      okeguard fix 3f9c2a71 --config okeguard.yaml --cluster prod --apply --yes
      okeguard fix --rollback 12 --config okeguard.yaml --cluster prod
    """
    from okeguard.remediations.planners import plan_finding

    if sum([preview, do_apply, do_request, rollback_id is not None]) > 1:
        raise UsageError("choose one of --preview, --apply, --request and --rollback")
    offline = demo or snapshot is not None
    if demo and snapshot:
        raise UsageError("choose one source: --demo or --snapshot")
    if offline and (context or cluster):
        raise UsageError("--demo and --snapshot cannot be combined with --context or --cluster")
    cli = CliContext.of(config_path, demo=demo)
    config = cli.config
    if (do_apply or do_request or rollback_id is not None) and offline:
        raise UsageError(
            "a snapshot cannot be changed: use --context NAME or --config FILE --cluster NAME"
        )
    from okeguard.bot.identity import cli_actor

    actor = cli_actor(config)
    if rollback_id is not None:
        if finding:
            raise UsageError("--rollback takes a request id, not a finding")
        from okeguard.remediations.live import live_cluster
        from okeguard.remediations.workflow import rollback_request

        owner = live_cluster(config, cluster=cluster, context=context, kubeconfig=kubeconfig)
        confirm(yes, f"Roll back request {rollback_id} on {owner.name}?")
        with cli.sessions(actor) as sessions:
            report_result(rollback_request(sessions, rollback_id, actor, owner), "rolled-back")
        return
    if not finding:
        raise UsageError("give the FINDING to fix (or --rollback REQUEST)")
    if not offline and not (context or config_path):
        raise UsageError(
            "say where the finding is: --demo, --snapshot FILE, --context NAME or --config FILE"
        )
    live = None
    if not offline:
        from okeguard.remediations.live import live_cluster

        live = live_cluster(config, cluster=cluster, context=context, kubeconfig=kubeconfig)
    from okeguard.scanning import gc_paused

    with gc_paused():  # loading and scanning allocate millions of small objects, as in `scan`
        inventories = load_inventories(config, demo=demo, snapshot=snapshot, live=live)
        scope = live.effective_config if live else config
        target, inventory = locate_finding(scope, inventories, finding)
        plan = plan_finding(target, inventory, scope.remediation, variant)
    if output_format == "json":
        cli.out(json.dumps({**plan.to_dict(), "hash": plan.hash}, indent=2, sort_keys=True))
    else:
        from okeguard.bot.formats.terminal import use_color

        cli.out(render_plan(plan, color=use_color(no_color)))
    if not (do_apply or do_request):
        return
    assert live is not None
    from okeguard.remediations import workflow

    with cli.sessions(actor) as sessions:
        if do_request:
            request = workflow.request_fix(sessions, plan, actor, config.remediation)
            click.echo(
                f"Request {request.id} is waiting for approval (plan {plan.hash[:12]}, expires "
                f"{request.expires_at:%Y-%m-%d %H:%M} UTC): okeguard remediations approve {request.id}",
                err=True,
            )
            return
        confirm(yes, f"Apply plan {plan.hash[:12]} to {live.name}?")
        if config.remediation.cli_requires_approval:
            request_id = workflow.approved_request_for(sessions, plan)
            if request_id is None:
                raise UsageError(
                    "remediation.cli_requires_approval is on: record a request with --request, "
                    "have someone else run 'okeguard remediations approve ID', then apply it"
                )
        else:
            _may_self_approve(config, plan)
            request = workflow.request_fix(sessions, plan, actor, config.remediation)
            workflow.decide(
                sessions,
                request.id,
                actor,
                config.remediation,
                approve=True,
                plan_hash=plan.hash,
                self_approval=True,
                reason="okeguard fix --apply by the OS user (remediation.cli_requires_approval is off)",
            )
            request_id = request.id
        click.echo(f"Applying request {request_id}…", err=True)
        report_result(workflow.apply_request(sessions, request_id, actor, live))


def _may_self_approve(config: Config, plan: Plan) -> None:
    """With approvers configured, ``fix --apply`` (its user approving their own fix) is held to
    the same policy as an approval: an approver, within the plan's cluster and remediation
    scopes. Only where nobody is configured as an approver does the OS user approve alone."""
    from okeguard.approval_policy import ApprovalRules, approval_refusal
    from okeguard.bot.identity import cli_identity

    if config.slack.approvers.anyone and not config.cli.approvers:
        return
    problem = approval_refusal(
        cli_identity(config),
        ApprovalRules.of(config),
        cluster=plan.cluster,
        remediation=plan.remediation,
    )
    if problem:
        raise UsageError(f"fix --apply: {problem}; use --request and have an approver approve it")
