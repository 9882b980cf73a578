"""The ``okeguard`` command line: parse, call a service function, render.

Machine-readable output goes to stdout and nothing else does; messages go to stderr. Every user
mistake ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import click

from okeguard import __version__
from okeguard.bot.cli_context import (
    EXIT_INTERNAL,
    EXIT_USAGE,
    CliContext,
    exit_without_freeing,
    write_stdout,
)
from okeguard.bot.cli_db import audit_group, db_group
from okeguard.bot.cli_exceptions import exceptions_group
from okeguard.bot.cli_findings import findings_group
from okeguard.bot.cli_fix import fix_command
from okeguard.bot.cli_remediations import remediations_group
from okeguard.bot.cli_scan import scan_command
from okeguard.bot.cli_serve import serve_command
from okeguard.bot.cli_snapshot import snapshot_command
from okeguard.errors import OkeguardError, one_line

__all__ = ["EXIT_INTERNAL", "EXIT_USAGE", "cli", "main"]


def _echo_error(message: str) -> None:
    click.echo(f"okeguard: error: {one_line(message)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(
    __version__, "--version", prog_name="okeguard", message="%(prog)s %(version)s"
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.pass_context
def cli(click_ctx: click.Context, verbose: int) -> None:
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

    click_ctx.obj = CliContext(verbose=verbose)  # each command adds its --config: CliContext.of
    # text on stderr, redacted; `okeguard serve` switches to JSON lines (--log-format)
    configure_logging(logging.WARNING - 10 * min(verbose, 2), json=False)


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
    write_stdout(render())


cli.add_command(scan_command)
cli.add_command(snapshot_command)
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
        _main(argv)
    except SystemExit as exc:
        if argv is None:  # the okeguard program itself, not a caller in this process
            code = exc.code
            exit_without_freeing(code if isinstance(code, int) else 0 if code is None else 1)
        raise


def _main(argv: list[str] | None) -> None:
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
