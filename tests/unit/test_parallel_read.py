"""Reading files in worker processes gives what a loop in one process gives, in the same order."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from okeguard.errors import InputError
from okeguard.inventory import parallel
from okeguard.inventory.parallel import _batches, map_in_order
from okeguard.inventory.yaml_stream import yaml_documents


def _square(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def _fail_on_three(n: int) -> int:
    if n == 3:
        raise InputError(f"item {n}: bad")
    if n == 7:
        raise InputError("item 7: a later error is never seen")
    return n


def _documents(path: Path) -> list[object]:
    with path.open("rb") as stream:
        return [doc for _, doc, _ in yaml_documents(stream, str(path))]


def _die_on_five(n: int) -> int:
    if n == 5 and os.getpid() != PARENT:
        os._exit(9)  # a worker killed mid-way (the OOM killer, a crash)
    return n


PARENT = os.getpid()


def test_results_come_in_the_order_of_the_items_from_worker_processes() -> None:
    results = list(map_in_order(_square, range(40), [1] * 40, workers=2, min_bytes=0))
    assert [value for value, _ in results] == [n * n for n in range(40)]
    assert {pid for _, pid in results} - {os.getpid()}  # some ran elsewhere


def test_small_input_and_one_worker_are_read_in_this_process() -> None:
    for workers, min_bytes in ((2, 1000), (1, 0)):
        results = list(
            map_in_order(_square, range(5), [10] * 5, workers=workers, min_bytes=min_bytes)
        )
        assert {pid for _, pid in results} == {os.getpid()}


def test_the_first_error_in_order_is_raised_after_the_results_before_it() -> None:
    seen: list[int] = []
    with pytest.raises(InputError, match="item 3: bad"):
        for value in map_in_order(_fail_on_three, range(10), [1] * 10, workers=2, min_bytes=0):
            seen.append(value)
    assert seen == [0, 1, 2]


def _slow_after_first(n: int) -> int:
    if n == 0:
        raise InputError("item 0: bad")
    time.sleep(30)  # a batch nobody needs any more: its worker is ended, not waited for
    return n


def test_no_worker_outlives_an_error_or_waits_for_its_batch() -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="item 0"):
        list(map_in_order(_slow_after_first, range(8), [1] * 8, workers=2, min_bytes=0))
    assert time.monotonic() - started < 10
    assert multiprocessing.active_children() == []


def test_a_dead_worker_leaves_the_rest_to_this_process() -> None:
    values = list(map_in_order(_die_on_five, range(12), [1] * 12, workers=2, min_bytes=0))
    assert values == list(range(12))


_START_METHODS = """\
import threading
from okeguard.inventory import parallel
alone = parallel._context().get_start_method()
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
beside = parallel._context().get_start_method()
stop.set()
thread.join()
print(alone, beside, parallel._context().get_start_method())
"""


def test_workers_are_not_forked_while_another_thread_runs() -> None:
    # in a process of its own: a test run may leave threads of its own running in this one
    done = subprocess.run(
        [sys.executable, "-c", _START_METHODS], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["fork", "forkserver", "fork"]
    if threading.active_count() > 1:
        assert parallel._context().get_start_method() != "fork"


def test_with_another_thread_running_the_workers_still_read_everything_in_order() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        results = list(map_in_order(_square, range(12), [1] * 12, workers=2, min_bytes=0))
    finally:
        stop.set()
        thread.join()
    assert [value for value, _ in results] == [n * n for n in range(12)]
    assert {pid for _, pid in results} - {os.getpid()}


def test_batches_are_consecutive_and_of_about_equal_size() -> None:
    sizes = [5, 1, 1, 1, 1, 1, 5, 1, 1, 1, 1, 1]
    batches = _batches(len(sizes), sizes, 4)
    assert [i for batch in batches for i in batch] == list(range(len(sizes)))
    assert len(batches) <= 4
    assert all(sum(sizes[i] for i in batch) <= 7 for batch in batches)
    assert _batches(3, [0, 0, 0], 8) == [range(0, 1), range(1, 2), range(2, 3)]


def test_yaml_read_in_workers_equals_yaml_read_here(tmp_path: Path) -> None:
    files = []
    for index in range(6):
        path = tmp_path / f"f{index}.yaml"
        path.write_text(
            f"a: {index}\nb: yes\nc: 0755\nd: 2024-05-01\ne: [1:30, ~, .inf]\n---\nx: &a {{k: v}}\ny: *a\n"
        )
        files.append(path)
    here = [_documents(path) for path in files]
    sizes = [path.stat().st_size for path in files]
    assert list(map_in_order(_documents, files, sizes, workers=2, min_bytes=0)) == here
