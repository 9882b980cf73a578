"""Registries of names to entries, filled by decorators where each entry is defined.

Planners (``planners.PLANNERS``, by remediation id) and actions (``engine.ACTIONS``, by operation
name) register themselves like checks do (``okeguard/checks/registry.py``):
``@planner("add-security-context")`` on a planner function, ``@action("k8s.patch")`` on an action
class. The default registries import :mod:`okeguard.remediations.catalogue`, the one module that
imports every module that registers, on their first lookup. A test builds its own
:class:`Registry` and passes it as ``registry=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name. ``what`` names an entry in errors ("remediation", "operation");
    ``load`` is called before every lookup to make sure the entries are registered: it must be
    idempotent and cheap once done, as an ``import`` is."""

    def __init__(self, what: str, *, load: Callable[[], None] | None = None) -> None:
        self.what = what
        self._load = load
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` under ``name``; a name registered twice is a ValueError."""
        if name in self._entries:
            raise ValueError(f"{self.what} registered twice: {name}")
        self._entries[name] = entry

    def get(self, name: str) -> T | None:
        """The entry registered under ``name``, or None."""
        return self._loaded().get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            self._load()
        return self._entries


def load_catalogue() -> None:
    """Import every module that registers a planner or an action (once; then a no-op)."""
    import okeguard.remediations.catalogue  # noqa: F401  (its imports register them)
