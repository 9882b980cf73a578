"""Guarded JSON Patch pieces: every change paired with the undo that reverses it.

Each builder returns ``(forward, undo)``. The forward ops ``test`` the value they replace; the
undo ops ``test`` the value the forward ops set, so an undo refuses (422, nothing written) when
someone changed the field after okeguard did. Undo groups are meant to run newest first.
"""

from __future__ import annotations

from typing import Any

Ops = list[dict[str, Any]]


def test_resource_version(resource_version: str | None) -> Ops:
    """The ``test`` that binds a patch to the object version it was planned against."""
    if not resource_version:
        return []
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}]


def replace_value(path: str, old: Any, new: Any) -> tuple[Ops, Ops]:
    """Replace ``old`` at ``path`` with ``new`` (the path exists)."""
    forward = [
        {"op": "test", "path": path, "value": old},
        {"op": "replace", "path": path, "value": new},
    ]
    undo = [
        {"op": "test", "path": path, "value": new},
        {"op": "replace", "path": path, "value": old},
    ]
    return forward, undo


def add_value(path: str, new: Any) -> tuple[Ops, Ops]:
    """Add ``new`` at ``path`` (which does not exist yet)."""
    forward = [{"op": "add", "path": path, "value": new}]
    undo = [{"op": "test", "path": path, "value": new}, {"op": "remove", "path": path}]
    return forward, undo


def set_value(path: str, present: bool, old: Any, new: Any) -> tuple[Ops, Ops]:
    """Replace the value at ``path`` when ``present``, else add it."""
    return replace_value(path, old, new) if present else add_value(path, new)


def append_item(list_path: str, items: list[Any] | None, item: Any) -> tuple[Ops, Ops]:
    """Append ``item`` to the list at ``list_path`` (``items``; None: the list does not exist)."""
    if items is None:
        return add_value(list_path, [item])
    index_path = f"{list_path}/{len(items)}"
    forward = [{"op": "add", "path": f"{list_path}/-", "value": item}]
    undo = [{"op": "test", "path": index_path, "value": item}, {"op": "remove", "path": index_path}]
    return forward, undo


def newest_first(undo_groups: list[Ops]) -> Ops:
    """The undo of several changes, the last change undone first (list indexes stay valid)."""
    return [op for group in reversed(undo_groups) for op in group]
