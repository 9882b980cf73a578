"""Running the registered checks over an inventory and turning their hits into findings."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING

from okeguard.checks.model import Finding, ResourceRef, Severity, Status, fingerprint
from okeguard.checks.registry import CheckContext, CheckSpec, Hit, all_checks
from okeguard.errors import one_line
from okeguard.inventory.model import Inventory, K8sObject

if TYPE_CHECKING:
    from okeguard.config import Config

EXEMPT_ANNOTATION = "okeguard.io/exempt"
EXEMPT_REASON_ANNOTATION = "okeguard.io/exempt-reason"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckRun:
    """The outcome of running checks on one inventory.

    ``warnings`` are one-line messages for people (also logged as warnings, which the command
    line prints on stderr): e.g. an ``okeguard.io/exempt`` annotation naming no known check.
    """

    findings: list[Finding]
    checks_run: list[str]
    not_applicable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def exempt_ids(listed: object) -> set[str]:
    """The check ids (or ``*``) an ``okeguard.io/exempt`` value names: comma-separated."""
    return {part.strip() for part in str(listed).split(",")} - {""}


def _exemption(hit: Hit, check_id: str) -> str | None:
    """The exemption reason when the subject's annotations exempt this check, else None."""
    sources = (hit.subject.annotations if hit.subject else None, hit.extra_subject_annotations)
    for source in sources:
        if not source:
            continue
        listed = source.get(EXEMPT_ANNOTATION)
        if not listed:
            continue
        ids = exempt_ids(listed)
        if check_id in ids or "*" in ids:
            return str(source.get(EXEMPT_REASON_ANNOTATION) or "no reason given")
    return None


def _exempt_value(annotations: object) -> object:
    """The ``okeguard.io/exempt`` value among ``annotations`` (None when there is none)."""
    return annotations.get(EXEMPT_ANNOTATION) if isinstance(annotations, dict | Mapping) else None


def _exempt_listings(
    inventory: Inventory, namespaces: Collection[str] | None
) -> Iterator[tuple[K8sObject, object]]:
    """(object, ``okeguard.io/exempt`` value) for every object and every workload's pod template
    that carries one (the places it is read from), inside the ``--namespace`` filter."""
    for objects in inventory.objects.values():
        for obj in objects:
            metadata = obj.raw.get("metadata")
            listed = _exempt_value(metadata.get("annotations")) if metadata else None
            if listed and (
                not namespaces
                or (
                    obj.namespace in namespaces
                    if obj.namespace is not None
                    else obj.kind == "Namespace" and obj.name in namespaces
                )
            ):
                yield obj, listed
    for workload in inventory.workloads:
        listed = _exempt_value(workload.pod_metadata.get("annotations"))
        if listed and (not namespaces or workload.namespace in namespaces):
            yield workload.obj, listed


def exempt_annotation_warnings(
    inventory: Inventory, namespaces: Collection[str] | None = None
) -> list[str]:
    """One warning per unknown check id named in an ``okeguard.io/exempt`` annotation, naming
    the first object that carries it (and how many more do) with the closest known id."""
    known = {spec.id for spec in all_checks()}
    seen: dict[str, tuple[K8sObject, int]] = {}
    for obj, listed in _exempt_listings(inventory, namespaces):
        for check_id in sorted(exempt_ids(listed) - known - {"*"}):
            first, count = seen.get(check_id, (obj, 0))
            seen[check_id] = (first, count + 1)
    warnings = []
    for check_id, (obj, count) in seen.items():
        where = f"{obj.kind} {obj.namespace + '/' if obj.namespace else ''}{obj.name}"
        if obj.origin:
            where += f" ({obj.origin})"
        more = f" and {count - 1} more object(s)" if count > 1 else ""
        close = difflib.get_close_matches(check_id, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "run 'okeguard checks' for the list"
        warnings.append(
            f"{where}{more}: {EXEMPT_ANNOTATION} names unknown check id '{check_id}', "
            f"which exempts nothing ({hint})"
        )
    return warnings


def _in_namespaces(resource: ResourceRef, namespaces: Collection[str]) -> bool:
    if resource.namespace is not None:
        return resource.namespace in namespaces
    return resource.kind == "Namespace" and resource.name in namespaces


def _gap_findings(spec: CheckSpec, inventory: Inventory) -> list[Hit]:
    hits = []
    for gap in inventory.gaps:
        if gap.kind in spec.reads:
            hits.append(
                Hit(
                    ResourceRef(gap.kind, None, "*"),
                    f"could not evaluate: {gap.kind} objects could not be read ({gap.reason})",
                    status=Status.UNKNOWN,
                )
            )
    return hits


def _unevaluated_findings(spec: CheckSpec, inventory: Inventory) -> list[Hit]:
    """One ``unknown`` hit per object of a kind the check reads that could not be evaluated."""
    return [
        Hit(
            ResourceRef(item.obj.kind, item.obj.namespace, item.obj.name),
            f"could not evaluate: {item.reason}",
            subject=item.obj,
            status=Status.UNKNOWN,
        )
        for item in inventory.unevaluated
        if item.obj.kind in spec.reads
    ]


def run_checks(
    inventory: Inventory,
    config: Config,
    *,
    now: datetime,
    only: Collection[str] | None = None,
    namespaces: Collection[str] | None = None,
) -> CheckRun:
    """Run every enabled check (or only the ids in ``only``) and return sorted findings.

    Checks whose input kinds could not be read report one ``unknown`` finding per missing kind
    instead of running, and one per object of their kinds that could not be evaluated (a field
    of the wrong type); whole-cluster checks are not applicable to a set of manifests.
    """
    ctx = CheckContext(inventory=inventory, config=config, now=now)
    disabled = set(config.checks.disabled)
    findings: list[Finding] = []
    checks_run: list[str] = []
    not_applicable: list[str] = []
    for spec in all_checks():
        if (only is not None and spec.id not in only) or spec.id in disabled:
            continue
        if (spec.whole_cluster and not inventory.whole_cluster) or (
            spec.oci and inventory.oci is None
        ):
            not_applicable.append(spec.id)
            continue
        checks_run.append(spec.id)
        gaps = _gap_findings(spec, inventory)
        hits: Iterable[Hit] = gaps or chain(spec.func(ctx), _unevaluated_findings(spec, inventory))
        findings.extend(_to_findings(spec, hits, inventory.cluster, namespaces))
    findings.sort(key=finding_sort_key)
    warnings = exempt_annotation_warnings(inventory, namespaces)
    for warning in warnings:
        log.warning("%s", one_line(warning))
    return CheckRun(findings, checks_run, not_applicable, warnings)


def _to_findings(
    spec: CheckSpec, hits: Iterable[Hit], cluster: str, namespaces: Collection[str] | None
) -> Iterable[Finding]:
    # A scan turns tens of thousands of hits into findings: the spec's fields are read once,
    # and Finding is built with positional arguments (its fields in order).
    check_id, severity, practice, remediation = (
        spec.id,
        spec.severity,
        spec.practice,
        spec.remediation,
    )
    for hit in hits:
        resource = hit.resource
        if namespaces and not _in_namespaces(resource, namespaces):
            continue
        status = hit.status
        reason = None
        if status is Status.OPEN:
            reason = _exemption(hit, check_id)
            if reason is not None:
                status = Status.EXEMPT
        subject = hit.subject
        yield Finding(
            check_id,
            hit.severity or severity,
            status,
            cluster,
            resource,
            hit.message,
            practice,
            remediation,
            fingerprint(check_id, cluster, resource),
            reason,
            subject.origin if subject is not None else None,
        )


def finding_sort_key(f: Finding) -> tuple[int, str, str, str, str, str]:
    r = f.resource
    return (
        _NEGATED_RANK[f.severity],
        f.check_id,
        r.namespace or "",
        r.kind,
        r.name,
        r.container or "",
    )


_NEGATED_RANK = {severity: -severity.rank for severity in Severity}  # worst first


def worst_open(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among open findings, or None when nothing is open."""
    ranks = [f.severity for f in findings if f.status is Status.OPEN]
    return max(ranks, key=lambda s: s.rank) if ranks else None
