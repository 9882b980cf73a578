"""The input side of ``okeguard scan``: paths, verbosity, and what stderr says about the input.

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
from typing import TYPE_CHECKING

import click

from okeguard.errors import UsageError, one_line

if TYPE_CHECKING:
    from okeguard.scanning import ScanReport
    from okeguard.service import ScanRequest


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
    root = click.get_current_context().find_root()
    total = verbose + int(root.params.get("verbose") or 0)
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
    present = report.source.get("namespaces")
    if present is None:  # the source does not say which namespaces it holds
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
