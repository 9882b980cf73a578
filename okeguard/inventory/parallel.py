"""Reading many manifest files on several cores, with results in the order of the files.

Parsing YAML is most of a large manifest scan, and it is CPU-bound Python: one core reads 57 MB
in about 5 s. :func:`map_in_order` runs a function over the files in worker processes, in
batches of about equal size, and yields the results in the order of the files, as a loop
would: the first error (in that order) is raised where the loop would have raised it, and
nothing after it is used. A worker sends back what it built (pickled): unpickling costs the
main process less than a tenth of the parsing it saves.

Workers are forked when this process runs no other thread (cheap, and they start with okeguard
already imported), and otherwise started from a fresh server process (``forkserver``), since
forking a process whose other threads may hold a lock can deadlock the child. Small inputs,
one core, or a pool that cannot start (a sandbox without ``fork``) are read in this process.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

A = TypeVar("A")
R = TypeVar("R")

MIN_PARALLEL_BYTES = 4 << 20  # below this, starting processes costs more than it saves
BATCHES_PER_WORKER = 4  # a few batches each, so one slow batch does not hold up the rest
MAX_WORKERS = 8

log = logging.getLogger(__name__)


def worker_count() -> int:
    """The cores this process may run on (at most :data:`MAX_WORKERS`)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def map_in_order(
    func: Callable[[A], R],
    items: Sequence[A],
    sizes: Sequence[int],
    *,
    workers: int | None = None,
    min_bytes: int | None = None,
) -> Generator[R, None, None]:
    """Yield ``func(item)`` for each of ``items``, in order, as ``for item in items: yield
    func(item)`` would, computing them in worker processes when that pays: ``sizes`` (bytes of
    input per item) above ``min_bytes`` in all (default :data:`MIN_PARALLEL_BYTES`), and more
    than one worker (default: one per core). ``func`` must be a module-level function, and its
    arguments and results picklable.

    The first exception (in the order of ``items``) is raised when its item's turn comes; the
    results after it are dropped. A pool that breaks (a worker killed) leaves the rest of the
    items to this process.
    """
    count = worker_count() if workers is None else workers
    least = MIN_PARALLEL_BYTES if min_bytes is None else min_bytes
    if count < 2 or len(items) < 2 or sum(sizes) < least:
        for item in items:
            yield func(item)
        return
    pool = open_pool(count)
    if pool is None:
        for item in items:
            yield func(item)
        return
    batches = _batches(len(items), sizes, count * BATCHES_PER_WORKER)
    done = 0
    finished = False
    try:
        futures: list[Future[list[tuple[bool, Any]]]] = [
            pool.submit(run_batch, func, [items[i] for i in batch]) for batch in batches
        ]
        for future in futures:
            for ok, value in future.result():
                if not ok:
                    raise value
                done += 1
                yield value
        finished = True
    except BrokenProcessPool as exc:
        log.debug("a worker died (%s): reading the rest in this process", exc)
        for item in items[done:]:
            yield func(item)
        finished = True
    finally:
        close_pool(pool, finished)


def open_pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of ``workers`` processes, or None when this system cannot start one (no
    ``fork``, no semaphores: the caller then works in this process)."""
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    except (OSError, ValueError, ImportError) as exc:
        log.debug("working in this process: %s", exc)
        return None


def close_pool(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Shut ``pool`` down; unless its work ``finished``, end its workers at once (after an
    error, ^C, or a caller that stopped reading, no batch is worth waiting for)."""
    if not finished:
        _stop_workers(pool)
    pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's worker processes now (``shutdown`` would wait for their batches)."""
    # The pool's own table of its processes: there is no public way before Python 3.14
    # (terminate_workers), and these are the only processes it may end.
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.terminate()


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _batches(count: int, sizes: Sequence[int], wanted: int) -> list[range]:
    """Consecutive ranges of the ``count`` items, of about equal total size (an empty file
    counts as one byte)."""
    total = sum(max(1, size) for size in sizes[:count])
    target = total / max(1, min(wanted, count))
    batches: list[range] = []
    start = 0
    filled = 0
    for index in range(count):
        filled += max(1, sizes[index])
        if filled >= target * (len(batches) + 1) or index == count - 1:
            batches.append(range(start, index + 1))
            start = index + 1
    return batches


def run_batch(func: Callable[[A], R], batch: list[A]) -> list[tuple[bool, Any]]:
    """In a worker: (True, result) for each item, up to the first (False, exception)."""
    gc.disable()  # a worker builds millions of objects and no cycles worth collecting
    out: list[tuple[bool, Any]] = []
    for item in batch:
        try:
            out.append((True, func(item)))
        except Exception as exc:  # handed to the caller, raised in its order
            out.append((False, _picklable(exc)))
            break
    return out


def _picklable(exc: Exception) -> Exception:
    """``exc`` if it survives pickling as it is, else an error that carries its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # any failure to pickle: send the message instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
