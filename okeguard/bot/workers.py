"""The bot's scan worker processes, which end when the bot does.

``okeguard serve`` scans in a worker process (a scan is CPU-bound Python that would hold the GIL
against Slack's acknowledgements). A ``ProcessPoolExecutor`` worker waits for work on a pipe it
also holds the writing end of, so when the bot is killed (SIGKILL, the OOM killer, a crashed
node agent) nothing tells it: an idle worker would wait for ever, a busy one finish its scan for
nobody. Each worker therefore runs :func:`exit_with_parent` first: a daemon thread that ends the
process as soon as its parent is gone (it is re-parented, so ``getppid()`` changes).

Not ``prctl(PR_SET_PDEATHSIG)``: that signal follows the death of the parent *thread* that
started the worker, and the pool starts workers from whichever thread submits work (a Slack
listener, the scheduler), which may end long before the bot.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

PARENT_POLL_SECONDS = 0.2


def exit_with_parent(parent_pid: int, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """In a worker: end this process (exit status 1) once ``parent_pid`` is no longer its parent.

    Runs as the pool's ``initializer``; returns at once, leaving a daemon thread watching.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(poll_seconds)
        os._exit(1)  # no cleanup to run: the work's result has nobody to go to

    if os.getppid() != parent_pid:  # the parent died before this worker even started
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def scan_worker_pool(max_workers: int = 1) -> ProcessPoolExecutor:
    """A pool of fresh (spawned, not forked) worker processes that die with this process."""
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
