"""HTTP/1.1 on the wire for the Slack endpoint: read one request within limits, render one answer.

Only what Slack sends is understood: a request line, headers, and a body of ``Content-Length``
bytes or ``Transfer-Encoding: chunked``. Whatever breaks a limit is refused with its status
(:class:`Refusal`) as soon as it is known: a ``Content-Length`` over the limit before one byte of
the body is read, a chunked body as soon as its chunks pass the limit. Every connection carries
one request and is closed after the answer (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 16 * 1024  # the request line and headers; Slack sends about 1 KiB
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_VERSION = re.compile(r"HTTP/1\.[01]")


class Refusal(Exception):
    """A request refused with ``status``; ``reason`` is a short token for logs and metrics,
    ``why`` says it in words. ``unread`` is True when part of the body was left unread."""

    def __init__(self, status: int, reason: str, why: str, *, unread: bool = False) -> None:
        super().__init__(why)
        self.status = status
        self.reason = reason
        self.why = why
        self.unread = unread


class ClientGone(Exception):
    """The client closed the connection before sending a whole request."""


@dataclass(frozen=True)
class Request:
    """One request as read: method, target (path and query), lower-cased headers, body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


class BodyBudget:
    """The bytes of request bodies held at once by all connections, bounded. Used from the
    event loop's thread only, so a plain counter suffices."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @contextmanager
    def account(self) -> Iterator[Callable[[int], None]]:
        """A ``take(n)`` for one connection: raises a 503 :class:`Refusal` when ``n`` more bytes
        would pass the limit; everything taken is given back when the block ends."""
        taken = 0

        def take(size: int) -> None:
            nonlocal taken
            if self.used + size > self.limit:
                why = "too many request bodies in progress; try again"
                raise Refusal(503, "busy", why, unread=True)
            self.used += size
            taken += size

        try:
            yield take
        finally:
            self.used -= taken


def _bad(why: str) -> Refusal:
    return Refusal(400, "malformed_request", why, unread=True)


async def _read_line(reader: asyncio.StreamReader, separator: bytes) -> bytes:
    try:
        return await reader.readuntil(separator)
    except asyncio.LimitOverrunError:
        raise Refusal(
            431, "headers_too_large", f"headers over {MAX_HEADER_BYTES} bytes", unread=True
        ) from None
    except (asyncio.IncompleteReadError, ConnectionError):
        raise ClientGone() from None


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise ClientGone() from None


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers) of a request head (up to and without the blank line)."""
    lines = head.lstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0].encode()) or not parts[1]:
        raise _bad("malformed request line")
    method, target, version = parts
    if not _VERSION.fullmatch(version):
        raise Refusal(505, "http_version", f"{version[:20]!r} is not HTTP/1.0 or 1.1", unread=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise _bad("malformed header line")
        key, text = name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise _bad(f"{key} given twice")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return method, target, headers


async def read_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    max_body_bytes: int,
    take: Callable[[int], None],
) -> Request:
    """Read one request from ``reader``; :class:`Refusal` for what breaks a limit or the
    protocol, :class:`ClientGone` when the client leaves. ``take`` accounts for body bytes
    before they are read. Answers ``Expect: 100-continue`` once the body is acceptable."""
    method, target, headers = parse_head((await _read_line(reader, b"\r\n\r\n"))[:-4])
    length, chunked = headers.get("content-length"), headers.get("transfer-encoding")
    too_large = f"body over {max_body_bytes} bytes"
    if chunked is not None:
        if length is not None:
            raise _bad("both Content-Length and Transfer-Encoding")
        if chunked.lower() != "chunked":
            raise Refusal(501, "transfer_encoding", "only chunked is understood", unread=True)
    elif length is not None:
        if not (length.isascii() and length.isdigit() and len(length) <= 18):
            raise _bad("Content-Length is not a number")
        if int(length) > max_body_bytes:
            raise Refusal(413, "body_too_large", too_large, unread=True)
        take(int(length))
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if chunked is None:
        body = await _read_exactly(reader, int(length or 0))
        return Request(method, target, headers, body)
    parts, total = [], 0
    while True:
        size_line = (await _read_line(reader, b"\r\n"))[:-2].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_line):
            raise _bad("malformed chunk size")
        size = int(size_line, 16)
        if size == 0:
            break
        total += size
        if total > max_body_bytes:
            raise Refusal(413, "body_too_large", too_large, unread=True)
        take(size)
        parts.append(await _read_exactly(reader, size))
        if await _read_exactly(reader, 2) != b"\r\n":
            raise _bad("malformed chunk")
    while await _read_line(reader, b"\r\n") != b"\r\n":  # trailers: read, ignored
        pass
    return Request(method, target, headers, b"".join(parts))


def render(status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """The bytes of a whole answer, with ``Content-Length`` and ``Connection: close``."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}"]
    for name, value in headers:
        if name.lower() not in ("content-length", "connection", "transfer-encoding"):
            lines.append(f"{name}: {' '.join(str(value).split())}")  # no CR/LF smuggled in
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace") + body
