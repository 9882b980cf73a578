"""Patches and selectors of the fake Kubernetes API: RFC 6902 JSON Patch, RFC 7386 merge patch
and label selectors."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class PatchError(ValueError):
    """A JSON Patch that cannot be applied (the API server answers 422); ``path`` is where."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


# -- patches and selectors ----------------------------------------------------------------
def _pointer(path: Any) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer."""
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}", str(path))
    if not path:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, path: str, *, end_ok: bool = False) -> int:
    if end_ok and token == "-":
        return length
    if not re.fullmatch(r"0|[1-9][0-9]*", token) or int(token) > (length if end_ok else length - 1):
        raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return int(token)


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), path)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(tokens[-1], len(parent), path, end_ok=True), value)
    else:
        raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return doc


def _remove(doc: Any, path: str) -> Any:
    """Remove the value at ``path`` (which must exist) and return it."""
    tokens = _pointer(path)
    if not tokens:
        raise PatchError(f'unable to remove the whole document at "{path}"', path)
    parent = _resolve(doc, tokens[:-1], path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(tokens[-1], len(parent), path))
    raise PatchError(f'doc is missing path: "{path}": missing value', path)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's, ``true`` is not ``1`` and ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def apply_json_patch(doc: Any, operations: Iterable[Any]) -> Any:
    """``doc`` after the RFC 6902 ``operations`` (``doc`` itself is not changed).

    Raises PatchError naming the path of the first operation that cannot be applied.
    """
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"invalid JSON patch operation: {operation!r}", "")
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str):
            raise PatchError(f"invalid JSON patch operation: {operation!r}", str(path))
        _pointer(path)
        needs = {
            "add": "value",
            "replace": "value",
            "test": "value",
            "move": "from",
            "copy": "from",
        }
        if op in needs and needs[op] not in operation:
            raise PatchError(f'{op} operation at "{path}" has no "{needs[op]}"', path)
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(result, path)
        elif op == "replace":
            tokens = _pointer(path)
            _resolve(result, tokens, path)  # must exist
            if tokens:
                _remove(result, path)
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = operation["from"]
            if not isinstance(source, str):
                raise PatchError(f'invalid "from" of the {op} operation at "{path}"', path)
            _pointer(source)
            if op == "move" and path.startswith(source + "/"):
                raise PatchError(f'cannot move "{source}" into its child "{path}"', path)
            if op == "move" and source == path:
                _resolve(result, _pointer(source), source)
                continue
            value = (
                _remove(result, source)
                if op == "move"
                else _resolve(result, _pointer(source), source)
            )
            result = _add(result, path, copy.deepcopy(value))
        elif op == "test":
            if not _json_equal(_resolve(result, _pointer(path), path), operation["value"]):
                raise PatchError(f"testing value {path} failed: test failed", path)
        else:
            raise PatchError(f'Unexpected kind: {op!r} at "{path}"', path)
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` after the RFC 7386 merge ``patch`` (neither is changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_LABEL_KEY = r"(?:[a-z0-9A-Z.\-]+/)?[a-zA-Z0-9](?:[\w.\-]*[a-zA-Z0-9])?"
_SET_TERM = re.compile(rf"\s*({_LABEL_KEY})\s+(in|notin)\s+\(([^()]*)\)\s*")
_EQUALITY_TERM = re.compile(rf"\s*({_LABEL_KEY})\s*(==|!=|=)\s*([\w.\-]*)\s*")
_EXISTS_TERM = re.compile(rf"\s*(!?)\s*({_LABEL_KEY})\s*")


def parse_label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate on labels for a Kubernetes label selector; ValueError when malformed."""
    terms: list[str] = []
    depth, start = 0, 0
    for position, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:position])
            start = position + 1
    terms.append(text[start:])
    # each requirement: (key, operator, values) with operator in, notin, exists or !exists
    requirements: list[tuple[str, str, frozenset[str]]] = []
    for term in terms:
        if not term.strip() and len(terms) == 1:
            break
        if match := _SET_TERM.fullmatch(term):
            values = frozenset(v.strip() for v in match[3].split(","))
            requirements.append((match[1], match[2], values))
        elif match := _EQUALITY_TERM.fullmatch(term):
            operator = "notin" if match[2] == "!=" else "in"  # k!=v matches labels without k
            requirements.append((match[1], operator, frozenset({match[3]})))
        elif match := _EXISTS_TERM.fullmatch(term):
            requirements.append((match[2], "!exists" if match[1] else "exists", frozenset()))
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r} in {text!r}")

    def matches(labels: Mapping[str, str]) -> bool:
        return all(_satisfies(labels, *requirement) for requirement in requirements)

    return matches


def _satisfies(labels: Mapping[str, str], key: str, operator: str, values: frozenset[str]) -> bool:
    if operator == "exists":
        return key in labels
    if operator == "!exists":
        return key not in labels
    if operator == "in":
        return labels.get(key) in values
    return labels.get(key) not in values
