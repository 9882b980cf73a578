"""Small helpers shared by the check modules: references and hits for workloads and objects."""

from __future__ import annotations

from okeguard.checks.model import ResourceRef, Severity
from okeguard.checks.registry import Hit
from okeguard.inventory.model import Container, K8sObject, Workload
from okeguard.kube_shapes import WORKLOAD_KINDS

# What a workload check reads: every kind that runs pods.
WORKLOAD_READS = WORKLOAD_KINDS


def workload_hit(
    workload: Workload,
    message: str,
    container: Container | None = None,
    severity: Severity | None = None,
) -> Hit:
    """A hit on a workload (or one of its containers), exemptable by the workload's annotations
    or its pod template's annotations."""
    return Hit(
        ResourceRef(
            workload.kind,
            workload.namespace,
            workload.name,
            container.name if container else None,
        ),
        message,
        subject=workload.obj,
        severity=severity,
        extra_subject_annotations=workload.pod_metadata.get("annotations"),
    )


def object_hit(obj: K8sObject, message: str, severity: Severity | None = None) -> Hit:
    """A hit on a whole object (a Secret, a binding, an Ingress…)."""
    return Hit(
        ResourceRef(obj.kind, obj.namespace, obj.name), message, subject=obj, severity=severity
    )


def container_label(container: Container) -> str:
    """``container 'app'`` / ``init container 'setup'`` / ``ephemeral container 'debug'``."""
    prefix = {"container": "container", "initContainer": "init container"}.get(
        container.kind, "ephemeral container"
    )
    return f"{prefix} '{container.name}'"
