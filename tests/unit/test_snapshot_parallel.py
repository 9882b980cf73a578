"""A snapshot read with a worker process gives exactly what the ordinary reader gives.

The worker only says which lines of its part of the file are already what admitting them gives;
this process builds every object itself. These tests plant in the worker's part each kind of line
that must not take that shortcut (a secret that redaction changes, a kind okeguard does not read,
an object of the wrong shape, a blank line, CRLF, a broken line), change the file under the read,
and forge the worker's answer, and compare with the ordinary reader.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.errors import InputError
from okeguard.inventory import parallel, snapshot_lines
from okeguard.inventory.model import Inventory
from okeguard.inventory.snapshot import SNAPSHOT_SCHEMA, load_snapshot

pytestmark = pytest.mark.skipif(
    parallel.worker_count() < 2, reason="needs two cores to start a worker process"
)

SECRET = "hunter2-do-not-leak"


def _deployment(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"web-{n}", "namespace": f"team-{n % 3}"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": f"nginx:1.{n}",
                            "env": [{"name": "MODE", "value": "x"}],
                        }
                    ]
                }
            }
        },
    }


def _lines(count: int) -> list[bytes]:
    header = {
        "schema": SNAPSHOT_SCHEMA,
        "cluster": {"name": "c"},
        "captured_at": "2026-12-01T00:00:00Z",
    }
    lines = [orjson.dumps(header)]
    lines += [orjson.dumps(_deployment(n)) for n in range(count)]
    return lines


def _plant(lines: list[bytes]) -> list[bytes]:
    """Lines the shortcut must not take, in the second half (the worker's part)."""
    at = len(lines) * 3 // 4
    leaky = _deployment(9999)
    leaky["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DATABASE_URL", "value": f"postgres://app:{SECRET}@db:5432/app"}
    ]
    wrong = _plant_wrong()
    planted = [
        orjson.dumps(leaky),
        b"",
        b"   ",
        orjson.dumps({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        orjson.dumps(wrong),
        json.dumps(
            _deployment(9997), indent=None, separators=(", ", ": ")
        ).encode(),  # not orjson's
        orjson.dumps(_deployment(9996)) + b"\r",  # CRLF
    ]
    return lines[:at] + planted + lines[at:]


def _plant_wrong() -> dict[str, Any]:
    wrong = _deployment(9998)
    wrong["spec"]["template"]["spec"]["containers"] = "not a list"
    return wrong


def _write(path: Path, lines: list[bytes], final_newline: bool = True) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"\n" if final_newline else b""))
    return path


def _view(inventory: Inventory) -> Any:
    objects = [
        (kind, obj.namespace, obj.name, obj.raw)
        for kind, group in sorted(inventory.objects.items())
        for obj in group
    ]
    return (
        objects,
        [(u.obj.name, u.reason) for u in inventory.unevaluated],
        dict(inventory.skipped_kinds),
    )


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_lines, "RANGE_BYTES", 4096)


def _read(monkeypatch: pytest.MonkeyPatch, path: Path, with_worker: bool) -> Inventory:
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0 if with_worker else 1 << 60)
    return load_snapshot(path)


class _CountingPool(parallel.ProcessPoolExecutor):
    started = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).started += 1
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("final_newline", [True, False])
def test_the_worker_s_shortcut_gives_the_ordinary_reader_s_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None, final_newline: bool
) -> None:
    path = _write(tmp_path / "s.jsonl", _plant(_lines(400)), final_newline)
    ordinary = _read(monkeypatch, path, with_worker=False)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.started = 0
    shortcut = _read(monkeypatch, path, with_worker=True)
    assert _CountingPool.started == 1
    assert _view(shortcut) == _view(ordinary)
    assert len(shortcut.objects["Deployment"]) == 400 + 3  # not the Widget nor the wrong one
    assert shortcut.skipped_kinds == {"Widget": 1}
    [unevaluated] = shortcut.unevaluated
    number = 1 + _plant(_lines(400)).index(orjson.dumps(_plant_wrong()))
    assert (
        unevaluated.reason.startswith(f"{path}:{number}: ") and "containers" in unevaluated.reason
    )
    assert SECRET not in repr(_view(shortcut))


def test_an_error_in_the_worker_s_part_names_the_same_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    lines = _lines(400)
    lines[350] = lines[350][:-5]  # cut short: invalid JSON
    path = _write(tmp_path / "s.jsonl", lines)
    with pytest.raises(InputError) as ordinary:
        _read(monkeypatch, path, with_worker=False)
    with pytest.raises(InputError) as shortcut:
        _read(monkeypatch, path, with_worker=True)
    assert str(shortcut.value) == str(ordinary.value)
    assert str(shortcut.value).startswith(f"{path}:351: invalid JSON")


def test_a_file_changed_under_the_read_is_read_again_the_ordinary_way(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_ranges: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = _lines(400)
    path = _write(tmp_path / "s.jsonl", lines)
    leaky = _deployment(350)
    leaky["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "API_TOKEN", "value": f"token={SECRET}"},
        {"name": "DATABASE_URL", "value": f"postgres://app:{SECRET}@db:5432/app"},
    ]
    changed = [*lines[:351], orjson.dumps(leaky), *lines[352:]]
    first_part = snapshot_lines._admit_first_part

    def then_rewrite(*args: Any) -> int:
        number = first_part(*args)
        # the worker has read (or is reading) the old bytes; rewrite the file in place
        with path.open("r+b") as out:
            out.write(b"\n".join(changed) + b"\n")
            out.truncate()
        os.utime(path, ns=(1, 1))
        return number

    monkeypatch.setattr(snapshot_lines, "_admit_first_part", then_rewrite)
    with caplog.at_level("WARNING"):
        inventory = _read(monkeypatch, path, with_worker=True)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: it changed while it was read; reading it again in this process"
    ]
    monkeypatch.setattr(snapshot_lines, "_admit_first_part", first_part)
    assert _view(inventory) == _view(_read(monkeypatch, path, with_worker=False))
    assert SECRET not in repr(_view(inventory))


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class _Collected:
    def __init__(self) -> None:
        self.objects: list[Any] = []
        self.added: list[int] = []

    def add(self, line: bytes, number: int) -> None:
        self.added.append(number)


def test_a_forged_or_misaligned_answer_is_never_trusted(tmp_path: Path) -> None:
    lines = _lines(20)
    path = _write(tmp_path / "s.jsonl", lines)
    size = path.stat().st_size
    with path.open("rb") as stream:
        key = snapshot_lines._file_key(stream.fileno())
        stream.readline()
        start = stream.tell()
        ranges = [(start, size)]
        honest = snapshot_lines._verdicts((str(path), start, size))
        assert honest[0] == key and all(n > 0 for n in honest[1])

        def run(answer: Any, the_ranges: list[tuple[int, int]] = ranges) -> _Collected:
            stream.seek(start)
            found = _Collected()
            snapshot_lines._admit_second_part(
                stream, found, found.add, the_ranges, [_done([(True, answer)])], key, 2
            )
            return found

        assert len(run(honest).objects) == 20
        forged_lengths = (key, [n + 1 for n in honest[1]])
        assert run(forged_lengths).added == list(range(2, 22))  # every line admitted here
        for bad in (
            ((key[0], key[1], key[2], key[3] + 1), honest[1]),  # another version of the file
            (key, honest[1][:-1]),  # a line short
            (key, [*honest[1], 10]),  # a line too many
        ):
            with pytest.raises(snapshot_lines._Changed):
                run(bad)
        with pytest.raises(snapshot_lines._Changed):
            run(honest, [(start + 1, size)])  # a range that is not where this process is
        stream.seek(start)
        failed = _done([(False, MemoryError())])
        with pytest.raises(snapshot_lines._Changed):
            snapshot_lines._admit_second_part(stream, _Collected(), print, ranges, [failed], key, 2)


def test_ranges_begin_at_line_starts_and_cover_the_rest_of_the_file(
    tmp_path: Path, small_ranges: None
) -> None:
    path = _write(tmp_path / "s.jsonl", _lines(300))
    data = path.read_bytes()
    with path.open("rb") as stream:
        stream.readline()
        start = stream.tell()
        ranges = snapshot_lines._ranges(stream, start, len(data))
        assert stream.tell() == start
    assert len(ranges) > 5
    assert ranges[0][0] == start and ranges[-1][1] == len(data)
    assert all(a == b for (_, a), (b, _) in pairwise(ranges))
    assert all(data[a - 1 : a] == b"\n" for a, _ in ranges)


def test_without_a_worker_process_the_whole_file_is_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    path = _write(tmp_path / "s.jsonl", _plant(_lines(400)))
    ordinary = _read(monkeypatch, path, with_worker=False)
    monkeypatch.setattr(parallel, "open_pool", lambda workers: None)  # a sandbox without fork
    assert _view(_read(monkeypatch, path, with_worker=True)) == _view(ordinary)


def test_with_another_thread_running_the_worker_is_started_from_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_ranges: None
) -> None:
    path = _write(tmp_path / "s.jsonl", _plant(_lines(400)))
    ordinary = _read(monkeypatch, path, with_worker=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)  # as the progress line's timer would
    thread.start()
    try:
        assert parallel._context().get_start_method() != "fork"
        shortcut = _read(monkeypatch, path, with_worker=True)
    finally:
        stop.set()
        thread.join()
    assert _view(shortcut) == _view(ordinary)


_LINES = st.sampled_from(
    [
        orjson.dumps(_deployment(1)),
        orjson.dumps(_deployment(2)) + b"\r",
        json.dumps(_deployment(3)).encode(),
        orjson.dumps(_plant_wrong()),
        orjson.dumps({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}),
        orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        orjson.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c"},
                "data": {"app.properties": f"password={SECRET}"},
            }
        ),
        orjson.dumps({"apiVersion": "v1", "kind": "Pod"}),  # no name: an error
        b"",
        b" \t",
        b"{not json",
        b"\x00\x01",
        "ünïcode: \u2028".encode(),
        b"[1, 2]",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.lists(_LINES, min_size=1, max_size=40), final_newline=st.booleans())
def test_any_snapshot_reads_the_same_with_a_worker(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    body: list[bytes],
    final_newline: bool,
) -> None:
    monkeypatch.setattr(snapshot_lines, "RANGE_BYTES", 64)
    path = _write(tmp_path_factory.mktemp("s") / "s.jsonl", _lines(0) + body, final_newline)

    def outcome(with_worker: bool) -> Any:
        try:
            return _view(_read(monkeypatch, path, with_worker))
        except InputError as exc:
            return str(exc)

    ordinary = outcome(False)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.started = 0
    assert outcome(True) == ordinary
    assert SECRET not in repr(ordinary)
    if len(body) > 8 and sum(map(len, body)) > 512:  # ranges enough for a worker's part
        assert _CountingPool.started == 1
