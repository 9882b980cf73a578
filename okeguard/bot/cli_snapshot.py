"""``okeguard snapshot``: capture a live cluster into a file that ``okeguard scan --snapshot``
reads later, away from the cluster (secret values are never written)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import click

from okeguard.errors import UsageError


def _progress(message: str, quiet: bool) -> AbstractContextManager[Any]:
    """A spinner on stderr while slow work runs, only when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


@click.command("snapshot")
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
def snapshot_command(
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
