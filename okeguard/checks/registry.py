"""The check registry: each check is a pure function of a :class:`CheckContext`, plus its metadata.

A check is registered with :func:`check`, which records its id, title, practice, default
severity, remediation and the kinds it reads. The function yields :class:`Hit` values; the engine
turns them into findings (fingerprint, exemption, namespace filter).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from okeguard.checks.model import ResourceRef, Severity, Status
from okeguard.inventory.model import Container, Inventory, K8sObject, Workload, is_windows

if TYPE_CHECKING:
    from okeguard.config import Config

T = TypeVar("T")

# The remediation of a check that has no planner: people follow the docs.
GUIDANCE = "guidance"


@dataclass(frozen=True, slots=True)
class Hit:
    """What a check reports about one resource.

    ``subject`` is the object whose ``okeguard.io/exempt`` annotation may exempt the finding;
    ``severity`` overrides the check's default (graded checks); ``status`` is ``UNKNOWN`` when the
    check could not look.
    """

    resource: ResourceRef
    message: str
    subject: K8sObject | None = None
    severity: Severity | None = None
    status: Status = Status.OPEN
    extra_subject_annotations: Mapping[str, str] | None = None


@dataclass(frozen=True)
class CheckContext:
    """What a check sees: the inventory, the configuration and the evaluation time."""

    inventory: Inventory
    config: Config
    now: datetime

    def workloads(self) -> Iterator[Workload]:
        """Workloads subject to workload checks (system namespaces left out unless configured)."""
        return iter(self._workloads)

    def containers(self, *, linux_only: bool = False) -> Iterator[tuple[Workload, Container]]:
        """Every container (all kinds) of :meth:`workloads`, with its workload. ``linux_only``
        leaves out pods that declare ``os.name: windows``, where Linux security fields do not apply."""
        return iter(self._linux_containers if linux_only else self._containers)

    def shared(self, key: str, compute: Callable[[CheckContext], T]) -> T:
        """``compute(self)``, worked out once per run for the checks that share it (``key``
        names it): e.g. every container's parsed image reference, read by four checks."""
        values: dict[str, Any] = self.__dict__.setdefault("_shared", {})
        if key not in values:
            values[key] = compute(self)
        value: T = values[key]
        return value

    # Worked out once for the twenty-odd checks that walk them: a large cluster has tens of
    # thousands of workloads and containers.
    @cached_property
    def _workloads(self) -> tuple[Workload, ...]:
        settings = self.config.checks
        skip = () if settings.include_system_namespaces else settings.system_namespaces
        return tuple(w for w in self.inventory.workloads if w.namespace not in skip)

    @cached_property
    def _containers(self) -> tuple[tuple[Workload, Container], ...]:
        return tuple((w, c) for w in self._workloads for c in w.containers)

    @cached_property
    def _linux_containers(self) -> tuple[tuple[Workload, Container], ...]:
        return tuple(
            (w, c) for w in self._workloads if not is_windows(w.pod_spec) for c in w.containers
        )


CheckFunc = Callable[[CheckContext], Iterable[Hit]]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check and its metadata (the source of ``docs/checks.md``)."""

    id: str
    title: str
    practice: tuple[str, ...]
    severity: Severity
    remediation: str
    reads: tuple[str, ...]
    whole_cluster: bool
    oci: bool
    severity_note: str | None
    description: str
    func: CheckFunc


_REGISTRY: dict[str, CheckSpec] = {}


def check(
    *,
    id: str,
    title: str,
    practice: str | tuple[str, ...],
    severity: Severity,
    remediation: str = GUIDANCE,
    reads: tuple[str, ...] = (),
    whole_cluster: bool = False,
    oci: bool = False,
    severity_note: str | None = None,
) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check. ``reads`` lists the kinds it needs (a failed listing makes it ``unknown``);
    ``whole_cluster`` checks only run on a whole-cluster view (live or snapshot), not on manifests;
    ``oci`` checks only run when the OCI side was read (``inventory.oci``).
    """

    def register(func: CheckFunc) -> CheckFunc:
        if id in _REGISTRY:
            raise ValueError(f"check id registered twice: {id}")
        _REGISTRY[id] = CheckSpec(
            id=id,
            title=title,
            practice=(practice,) if isinstance(practice, str) else practice,
            severity=severity,
            remediation=remediation,
            reads=reads,
            whole_cluster=whole_cluster,
            oci=oci,
            severity_note=severity_note,
            description=inspect.cleandoc(func.__doc__ or title),
            func=func,
        )
        return func

    return register


def all_checks() -> list[CheckSpec]:
    """Every registered check, sorted by id."""
    import okeguard.checks.catalogue  # noqa: F401  (registers the checks)

    return sorted(_REGISTRY.values(), key=lambda spec: spec.id)


def remediation_ids() -> list[str]:
    """The remediations the checks name (a planner registers each; ``test_planner_coverage``
    keeps the two lists equal), without importing the remediation modules."""
    return sorted({spec.remediation for spec in all_checks()} - {GUIDANCE})


def get_check(check_id: str) -> CheckSpec | None:
    """The check with this id, or None."""
    all_checks()
    return _REGISTRY.get(check_id)
