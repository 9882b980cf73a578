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
from collections.abc import Callable, Iterable, Mapping
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


def _always(_: object) -> bool:
    return True


def _is_int(value: object) -> bool:
    return type(value) is int and value.bit_length() <= 64


def _is_timestamp(value: object) -> bool:
    return parse_timestamp(value) is not None


def compile_shape(shape: Shape) -> Check:
    """A fast test that a non-null value has ``shape`` (True) or not: what every object of a scan
    goes through. Only when it fails does :func:`field_problem` walk again to name the field."""
    if shape is None:
        return _always
    if isinstance(shape, NotNull):
        return compile_shape(shape.shape)  # null is caught by the mapping holding the field
    if shape is TIMESTAMP:
        return _is_timestamp
    if shape is int:
        return _is_int
    if isinstance(shape, list):
        if shape[0] is None:
            return lambda value: type(value) is list
        if _plain_record(shape[0]):
            return _list_of_records(tuple(shape[0].items()))
        return _list_of(compile_shape(shape[0]))
    if isinstance(shape, dict):
        return _compile_mapping(shape)
    if shape is TEXT:
        return lambda value: type(value) in _TEXT_TYPES
    leaf: type = shape
    return lambda value: type(value) is leaf


_TEXT_TYPES = frozenset({*TEXT, type(None)})  # null is "" to the API server


def _list_of(item: Check) -> Check:
    def check(value: object) -> bool:
        if type(value) is not list:
            return False
        for v in value:  # noqa: SIM110 - a loop is faster than all() over a generator
            if v is not None and not item(v):
                return False
        return True

    return check


def _plain_record(shape: Shape) -> bool:
    """A mapping whose fields are all strings or booleans (``env``, ``subjects``...)."""
    return isinstance(shape, dict) and all(v is str or v is bool for v in shape.values())


def _list_of_records(fields: tuple[tuple[str, type], ...]) -> Check:
    def check(value: object) -> bool:
        if type(value) is not list:
            return False
        for item in value:
            if item is None:
                continue
            if type(item) is not dict:
                return False
            get = item.get
            for key, kind in fields:
                field = get(key)
                if field is not None and type(field) is not kind:
                    return False
        return True

    return check


def _compile_mapping(shape: dict[str, Shape]) -> Check:
    if "*" in shape:
        if shape["*"] is TEXT:  # map[string]string: the labels and annotations of every object
            return lambda value: (
                type(value) is dict and _TEXT_TYPES.issuperset(map(type, value.values()))
            )
        every = compile_shape(shape["*"])
        return lambda value: (
            type(value) is dict and all(v is not None and every(v) for v in value.values())
        )
    required = tuple(key for key, inner in shape.items() if isinstance(inner, NotNull))
    shapes = {k: v.shape if isinstance(v, NotNull) else v for k, v in shape.items()}
    # Fields of a plain type are tested inline: most fields are, and a call each would double
    # the time this takes on a large snapshot.
    leaves = tuple((k, v) for k, v in shapes.items() if v is str or v is bool)
    nested = tuple(
        (k, compile_shape(v)) for k, v in shapes.items() if v is not None and (k, v) not in leaves
    )

    def check(value: object) -> bool:
        if type(value) is not dict:
            return False
        get = value.get
        for key in required:
            if key in value and value[key] is None:
                return False
        for key, kind in leaves:
            field = get(key)
            if field is not None and type(field) is not kind:
                return False
        for key, inner in nested:
            field = get(key)
            if field is not None and not inner(field):
                return False
        return True

    return check


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
