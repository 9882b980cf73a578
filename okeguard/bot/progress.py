"""Progress of long work on stderr: a transient status line, only on a terminal.

A scan that ends within ``delay`` seconds (2 by default) shows nothing, so quick scans do not
flicker; a longer one shows a spinner with the elapsed time and, for a fleet, how many clusters
are done. It is erased when the work ends. Nothing is written when stderr is not a terminal,
with ``--quiet``, or with ``TERM=dumb``, so logs and pipes stay clean.

Usage (``okeguard scan``)::

    with scan_progress("Scanning…", quiet=quiet) as progress:
        report = scan_configured(config, clusters, on_cluster=progress.cluster_done)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from okeguard.bot.formats.terminal import is_terminal

if TYPE_CHECKING:
    from rich.console import RenderableType

    from okeguard.scanning import ScanReport

DELAY_SECONDS = 2.0


class Progress:
    """What the status line says; front doors and service callbacks update it (any thread)."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.started = time.monotonic()
        self.clusters_done = 0
        self.clusters_total: int | None = None
        self.shown = False

    def note(self, message: str) -> None:
        """Replace the status text."""
        self.message = message

    def cluster_done(self, report: ScanReport, total: int) -> None:
        """Count one more of the ``total`` clusters of a fleet scan as done."""
        self.clusters_done += 1
        self.clusters_total = total

    def text(self) -> str:
        elapsed = f"{time.monotonic() - self.started:.0f}s"
        if self.clusters_total:
            return f"{self.message} {self.clusters_done}/{self.clusters_total} clusters · {elapsed}"
        return f"{self.message} {elapsed}"


class _Line:
    """A spinner whose text is read from the :class:`Progress` at every refresh."""

    def __init__(self, progress: Progress) -> None:
        from rich.spinner import Spinner

        self.progress = progress
        self.spinner = Spinner("dots")

    def __rich__(self) -> RenderableType:
        self.spinner.update(text=self.progress.text())
        return self.spinner


@contextmanager
def scan_progress(
    message: str,
    *,
    quiet: bool = False,
    delay: float = DELAY_SECONDS,
    stream: TextIO | None = None,
) -> Iterator[Progress]:
    """A status line on ``stream`` (stderr) while the block runs longer than ``delay`` seconds;
    silent when ``quiet`` or when the stream is not a terminal. Yields the :class:`Progress` to
    update."""
    progress = Progress(message)
    out = stream or sys.stderr
    if quiet or not is_terminal(out) or os.environ.get("TERM") == "dumb":
        yield progress
        return
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out, highlight=False)
    # stdout belongs to the report: the live line must never capture or redirect it
    live = Live(
        _Line(progress),
        console=console,
        transient=True,
        refresh_per_second=8,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    lock = threading.Lock()
    finished = False

    def show() -> None:
        with lock:
            if not finished:
                live.start()
                progress.shown = True

    timer = threading.Timer(delay, show)
    timer.daemon = True
    timer.start()
    try:
        yield progress
    finally:
        timer.cancel()
        with lock:
            finished = True
            if progress.shown:
                live.stop()
