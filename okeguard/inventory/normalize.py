"""Turning raw Kubernetes documents into :class:`K8sObject`, redacting secret values on the way in.

Every loader (manifests, snapshot, live cluster) goes through :func:`to_object`, so no secret
value survives past this point: Secret data, credential-like env values, key material in
ConfigMaps and ``last-applied-configuration`` annotations are replaced by markers
(:mod:`okeguard.inventory.sensitive`). ``managedFields`` are dropped: they are large and unused.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from okeguard.inventory.model import (
    CLUSTER_SCOPED_KINDS,
    CONTAINER_FIELDS,
    SUPPORTED_KINDS,
    K8sObject,
    pod_template,
)
from okeguard.inventory.sensitive import (
    classify_key_material,
    looks_like_credential_name,
    marker,
    marker_label,
)

# Secret keys whose values are public by nature and needed by checks (certificate expiry).
PUBLIC_SECRET_KEYS = frozenset({"tls.crt", "ca.crt"})
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class NotAnObject(ValueError):
    """A document that is not a Kubernetes object; the message says what is missing."""


def _redact_secret(raw: MutableMapping[str, Any]) -> None:
    for field_name in ("data", "stringData"):
        values = raw.get(field_name)
        if not isinstance(values, dict):
            continue
        raw[field_name] = {
            key: value
            if key in PUBLIC_SECRET_KEYS or marker_label(value) is not None
            else marker("secret", value if isinstance(value, str) else "")
            for key, value in values.items()
        }


def _redact_config_map(raw: MutableMapping[str, Any]) -> None:
    data = raw.get("data")
    if isinstance(data, dict):
        redacted: dict[str, Any] = {}
        for key, value in data.items():
            label = classify_key_material(value) if isinstance(value, str) else None
            redacted[key] = marker(label, value) if label else value
        raw["data"] = redacted
    binary = raw.get("binaryData")
    if isinstance(binary, dict):
        raw["binaryData"] = {
            k: marker("binary", v if isinstance(v, str) else "") for k, v in binary.items()
        }


def _redact_env(container: MutableMapping[str, Any]) -> None:
    env = container.get("env")
    if not isinstance(env, list):
        return
    for var in env:
        if not isinstance(var, dict):
            continue
        value = var.get("value")
        if not isinstance(value, str) or not value or marker_label(value) is not None:
            continue
        label = classify_key_material(value)
        if label:
            var["value"] = marker(label, value)
        elif looks_like_credential_name(str(var.get("name") or "")):
            var["value"] = marker("credential", value)


def redact(obj: K8sObject) -> None:
    """Replace every sensitive value in ``obj.raw`` (in place) by a redaction marker."""
    raw: MutableMapping[str, Any] = obj.raw  # type: ignore[assignment]
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            last_applied = annotations.get(LAST_APPLIED)
            if last_applied is not None and marker_label(last_applied) is None:
                annotations[LAST_APPLIED] = marker("annotation", str(last_applied))
    if obj.kind == "Secret":
        _redact_secret(raw)
    elif obj.kind == "ConfigMap":
        _redact_config_map(raw)
    template = pod_template(obj)
    if template is not None:
        spec = template[1]
        for field_name, _ in CONTAINER_FIELDS:
            for container in spec.get(field_name) or ():
                if isinstance(container, dict):
                    _redact_env(container)


def to_object(doc: object, *, origin: str | None = None) -> K8sObject | None:
    """Validate and redact one document. Returns None for a kind okeguard does not read.

    Raises :class:`NotAnObject` when ``doc`` lacks ``apiVersion``, ``kind`` or ``metadata.name``.
    A namespaced object without a namespace is placed in ``default``, as kubectl would.
    """
    if not isinstance(doc, dict):
        raise NotAnObject(f"expected a mapping with apiVersion and kind, got {type(doc).__name__}")
    kind = doc.get("kind")
    api_version = doc.get("apiVersion")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
        missing = "kind" if not isinstance(kind, str) or not kind else "apiVersion"
        raise NotAnObject(f"not a Kubernetes object: no {missing}")
    if kind not in SUPPORTED_KINDS:
        return None
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        raise NotAnObject(f"{kind} has no metadata.name")
    assert isinstance(metadata, dict)
    if kind in CLUSTER_SCOPED_KINDS:
        namespace = None
    else:
        namespace = str(metadata.get("namespace") or "default")
    obj = K8sObject(api_version, kind, namespace, name, doc, origin)
    redact(obj)
    return obj
