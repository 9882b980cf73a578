"""Reading YAML documents straight from libyaml's events, in bounded memory and time.

PyYAML's loaders compose a whole document into a graph of nodes (each with two position marks)
before constructing any Python object from it. For a 50 MB ``kind: List`` document, what
``kubectl get -o yaml`` prints, that graph needed 2.3 GB. :func:`yaml_documents` builds the
objects from the parser's events instead, so a document costs the objects it holds, and it reads
the file in chunks rather than whole.

YAML 1.1 is applied as PyYAML's ``SafeLoader`` applies it: the same implicit resolvers and
scalar constructors (``yes``/``on`` are booleans, unquoted timestamps are datetimes, ``0755``
and ``1:30`` are integers), ``<<`` merge keys, and the ``!!`` tags of the YAML types. Plain
scalars are resolved once per distinct text, which also shares one string object between the
thousands of ``name`` keys of a large file.

What hostile input could do is bounded: an alias may not expand the document beyond
:data:`MAX_ALIAS_NODES` nodes (and ten times its own size: "billion laughs"), nesting stops at
:data:`MAX_DEPTH` levels (no recursion here, and none left for later), and a stream longer than
:data:`MAX_INPUT_BYTES` is refused. A value that cannot be built (a 5,000-digit integer, a
timestamp on the 31st of February, an unknown ``!tag``) does not stop the stream: it is returned
as a :class:`Problem` beside its document, with the line and the field, so the one object can be
reported as not evaluated while the rest is read. Errors of the YAML syntax itself end the
stream with an :class:`~okeguard.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from okeguard.errors import InputError, one_line
from okeguard.inventory.sensitive import may_hold_credential

try:  # libyaml's parser (only its events are used): the pure-Python one is ~10x slower
    _Parser: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Parser = yaml.SafeLoader

MAX_DEPTH = 100  # Kubernetes objects nest 20 levels at most; CRD schemas perhaps 60
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to one document...
ALIAS_RATIO = 10  # ...and at most this many times the nodes written out
MAX_INPUT_BYTES = 1 << 30  # 1 GiB in one file or standard input
_CACHE_SIZE = 1 << 16  # distinct scalars remembered per stream

_TAG = "tag:yaml.org,2002:"
_MAP_TAGS = frozenset({None, "!", _TAG + "map"})
_SEQ_TAGS = frozenset({None, "!", _TAG + "seq"})
_SCALAR_TAGS = frozenset(_TAG + t for t in ("null", "bool", "int", "float", "binary", "timestamp"))
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_MERGE = object()  # the plain key ``<<``
_NO_KEY = object()  # a mapping waiting for its next key
_SKIPPED = object()  # a key that could not be used: its value is dropped


@dataclass(frozen=True, slots=True)
class Problem:
    """Why part of a document could not be read: the 1-based line, the field (keys and list
    indexes from the document's root) and what is wrong."""

    line: int
    path: tuple[str | int, ...]
    message: str

    @property
    def field(self) -> str:
        """The field in the dotted form of messages: ``spec.containers[0].image``."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return one_line(text) or "(document)"


class _BadValue(Exception):
    """A scalar that cannot be built; the message says why."""


def _construct(tag: str, value: str, event: Any) -> Any:
    """The value of a scalar with tag ``tag``, by PyYAML's SafeConstructor."""
    if tag == _TAG + "str":
        return value
    if tag not in _SCALAR_TAGS:
        raise _BadValue(f"unknown tag {tag!r}")
    node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark)
    try:
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
    except (
        ValueError,
        OverflowError,
        LookupError,
        AttributeError,
        TypeError,
        yaml.YAMLError,
    ) as exc:
        what = tag.removeprefix(_TAG)
        shown = value if len(value) <= 40 else f"{value[:20]}…({len(value)} characters)"
        why = ""
        if isinstance(exc, ValueError | OverflowError | yaml.YAMLError):
            text = str(getattr(exc, "problem", None) or exc)
            why = f": {text.split(':')[0].split(';')[0]}"  # the int limit's advice is for Python
        raise _BadValue(f"cannot read {shown!r} as {what}{why}") from None


def _plain(value: str, event: Any) -> Any:
    """A plain (unquoted) scalar, resolved as YAML 1.1 and PyYAML do."""
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            if tag == _TAG + "merge":
                return _MERGE
            if tag == _TAG + "value":
                return "="  # the "value" key of YAML 1.1, read as a string
            if tag == _TAG + "bool":
                return _CONSTRUCTOR.bool_values[value.lower()]
            if tag == _TAG + "null":
                return None
            return _construct(tag, value, event)
    return value


def _merged(sources: list[Any], explicit: dict[Any, Any]) -> dict[Any, Any]:
    """A mapping with ``<<`` merge keys: merged keys first, the mapping's own keys winning, and of
    a merged list the first mapping winning (as PyYAML's ``flatten_mapping``)."""
    out: dict[Any, Any] = {}
    for source in sources:
        for mapping in reversed(source) if isinstance(source, list) else (source,):
            out.update(mapping)
    out.update(explicit)
    return out


def _tagged(tag: str | None, value: Any) -> Any:
    """A mapping or sequence with an explicit ``!!set``, ``!!omap`` or ``!!pairs`` tag."""
    if isinstance(value, dict):
        if tag not in _MAP_TAGS and tag != _TAG + "set":
            raise _BadValue(f"unknown tag {tag!r} on a mapping")
        return set(value) if tag == _TAG + "set" else value
    if tag in _SEQ_TAGS:
        return value
    if tag in (_TAG + "omap", _TAG + "pairs"):
        if not all(isinstance(item, dict) and len(item) == 1 for item in value):
            raise _BadValue(f"{tag} expects a list of single-key mappings")
        return [next(iter(item.items())) for item in value]
    raise _BadValue(f"unknown tag {tag!r} on a sequence")


def _path(stack: list[_Frame], container: Any, key: Any) -> tuple[str | int, ...]:
    """The field being built, from the open mappings and sequences: the frames saved on
    ``stack`` (the first is the document's) and the innermost ``container`` and its ``key``."""
    path: list[str | int] = []
    for held, pending in [*((f[0], f[1]) for f in stack[1:]), (container, key)] if stack else ():
        if isinstance(held, list):
            path.append(len(held))
        elif pending is not _NO_KEY and pending is not _SKIPPED:
            path.append("<<" if pending is _MERGE else str(pending))
    return tuple(path)


def _problem(
    problems: list[Problem], event: Any, path: tuple[str | int, ...], message: str
) -> None:
    if len(problems) < 100:
        found = Problem(event.start_mark.line + 1, path, message)
        if may_hold_credential(found.field):  # the message may quote a secret's value
            found = dataclasses.replace(
                found, message="a value okeguard cannot read (not shown: it may be a secret)"
            )
        problems.append(found)


class _Bounded:
    """A binary stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], label: str, limit: int) -> None:
        self._stream, self._label, self._limit, self._read = stream, label, limit, 0
        self.name = label

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._read += len(data)
        if self._read > self._limit:
            raise InputError(
                f"{self._label}: larger than {self._limit >> 20} MiB: split it into smaller files"
            )
        return data


def yaml_documents(
    source: IO[bytes] | str, label: str, *, limit: int = MAX_INPUT_BYTES
) -> Iterator[tuple[int, Any, tuple[Problem, ...]]]:
    """Yield (line of its first node, document, problems) for each document of ``source``, a
    binary stream read in chunks (UTF-8, or UTF-16 with a byte-order mark) or a string.

    An empty document is ``None``. Raises :class:`InputError` naming ``label`` (and the line)
    for text that is not YAML, and when a stream passes ``limit`` bytes.
    """
    stream = source if isinstance(source, str) else _Bounded(source, label, limit)
    parser = _Parser(stream)
    try:
        yield from _build(parser.get_event)
    except yaml.reader.ReaderError as exc:
        raise InputError(
            f"{label}: not a text file ({exc.reason} at byte {exc.position})"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InputError(f"{label}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: invalid YAML: {' '.join(str(exc).split())}") from None
    finally:
        parser.dispose()


# An open collection put aside while a nested one is built: (container, pending key, merge
# sources, anchor, tag, nodes and aliased nodes counted when it opened).
_Frame = tuple[Any, Any, Any, Any, Any, int, int]


def _build(get_event: Any) -> Iterator[tuple[int, Any, tuple[Problem, ...]]]:
    """Documents from an event stream. One flat loop with an explicit stack (no recursion, so no
    depth can overflow Python's stack): this is the hot path of every manifest scan, so the
    innermost open collection lives in local variables rather than in a frame object."""
    plain: dict[str, Any] = {}  # plain scalar text -> its value
    quoted: dict[str, str] = {}  # quoted scalar text -> one shared string
    anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, nodes it stands for)
    problems: list[Problem] = []
    stack: list[_Frame] = []  # the open collections around the innermost one
    # The innermost open collection (at the document level, a list to receive the root): the
    # container, the key waiting for its value (mappings), merge sources, anchor, tag, and the
    # nodes and aliased nodes counted when it opened.
    container: Any = []
    key: Any = _NO_KEY
    merges: Any = None
    anchor: Any = None
    tag: Any = None
    opened = opened_aliased = 0
    line = 0
    nodes = aliased = 0  # nodes of the document, and nodes its aliases stood for

    while True:
        event = get_event()
        kind = type(event)
        nodes += 1
        if kind is ScalarEvent:
            text = event.value
            scalar_tag = event.tag
            try:
                if scalar_tag is None or scalar_tag == "!":
                    if event.implicit[0]:
                        value = plain.get(text, _NO_KEY)
                        if value is _NO_KEY:
                            value = _plain(text, event)
                            if len(plain) >= _CACHE_SIZE:
                                plain.clear()
                            plain[text] = value
                    elif len(text) < 64:
                        value = quoted.setdefault(text, text)
                        if len(quoted) >= _CACHE_SIZE:
                            quoted.clear()
                    else:
                        value = text
                else:
                    value = _construct(scalar_tag, text, event)
            except _BadValue as exc:
                _problem(problems, event, _path(stack, container, key), str(exc))
                value = None
            if event.anchor is not None:
                anchors[event.anchor] = (value, 1)
            if not stack:
                line = event.start_mark.line + 1
            elif type(container) is dict and value is not _MERGE:
                # Most nodes: a scalar key, or a scalar value of a plain key (the general
                # placement below handles merge keys, lists and what must be reported).
                if key is _NO_KEY:
                    key = value
                    continue
                if key is not _MERGE and key is not _SKIPPED:
                    container[key] = value
                    key = _NO_KEY
                    continue
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if not stack:
                line = event.start_mark.line + 1
            stack.append((container, key, merges, anchor, tag, opened, opened_aliased))
            container = {} if kind is MappingStartEvent else []
            key, merges, anchor, tag = _NO_KEY, None, event.anchor, event.tag
            opened, opened_aliased = nodes, aliased
            if len(stack) == MAX_DEPTH + 1:
                message = f"nested deeper than {MAX_DEPTH} levels"
                _problem(problems, event, _path(stack, container, key), message)
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value, sources, closed_anchor, closed_tag = container, merges, anchor, tag
            size = nodes - opened + 1 + aliased - opened_aliased
            container, key, merges, anchor, tag, opened, opened_aliased = stack.pop()
            try:
                if sources:
                    value = _merged(sources, value)
                if closed_tag is not None and closed_tag != "!":
                    value = _tagged(closed_tag, value)
            except _BadValue as exc:
                _problem(problems, event, _path(stack, container, key), str(exc))
                value = None
            if closed_anchor is not None:
                anchors[closed_anchor] = (value, size)
        elif kind is AliasEvent:
            if not stack:
                line = event.start_mark.line + 1
            target = anchors.get(event.anchor)
            if target is None:
                message = f"alias *{event.anchor} names no anchor before it"
                _problem(problems, event, _path(stack, container, key), message)
                value = None
            else:
                value, size = target
                aliased += size
                if aliased > MAX_ALIAS_NODES and aliased > ALIAS_RATIO * nodes:
                    message = f"aliases expand to more than {aliased:,} nodes (an alias bomb?)"
                    _problem(problems, event, _path(stack, container, key), message)
                    value = None
                    anchors.clear()  # every later alias is refused too: the document is lost
        elif kind is DocumentStartEvent:
            problems, anchors = [], {}
            nodes = aliased = 0
            continue
        elif kind is DocumentEndEvent:
            yield line, (container[0] if container else None), tuple(problems)
            container, key, merges, anchor, tag, opened, opened_aliased = (
                [],
                _NO_KEY,
                None,
                None,
                None,
                0,
                0,
            )
            continue
        elif kind is StreamEndEvent:
            return
        else:  # StreamStartEvent
            continue

        # Place the finished node in its parent.
        if type(container) is list:
            if value is _MERGE:
                _problem(problems, event, _path(stack, container, key), _MERGE_AS_VALUE)
                value = None
            container.append(value)
        elif key is _NO_KEY:
            if value is not _MERGE and type(value) in (dict, list, set):
                _problem(problems, event, _path(stack, container, key), _COLLECTION_AS_KEY)
                value = _SKIPPED
            key = value
        else:
            if value is _MERGE:
                _problem(problems, event, _path(stack, container, key), _MERGE_AS_VALUE)
                value = None
            if key is _MERGE:
                if isinstance(value, dict) or (
                    isinstance(value, list) and all(isinstance(v, dict) for v in value)
                ):
                    merges = [*(merges or ()), value]
                else:
                    _problem(problems, event, _path(stack, container, key), _BAD_MERGE)
            elif key is not _SKIPPED:
                container[key] = value
            key = _NO_KEY


_MERGE_AS_VALUE = "'<<' (a merge key) used as a value"
_COLLECTION_AS_KEY = "a mapping or list used as a key"
_BAD_MERGE = "'<<' merges a mapping or a list of mappings only"
