"""``okeguard scan``: its options, the input side (paths, verbosity), and what stderr says.

A scan must not pass without saying so when it looked at less than the user meant: files skipped
as not Kubernetes objects are counted (``-v`` lists them), and a ``--namespace`` the input does
not hold or a ``--check`` that cannot run on this source is a warning. Input with no Kubernetes
object at all is an error raised by the loader (exit 2).
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from okeguard.bot.cli_context import EXIT_FINDINGS, CliContext, keep_until_exit, write_stdout
from okeguard.bot.cli_findings import record_report
from okeguard.errors import UsageError, one_line
from okeguard.inventory.files import refuse_special_files

if TYPE_CHECKING:
    from okeguard.scanning import ScanReport
    from okeguard.service import ScanRequest


@click.command("scan")
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
def scan_command(
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
    from okeguard.bot.formats import renderer
    from okeguard.bot.progress import scan_progress
    from okeguard.scan_waivers import scan_waivers
    from okeguard.scanning import gc_paused
    from okeguard.service import run_scan
    from okeguard.waivers import apply_waivers, filter_severity, parse_severities

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
            report = run_scan(request, keep=keep_until_exit)
    scanned = report  # what --record records: recording applies the database's exceptions itself
    if waivers.waivers:
        report = apply_waivers(report, waivers.waivers, datetime.now(UTC))
    if waivers.sources and not quiet:
        click.echo(f"okeguard: {waivers.summary(scanned, report)}", err=True)
    if shown is not None:
        report = filter_severity(report, shown)
    for note in scan_notes(report, checks, namespaces, verbose=verbose, quiet=quiet):
        click.echo(note, err=True)
    from okeguard.bot.formats.terminal import use_color

    color = output is None and use_color(no_color)
    with gc_paused():  # rendering allocates an object or more per finding, like loading
        text = renderer(output_format)(report, color=color, width=0 if output else None)
    if output:
        try:
            Path(output).write_bytes(text if isinstance(text, bytes) else text.encode())
        except OSError as exc:
            raise UsageError(f"{output}: cannot write report: {exc.strerror}") from None
    else:
        write_stdout(text)
    if output_format != "table" and not quiet and sys.stderr.isatty():
        from okeguard.bot.formats.table import summary_line

        click.echo(summary_line(report), err=True)
    if record:
        from okeguard.bot.identity import cli_actor

        recorded = record_report(scanned, config.database.url, cli_actor(config))
        if not quiet:
            click.echo(recorded.summary(), err=True)
    keep_until_exit(report, scanned)
    if threshold is not None:
        from okeguard.checks.model import Severity

        rank = Severity(threshold).rank
        if any(f.severity.rank >= rank for f in report.open_findings):
            sys.exit(EXIT_FINDINGS)


def _parse_severity(value: str | None) -> str | None:
    if value is None:
        return None
    from okeguard.checks.model import Severity

    try:
        return Severity.parse(value).value
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None


def manifest_paths(manifests: Sequence[str], paths: Sequence[str]) -> tuple[str, ...]:
    """The manifest paths of ``--manifests PATH`` and of positional ``PATH...`` together
    (``okeguard scan deploy/ k8s/app.yaml`` is ``--manifests`` for each; ``-`` is stdin)."""
    combined = (*manifests, *paths)
    if "-" in combined and sys.stdin.isatty():
        raise UsageError("--manifests -: standard input is a terminal; pipe the manifests in")
    return combined


def scan_request(
    *,
    demo: bool,
    manifests: tuple[str, ...],
    snapshot: str | None,
    context: str | None,
    kubeconfig: str | None,
    checks: tuple[str, ...],
    namespaces: tuple[str, ...],
    config_path: str | None,
    clusters: tuple[str, ...],
    cluster_name: str | None,
) -> tuple[ScanRequest, bool]:
    """The scan the options ask for, with its configuration loaded, and whether it is a scan of
    the clusters of ``--config`` (no other source given). Raises :class:`UsageError` for a
    combination of sources that does not make sense."""
    from okeguard.config import load_config
    from okeguard.service import ScanRequest, validate_source

    source = ScanRequest(demo=demo, manifests=manifests, snapshot=snapshot, context=context)
    from_config = config_path is not None and not (demo or manifests or snapshot or context)
    if clusters and not from_config:
        raise UsageError(
            "--cluster selects clusters of --config; it cannot be combined with another source"
        )
    if not from_config:
        validate_source(source)
    if demo and config_path is None:
        from okeguard.inventory.demo import demo_config_path

        demo_config = demo_config_path()
        config_path = str(demo_config) if demo_config else None
    request = ScanRequest(
        demo=demo,
        manifests=manifests,
        snapshot=snapshot,
        context=context,
        kubeconfig=kubeconfig,
        checks=checks,
        namespaces=namespaces,
        config=load_config(config_path),
        cluster_name=cluster_name,
    )
    return request, from_config


def apply_verbosity(verbose: int) -> int:
    """Raise the log level for ``okeguard scan -v`` as ``okeguard -v scan`` does; returns the
    verbosity of both together."""
    total = verbose + CliContext.of().verbose
    if verbose:
        from okeguard.logs import configure_logging

        configure_logging(logging.WARNING - 10 * min(total, 2), json=False)
    return total


def scan_notes(
    report: ScanReport,
    checks: Sequence[str],
    namespaces: Sequence[str],
    *,
    verbose: int,
    quiet: bool,
) -> list[str]:
    """What stderr says about the input after a scan: warnings for a ``--namespace`` the input
    does not hold and a ``--check`` that did not run, then (unless ``quiet``) the count of files
    skipped as not Kubernetes objects."""
    notes = [f"okeguard: warning: {one_line(w)}" for w in _absent_namespaces(report, namespaces)]
    notes += [f"okeguard: warning: {one_line(w)}" for w in _checks_not_run(report, checks)]
    skipped = report.source.get("skipped_files") or []
    if skipped and not quiet:
        from okeguard.inventory.manifests import skipped_files_phrase

        listed = "" if verbose else " (-v lists them)"
        notes.append(f"okeguard: skipped {skipped_files_phrase(len(skipped))}{listed}")
    return notes


def _absent_namespaces(report: ScanReport, namespaces: Sequence[str]) -> list[str]:
    present = report.namespaces_present
    if present is None:  # the scan does not know which namespaces its input holds
        return []
    warnings = []
    for name in dict.fromkeys(namespaces):
        if name in present:
            continue
        close = difflib.get_close_matches(name, present, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean '{close[0]}'?"
        elif present:
            more = ", …" if len(present) > 10 else ""
            hint = "its namespaces: " + ", ".join(present[:10]) + more
        else:
            hint = "it holds only cluster-scoped objects"
        warnings.append(f"--namespace {name}: the input has nothing in this namespace ({hint})")
    return warnings


def _checks_not_run(report: ScanReport, checks: Sequence[str]) -> list[str]:
    from okeguard.checks.registry import get_check

    warnings = []
    source = report.source.get("type", "this source")
    for check_id in dict.fromkeys(checks):
        spec = get_check(check_id)
        if spec is None or check_id in report.checks_run:
            continue
        if check_id not in report.not_applicable:
            why = "it is disabled by checks.disabled in the configuration"
        elif spec.oci:
            why = (
                f"it reads the cluster's OCI resources, which a {source} scan does not have "
                "(scan with --config and the cluster's OCI settings)"
            )
        else:
            why = (
                f"it needs the whole cluster, which a {source} scan is not "
                "(scan with --context or --snapshot)"
            )
        warnings.append(f"--check {check_id}: not run: {why}")
    return warnings
