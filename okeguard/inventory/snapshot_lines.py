"""Admitting the object lines of a large snapshot file with the help of a worker process.

Admitting an object (:func:`okeguard.inventory.validate.admit`: the type check of its fields and
the redaction of its secret values) costs more than decoding its line. Sending admitted objects
back from a worker process would cost more still (pickling the 18,782 objects of the benchmark
takes longer than admitting them), so the work is split otherwise:

- a worker reads the second part of the file (:data:`WORKER_SHARE` of it) and admits every line,
  and sends back one small verdict per line: the line's object is exactly what admitting it
  gives (the usual case: okeguard wrote the snapshot redacted, and ``orjson`` writes the same
  bytes again), or the admitted object's new bytes, a kind okeguard does not read, an object not
  evaluated, or the line's error;
- meanwhile this process admits the lines of the first part as the ordinary reader does, then
  decodes the lines of the second part and, where the verdict says a line is already admitted,
  builds its object without admitting it again (decoding is about 40% of admitting).

The objects, their order, the lines named in errors and in the reasons objects were not evaluated
are the ordinary reader's. Both processes read the same bytes only if the file did not change in
between: the worker reports the device, inode, size and modification time of the file it read,
and they must equal this process's at the start and at the end. When they do not (or the worker
could not read the file), :func:`admit_lines` returns False and the caller reads the file again,
the ordinary way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from itertools import pairwise
from typing import IO, Any, Protocol

import orjson

from okeguard.errors import InputError
from okeguard.inventory import parallel
from okeguard.inventory.files import open_regular_file
from okeguard.inventory.model import K8sObject
from okeguard.inventory.normalize import NotAnObject, identify
from okeguard.inventory.validate import admit

log = logging.getLogger(__name__)

RANGE_BYTES = 8 << 20  # the worker's part is cut into ranges of about this size, at line ends
# The worker's share of the file: this process decodes the worker's lines at about 40% of the
# cost of admitting them, so with one worker both finish together when the worker takes ~60%.
WORKER_SHARE = 0.6

NEWLINE = ord("\n")
FileKey = tuple[int, int, int, int]  # device, inode, size, modification time (ns)


class Admitted(Protocol):
    """Where admitted lines go (the snapshot reader's collection)."""

    objects: list[K8sObject]


class _Changed(Exception):
    """The file changed while it was read, or the worker saw other bytes than this process."""


def _file_key(fd: int) -> FileKey:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _verdicts(item: tuple[str, int, int]) -> tuple[FileKey, list[int]]:
    """In a worker: for every line of bytes ``start`` to ``end`` of the file, its length (newline
    excluded) when the line is exactly what admitting its object gives, else -1 (a blank line, an
    error, a kind okeguard does not read, an object not evaluated, or one that redaction
    changed: this process admits those lines itself)."""
    path, start, end = item
    try:
        with open_regular_file(path) as stream:
            stream.seek(start)
            data = stream.read(end - start)
            key = _file_key(stream.fileno())
    except (OSError, InputError):  # gone or replaced since: this process reads it alone
        return (-1, -1, -1, -1), []
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the range ends with a line's newline
    out: list[int] = []
    for line in lines:
        try:
            admitted = admit(orjson.loads(line), None)
        except (orjson.JSONDecodeError, NotAnObject):
            admitted = None
        same = type(admitted) is K8sObject and orjson.dumps(admitted.raw) == line
        out.append(len(line) if same else -1)
    return key, out


def _ranges(stream: IO[bytes], start: int, size: int) -> list[tuple[int, int]]:
    """Byte ranges from ``start`` to ``size`` of about :data:`RANGE_BYTES`, each beginning at a
    line's start (the stream is left at ``start``)."""
    bounds = [start]
    position = start + RANGE_BYTES
    while position < size:
        stream.seek(position - 1)
        stream.readline()  # to the end of the line that holds byte position - 1
        position = stream.tell()
        if position >= size:
            break
        bounds.append(position)
        position += RANGE_BYTES
    bounds.append(size)
    stream.seek(start)
    return list(pairwise(bounds))


def admit_lines(
    stream: IO[bytes], path: str, found: Admitted, add: Callable[[bytes, int], None]
) -> bool:
    """Admit the object lines of ``stream`` (the regular file at ``path``, positioned after its
    header line) into ``found`` with a worker process, and return True; ``add(line, number)``
    admits one line the ordinary way. Return False, with the stream back where it was, when the
    rest of the file is too small to be worth a worker, with one core, or when the file changed
    under the read; ``found`` may then hold part of the objects and must be discarded. A line's
    error is raised as the ordinary reader raises it."""
    start = stream.tell()
    key = _file_key(stream.fileno())
    size = key[2]
    if size - start < parallel.MIN_PARALLEL_BYTES or parallel.worker_count() < 2:
        return False
    stream.seek(start + int((size - start) * (1 - WORKER_SHARE)) - 1)
    stream.readline()  # the worker's part begins at a line's start
    split = _ranges(stream, stream.tell(), size) if stream.tell() < size else []
    stream.seek(start)
    pool = parallel.open_pool(1) if split else None
    if pool is None:
        return False
    finished = False
    try:
        futures = [pool.submit(parallel.run_batch, _verdicts, [(path, a, b)]) for a, b in split]
        number = _admit_first_part(stream, split[0][0] - start, add)
        _admit_second_part(stream, found, add, split, futures, key, number)
        finished = True
    except _Changed as exc:
        why = "a worker could not read it" if exc.__cause__ is not None else "it changed"
        log.warning("%s: %s while it was read; reading it again in this process", path, why)
        stream.seek(start)
        return False
    finally:
        parallel.close_pool(pool, finished)
    return True


def _admit_first_part(stream: IO[bytes], length: int, add: Callable[[bytes, int], None]) -> int:
    """Admit the lines of the next ``length`` bytes; the number of the line after them."""
    number = 2
    read = 0
    while read < length:
        line = stream.readline()
        read += len(line)
        if not line.isspace():  # as line.strip(), without copying the line
            add(line, number)
        number += 1
    return number


def _admit_second_part(
    stream: IO[bytes],
    found: Admitted,
    add: Callable[[bytes, int], None],
    ranges: list[tuple[int, int]],
    futures: list[Future[list[tuple[bool, Any]]]],
    key: FileKey,
    number: int,
) -> None:
    """Admit the lines of ``ranges`` (the rest of the file) with the worker's verdicts."""
    objects = found.objects
    position = ranges[0][0]
    for (start, end), future in zip(ranges, futures, strict=True):
        [(ok, value)] = future.result()
        if not ok:  # the worker's own failure (memory, a bug): read the file here
            raise _Changed from value
        seen, verdicts = value
        if seen != key or position != start:
            raise _Changed
        for length in verdicts:
            line = stream.readline()
            if not line:
                raise _Changed  # the file ended early
            position += len(line)
            if length == len(line) - (line[-1] == NEWLINE):
                obj = identify(orjson.loads(line), None)  # the bytes the worker admitted
                if obj is None:
                    raise _Changed
                objects.append(obj)
            elif not line.isspace():
                add(line, number)
            number += 1
        if position != end:
            raise _Changed
    if stream.readline() or _file_key(stream.fileno()) != key:
        raise _Changed
