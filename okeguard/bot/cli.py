"""The ``okeguard`` command line: parse, call a service function, render.

Machine-readable output goes to stdout and nothing else does; messages go to stderr. Every user
mistake ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from okeguard import __version__
from okeguard.bot.cli_db import audit_group, db_group
from okeguard.bot.cli_findings import exceptions_group, findings_group
from okeguard.bot.cli_fix import fix_command
from okeguard.bot.cli_remediations import remediations_group
from okeguard.bot.cli_serve import serve_command
from okeguard.errors import OkeguardError, UsageError, one_line
from okeguard.inventory.files import refuse_special_files

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3  # a bug in okeguard, never a verdict: 1 stays reserved for findings
SEVERITY_NAMES = ("critical", "high", "medium", "low", "info")


def _echo_error(message: str) -> None:
    click.echo(f"okeguard: error: {one_line(message)}", err=True)


def _write_stdout(text: str | bytes) -> None:
    try:
        if isinstance(text, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(text)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:  # e.g. `okeguard scan ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _use_color(no_color: bool) -> bool:
    from okeguard.bot.formats.terminal import use_color

    return use_color(no_color)


def _progress(message: str, quiet: bool) -> AbstractContextManager[Any]:
    """A spinner on stderr while slow work runs, only when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _parse_severity(value: str | None) -> str | None:
    if value is None:
        return None
    from okeguard.checks.model import Severity

    try:
        return Severity.parse(value).value
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    __version__, "--version", prog_name="okeguard", message="%(prog)s %(version)s"
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """okeguard keeps Oracle Kubernetes Engine (OKE) clusters on Oracle's OKE security best practices.

    \b
    Examples:
      okeguard scan --demo
      okeguard scan . --format sarif > okeguard.sarif     # a repository
      helm template shop ./chart | okeguard scan - --fail-on high
      okeguard scan --context prod --namespace payments
      okeguard snapshot --context prod -o prod.jsonl && okeguard scan --snapshot prod.jsonl
    """
    from okeguard.logs import configure_logging

    # text on stderr, redacted; `okeguard serve` switches to JSON lines (--log-format)
    configure_logging(logging.WARNING - 10 * min(verbose, 2), json=False)


@cli.command()
@click.option("--demo", is_flag=True, help="Scan the bundled demo environment (a shop on OKE).")
@click.option(
    "--manifests",
    "manifests",
    multiple=True,
    metavar="PATH",
    help="Manifest file or directory (recursive); '-' reads standard input. Repeatable.",
)
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option(
    "--snapshot", metavar="FILE", help="Scan a snapshot file written by 'okeguard snapshot'."
)
@click.option("--context", metavar="NAME", help="Scan the live cluster of this kubeconfig context.")
@click.option(
    "--kubeconfig", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."
)
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "sarif", "markdown"]),
    help="Output format.",
)
@click.option(
    "--fail-on",
    metavar="SEVERITY",
    help="Exit 1 when an open finding is at or above this severity.",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    metavar="LIST",
    help="Report only these severities, e.g. critical,high; the others are neither shown nor "
    "counted by --fail-on.",
)
@click.option(
    "--exceptions",
    "exceptions_file",
    metavar="FILE",
    help="Ignore file of waivers (check, resource, reason, expires). Default: "
    ".okeguard-ignore.yaml in the current directory or the scanned repository.",
)
@click.option("--no-ignore-file", is_flag=True, help="Do not look for .okeguard-ignore.yaml.")
@click.option(
    "--check", "checks", multiple=True, metavar="ID", help="Run only this check (repeatable)."
)
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Report only this namespace (repeatable).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file (okeguard.yaml); alone, it scans the clusters it lists.",
)
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    metavar="NAME",
    help="With --config alone: scan only this configured cluster (repeatable).",
)
@click.option(
    "--cluster-name",
    metavar="NAME",
    help="Cluster name in findings (default: the context or snapshot's).",
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option(
    "--no-color", is_flag=True, help="No colour, even on a terminal (NO_COLOR is respected too)."
)
@click.option(
    "--record",
    is_flag=True,
    help="Record the findings in the audit database (OKEGUARD_DATABASE_URL or database.url; "
    "created or migrated on first use).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option(
    "-v", "--verbose", count=True, help="List skipped files; more log output (-vv for debug)."
)
def scan(
    demo: bool,
    manifests: tuple[str, ...],
    paths: tuple[str, ...],
    snapshot: str | None,
    context: str | None,
    kubeconfig: str | None,
    output_format: str,
    fail_on: str | None,
    severities: tuple[str, ...],
    exceptions_file: str | None,
    no_ignore_file: bool,
    checks: tuple[str, ...],
    namespaces: tuple[str, ...],
    config_path: str | None,
    clusters: tuple[str, ...],
    cluster_name: str | None,
    output: str | None,
    no_color: bool,
    record: bool,
    quiet: bool,
    verbose: int,
) -> None:
    """Scan a cluster, a snapshot or manifests against the OKE security best practices.

    PATHs are manifest files and directories, as with --manifests. A directory is walked:
    YAML and JSON files that are not Kubernetes objects are skipped and counted, kustomizations
    are rendered with kubectl and Helm charts with helm when they are on PATH.

    \b
    Exit status: 0 when nothing at or above --fail-on is open, 1 when something is,
    2 for bad usage or unreadable input, or input with no Kubernetes objects.
    \b
    Examples:
      okeguard scan --demo
      okeguard scan deploy/ charts/rendered.yaml --fail-on high
      okeguard scan -v .      # a repository; -v lists the files skipped
      kubectl kustomize overlays/prod | okeguard scan - --format json | jq .summary
      okeguard scan --config okeguard.yaml --cluster shop-prod   # Kubernetes and OCI together
    """
    from okeguard.bot.cli_scan import apply_verbosity, manifest_paths, scan_notes, scan_request
    from okeguard.bot.formats import renderer
    from okeguard.bot.progress import scan_progress
    from okeguard.scanning import gc_paused
    from okeguard.service import run_scan
    from okeguard.waivers import apply_waivers, filter_severity, parse_severities, scan_waivers

    verbose = apply_verbosity(verbose)
    refuse_special_files(config_path, kubeconfig)  # a FIFO or a device would hang the scan
    threshold = _parse_severity(fail_on)
    request, from_config = scan_request(
        demo=demo,
        manifests=manifest_paths(manifests, paths),
        snapshot=snapshot,
        context=context,
        kubeconfig=kubeconfig,
        checks=checks,
        namespaces=namespaces,
        config_path=config_path,
        clusters=clusters,
        cluster_name=cluster_name,
    )
    config = request.config
    shown = parse_severities(severities) if severities else None
    waivers = scan_waivers(  # before the scan, so a bad file or database fails fast
        config, ignore_file=exceptions_file, scanned=request.manifests, discover=not no_ignore_file
    )
    if from_config:
        from okeguard.fleet import scan_configured

        with scan_progress("Scanning the configured clusters…", quiet=quiet) as progress:
            report = scan_configured(
                config,
                clusters,
                checks=checks,
                namespaces=namespaces,
                on_cluster=progress.cluster_done,
            )
    else:
        with scan_progress("Scanning…", quiet=quiet):
            report = run_scan(request)
    scanned = report  # what --record records: recording applies the database's exceptions itself
    if waivers.waivers:
        report = apply_waivers(report, waivers.waivers, datetime.now(UTC))
    if waivers.sources and not quiet:
        click.echo(f"okeguard: {waivers.summary(scanned, report)}", err=True)
    if shown is not None:
        report = filter_severity(report, shown)
    for note in scan_notes(report, checks, namespaces, verbose=verbose, quiet=quiet):
        click.echo(note, err=True)
    color = output is None and _use_color(no_color)
    with gc_paused():  # rendering allocates an object or more per finding, like loading
        text = renderer(output_format)(report, color=color, width=0 if output else None)
    if output:
        try:
            Path(output).write_bytes(text if isinstance(text, bytes) else text.encode())
        except OSError as exc:
            raise UsageError(f"{output}: cannot write report: {exc.strerror}") from None
    else:
        _write_stdout(text)
    if output_format != "table" and not quiet and sys.stderr.isatty():
        from okeguard.bot.formats.table import summary_line

        click.echo(summary_line(report), err=True)
    if record:
        from okeguard.bot.cli_findings import record_report
        from okeguard.bot.identity import cli_actor

        recorded = record_report(scanned, config.database.url, cli_actor(config))
        if not quiet:
            click.echo(recorded.summary(), err=True)
    if threshold is not None:
        from okeguard.checks.model import Severity

        rank = Severity(threshold).rank
        if any(f.severity.rank >= rank for f in report.open_findings):
            sys.exit(EXIT_FINDINGS)


@cli.command()
@click.option(
    "--context", metavar="NAME", help="Kubeconfig context to capture (default: the current one)."
)
@click.option(
    "--kubeconfig", metavar="PATH", help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."
)
@click.option("-o", "--output", required=True, metavar="FILE", help="Snapshot file to write.")
@click.option(
    "--cluster-name",
    metavar="NAME",
    help="Cluster name recorded in the snapshot (default: the context).",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Capture a cluster of this configuration, Kubernetes and OCI together.",
)
@click.option("--cluster", metavar="NAME", help="With --config: the configured cluster to capture.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def snapshot(
    context: str | None,
    kubeconfig: str | None,
    output: str,
    cluster_name: str | None,
    config_path: str | None,
    cluster: str | None,
    quiet: bool,
) -> None:
    """Capture a live cluster into a snapshot file (secret values are never written).

    \b
    Examples:
      okeguard snapshot --context prod -o prod.jsonl
      okeguard snapshot --config okeguard.yaml --cluster shop-prod -o shop-prod.jsonl
      okeguard scan --snapshot prod.jsonl
    """
    from okeguard.inventory.snapshot import save_snapshot
    from okeguard.scanning import gc_paused

    if config_path is not None:
        if context or kubeconfig or cluster_name:
            raise UsageError(
                "--config takes the context and names from the configuration; drop --context, --kubeconfig and --cluster-name"
            )
        from okeguard.config import load_config
        from okeguard.fleet import collect_cluster, select_clusters

        config = load_config(config_path)
        selected = select_clusters(config, [cluster] if cluster else [])
        if len(selected) > 1:
            names = ", ".join(c.name for c in selected)
            raise UsageError(
                f"the configuration lists several clusters ({names}): choose one with --cluster"
            )
        with _progress("Reading the cluster…", quiet), gc_paused():
            inventory, cluster_info = collect_cluster(config, selected[0])
    else:
        if cluster:
            raise UsageError("--cluster names a cluster of --config")
        from okeguard.inventory.kube import collect_live

        with _progress("Reading the cluster…", quiet), gc_paused():
            inventory, cluster_info = collect_live(
                context, kubeconfig=kubeconfig, cluster_name=cluster_name
            )
    size = save_snapshot(inventory, output, cluster_info)
    if not quiet:
        gaps = f", {len(inventory.gaps)} kind(s) unreadable" if inventory.gaps else ""
        click.echo(
            f"Wrote {output}: {inventory.object_count} objects, {size / 1e6:.1f} MB{gaps}.",
            err=True,
        )


@cli.command("checks")
@click.option(
    "--format",
    "output_format",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "markdown"]),
    help="table for people, json for tools, markdown is docs/checks.md.",
)
def list_checks(output_format: str) -> None:
    """List the check catalogue: ids, severities, practices and remediations.

    \b
    Example:
      okeguard checks --format json | jq -r '.[].id'
    """
    from okeguard.checks.docs import checks_json, checks_markdown, checks_table

    render: Callable[[], str] = {"json": checks_json, "markdown": checks_markdown}.get(
        output_format, checks_table
    )
    _write_stdout(render())


cli.add_command(db_group)
cli.add_command(audit_group)
cli.add_command(findings_group)
cli.add_command(exceptions_group)
cli.add_command(fix_command)
cli.add_command(remediations_group)
cli.add_command(serve_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns every user error into one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="okeguard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("okeguard: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        command = (
            exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else "okeguard"
        )
        message = " ".join(exc.format_message().split())
        _echo_error(f"{message} (see '{command} --help')")
        sys.exit(EXIT_USAGE)
    except OkeguardError as exc:
        _echo_error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line and its own exit code, the traceback on request
        if os.environ.get("OKEGUARD_DEBUG"):
            raise
        what = one_line(f"{type(exc).__name__}: {exc}")[:300]
        click.echo(
            f"okeguard: internal error: {what} (a bug in okeguard: rerun with OKEGUARD_DEBUG=1 "
            "for the traceback and report it)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
