"""A small language for the shapes of JSON-like values, and two ways of testing one.

A shape is a scalar type (``str``, ``bool``, ``int``), :data:`TIMESTAMP`, :data:`TEXT`, a dict
of the shapes of the keys a mapping may hold (``{}``: any mapping; ``{"*": shape}``: every
value), a one-item list of its items' shape, :class:`NotNull` around one of those, or None for
anything. Null matches every shape but :class:`NotNull`, as the API server reads null as absent.

:func:`compile_shape` turns a shape into a fast yes/no test, which every object of a scan goes
through; :func:`field_problem` walks a value again to name the first field that does not fit,
only for the values that failed. :func:`dataclass_shape` derives a shape from dataclasses (the
OCI state a snapshot stores).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any

from okeguard.errors import one_line
from okeguard.inventory.sensitive import may_hold_credential
from okeguard.timestamps import parse_timestamp


class _Timestamp:
    """A leaf that must name an instant (an RFC 3339 string, or what YAML makes of one)."""


TIMESTAMP = _Timestamp()


class NotNull:
    """A shape that does not allow null (for dataclass fields that are not optional)."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape


Shape = Any  # see the module's docstring

# A string to the API server: kubectl's YAML reader keeps an unquoted timestamp a string, where
# YAML 1.1 (and okeguard) make it a datetime, so a label or annotation may hold one.
TEXT = (str, datetime, date)

_NAMES = {str: "a string", TEXT: "a string", bool: "a boolean", int: "an integer"}


def _described(value: object, path: str = "") -> str:
    if may_hold_credential(path) and not isinstance(value, Mapping | list | tuple | set):
        return f"a value of type {type(value).__name__}"  # never quote what may be a secret
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple | set):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:30] + "…"
        return f"the string {shown!r}"
    if isinstance(value, int) and value.bit_length() > 64:
        return "an integer too large"
    return f"{type(value).__name__} {value!r}"[:60]


def _mismatch(value: object, shape: Shape) -> str | None:
    """What is expected when ``value`` is not of the leaf type ``shape`` (None: it is)."""
    if shape is TIMESTAMP:
        if parse_timestamp(value) is None:
            return "a timestamp such as 2024-05-01T10:00:00Z"
        return None
    if shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64
    else:
        ok = isinstance(value, shape)
    return None if ok else _NAMES[shape]


def field_problem(value: object, shape: Shape, path: str = "") -> str | None:
    """The first field of ``value`` that does not have its ``shape``, as a sentence naming it
    (``spec.template.spec.containers is the string 'x', expected a list``); None when all do."""
    if isinstance(shape, NotNull):
        if value is None:
            return f"{path} is null, expected a value"
        shape = shape.shape
    if value is None or shape is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{path or 'the object'} is {_described(value, path)}, expected a mapping"
        if "*" in shape:  # every value of the mapping
            return _first((v, shape["*"], f"{path}.{one_line(str(k))}") for k, v in value.items())
        for key, inner in shape.items():
            if key in value:
                found = field_problem(value[key], inner, f"{path}.{key}" if path else key)
                if found:
                    return found
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{path} is {_described(value, path)}, expected a list"
        if shape[0] is not None:
            for index, item in enumerate(value):
                found = field_problem(item, shape[0], f"{path}[{index}]")
                if found:
                    return found
        return None
    expected = _mismatch(value, shape)
    return f"{path} is {_described(value, path)}, expected {expected}" if expected else None


Check = Callable[[object], bool]


def compile_shape(shape: Shape) -> Check:
    """A fast test that a non-null value has ``shape`` (True) or not, agreeing with
    :func:`field_problem`: what every object of a scan goes through. Only when it fails does
    :func:`field_problem` walk again to name the field.

    The test is generated as the source of one function, with every field of the shape tested
    inline (``type(x) is str``): a function call per nested mapping or list item, as a tree of
    closures would make, took more than half of the time on a large snapshot.
    """
    lines = ["def check(v0):"]
    _emit(shape, "v0", 1, lines, iter(range(1, 1 << 30)))
    lines.append("    return True")
    namespace: dict[str, Any] = {
        "_TEXT_TYPES": _TEXT_TYPES,
        "_STR_OR_NULL": frozenset({str, type(None)}),
        "_BOOL_OR_NULL": frozenset({bool, type(None)}),
        "_parse_timestamp": parse_timestamp,
    }
    exec(compile("\n".join(lines), f"<shape check {id(shape):x}>", "exec"), namespace)
    check: Check = namespace["check"]
    return check


_TEXT_TYPES = frozenset({*TEXT, type(None)})  # null is "" to the API server
# The leaf shapes a mapping's field is tested against with one set lookup, by identity.
_LEAF_TESTS = {id(str): "_STR_OR_NULL", id(bool): "_BOOL_OR_NULL", id(TEXT): "_TEXT_TYPES"}


def _emit(shape: Shape, var: str, depth: int, lines: list[str], names: Iterator[int]) -> None:
    """Append statements that ``return False`` unless ``var`` (not null) has ``shape``."""
    pad = "    " * depth

    def fail_if(condition: str) -> None:
        lines.append(f"{pad}if {condition}:")
        lines.append(f"{pad}    return False")

    if isinstance(shape, NotNull):
        shape = shape.shape  # null is caught by the mapping holding the field
    if shape is None:
        return
    if shape is TIMESTAMP:
        fail_if(f"_parse_timestamp({var}) is None")
    elif shape is int:
        fail_if(f"type({var}) is not int or {var}.bit_length() > 64")
    elif shape is TEXT:
        fail_if(f"type({var}) not in _TEXT_TYPES")
    elif shape is str or shape is bool:
        fail_if(f"type({var}) is not {shape.__name__}")
    elif isinstance(shape, list):
        fail_if(f"type({var}) is not list")
        if shape[0] is not None:
            item = f"v{next(names)}"
            lines.append(f"{pad}for {item} in {var}:")
            lines.append(f"{pad}    if {item} is not None:")
            before = len(lines)
            _emit(shape[0], item, depth + 2, lines, names)
            if len(lines) == before:
                lines.append(f"{pad}        pass")
    elif isinstance(shape, dict):
        _emit_mapping(shape, var, depth, lines, names)
    else:
        raise TypeError(f"not a shape: {shape!r}")


def _emit_mapping(
    shape: dict[str, Shape], var: str, depth: int, lines: list[str], names: Iterator[int]
) -> None:
    pad = "    " * depth
    lines.append(f"{pad}if type({var}) is not dict:")
    lines.append(f"{pad}    return False")
    if "*" in shape:  # every value of the mapping
        inner = shape["*"]
        if inner is TEXT:  # map[string]string: the labels and annotations of every object
            lines.append(f"{pad}if not _TEXT_TYPES.issuperset(map(type, {var}.values())):")
            lines.append(f"{pad}    return False")
            return
        item = f"v{next(names)}"
        lines.append(f"{pad}for {item} in {var}.values():")
        if isinstance(inner, NotNull):
            lines.append(f"{pad}    if {item} is None:")
            lines.append(f"{pad}        return False")
        lines.append(f"{pad}    if {item} is not None:")
        before = len(lines)
        _emit(inner, item, depth + 2, lines, names)
        if len(lines) == before:
            lines.append(f"{pad}        pass")
        return
    for key, inner in shape.items():
        if isinstance(inner, NotNull):
            lines.append(f"{pad}if {key!r} in {var} and {var}[{key!r}] is None:")
            lines.append(f"{pad}    return False")
            inner = inner.shape
        if inner is None:
            continue
        allowed = _LEAF_TESTS.get(id(inner))  # most fields: one test each
        if allowed is not None:
            lines.append(f"{pad}if type({var}.get({key!r})) not in {allowed}:")
            lines.append(f"{pad}    return False")
            continue
        field = f"v{next(names)}"
        lines.append(f"{pad}{field} = {var}.get({key!r})")
        lines.append(f"{pad}if {field} is not None:")
        before = len(lines)
        _emit(inner, field, depth + 1, lines, names)
        if len(lines) == before:
            lines.append(f"{pad}    pass")


def dataclass_shape(cls: type) -> dict[str, Shape]:
    """The shape of a dataclass written as a dict (as snapshots store the OCI state), from its
    field annotations: ``str``, ``bool``, ``int``, ``datetime``, ``X | None``,
    ``tuple[X, ...]``, ``Mapping[str, X]`` and nested dataclasses of its module."""
    module = sys.modules[cls.__module__]
    return {f.name: _annotation_shape(str(f.type), module) for f in dataclasses.fields(cls)}


def _annotation_shape(annotation: str, module: object) -> Shape:
    if "None" not in annotation.split(" | "):
        return NotNull(_annotation_shape(annotation + " | None", module))
    text = annotation.split(" | ")[0].strip()
    if text in _SCALARS:
        return _SCALARS[text]
    if match := re.fullmatch(r"tuple\[(\w+), \.\.\.\]", text):
        return [_annotation_shape(match.group(1), module)]
    if match := re.fullmatch(r"Mapping\[str, (\w+)\]", text):
        return {"*": _annotation_shape(match.group(1), module)}
    inner = getattr(module, text, None)
    if isinstance(inner, type) and dataclasses.is_dataclass(inner):
        return dataclass_shape(inner)
    return None


_SCALARS: Mapping[str, Shape] = {"str": str, "bool": bool, "int": int, "datetime": TIMESTAMP}


def _first(fields: Iterable[tuple[object, Shape, str]]) -> str | None:
    for value, shape, path in fields:
        found = field_problem(value, shape, path)
        if found:
            return found
    return None
