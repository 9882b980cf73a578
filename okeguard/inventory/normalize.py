"""Turning raw Kubernetes documents into :class:`K8sObject`, redacting secret values on the way in.

Every loader (manifests, snapshot, live cluster) goes through :func:`to_object`, so no secret
value survives past this point (``docs/snapshot.md`` lists what is redacted): Secret data;
annotations holding a copy of an object (``last-applied-configuration``, kapp's original);
credentials in env values, command and args, and probe and hook headers; key material and
credential-like keys in ConfigMaps. Values become markers (:mod:`okeguard.inventory.sensitive`)
that keep what the checks need. ``managedFields`` are dropped: they are large and unused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import MutableMapping
from typing import Any

import orjson

from okeguard.inventory.model import (
    CLUSTER_SCOPED_KINDS,
    CONTAINER_FIELDS,
    SUPPORTED_KINDS,
    K8sObject,
    pod_template,
)
from okeguard.inventory.sensitive import (
    MARKER_PREFIX,
    classify_key_material,
    looks_like_credential_name,
    marker,
    marker_label,
    redact_args,
    redact_header,
    redact_text,
    redact_value,
)

# Secret keys whose values are public by nature and needed by checks (certificate expiry).
PUBLIC_SECRET_KEYS = frozenset({"tls.crt", "ca.crt"})
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Annotations that hold a copy (or a diff) of the object as applied, with every value it had.
OBJECT_COPY_ANNOTATIONS = frozenset(
    {LAST_APPLIED, "kapp.k14s.io/original", "kapp.k14s.io/original-diff"}
)
# okeguard's own annotations (exemptions, rotation times) are read by the checks as written.
OWN_ANNOTATION_PREFIX = "okeguard.io/"
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_HOOKS = ("postStart", "preStop")
_FLAGS = frozenset({"", "true", "false", "yes", "no", "on", "off"})


class NotAnObject(ValueError):
    """A document that is not a Kubernetes object; the message says what is missing."""


def holds_object_copy(value: str) -> bool:
    """True when an annotation value holds, or may hold, a copy of a Kubernetes object: it
    names an ``apiVersion`` (JSON or YAML), or it looks like JSON but does not parse, so what
    it holds cannot be judged."""
    if "apiVersion" in value:
        return True
    if value.lstrip()[:1] not in ("{", "["):
        return False
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    return False


def _redact_annotations(metadata: MutableMapping[str, Any]) -> None:
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        return
    for name, value in annotations.items():
        if marker_label(value) is not None or str(name).startswith(OWN_ANNOTATION_PREFIX):
            continue
        if name in OBJECT_COPY_ANNOTATIONS:
            annotations[name] = marker("annotation", str(value))
        elif isinstance(value, str):
            copy = holds_object_copy(value)
            annotations[name] = marker("annotation", value) if copy else redact_text(value)


def _public_value_holds_key(value: str, encoded: bool) -> bool:
    """True when a ``tls.crt``/``ca.crt`` value also carries a private key (a PEM bundle)."""
    if not encoded:
        return "PRIVATE KEY" in value
    try:
        return b"PRIVATE KEY" in base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False


def _redact_secret(raw: MutableMapping[str, Any]) -> None:
    for field_name in ("data", "stringData"):
        values = raw.get(field_name)
        if not isinstance(values, dict):
            continue
        redacted: dict[str, Any] = {}
        for key, value in values.items():
            text = value if isinstance(value, str) else ""
            public = key in PUBLIC_SECRET_KEYS and isinstance(value, str)
            if marker_label(value) is not None or (
                public and not _public_value_holds_key(text, field_name == "data")
            ):
                redacted[key] = value
            else:
                redacted[key] = marker("secret", text)
        raw[field_name] = redacted


def _redact_config_value(key: str, value: str) -> str:
    label = classify_key_material(value)
    if label:
        return marker(label, value)
    single = value.strip()
    if "\n" not in single and looks_like_credential_name(key):
        # a key such as DB_PASSWORD (loaded with envFrom) holds the credential itself
        return value if single.lower() in _FLAGS else redact_value(single)
    return redact_text(value, key_material=False)


def _as_text(value: object) -> str:
    """A ConfigMap value as the string the API server requires (a manifest may hold a number or
    a mapping there); mappings and lists as JSON, so the JSON rules see their keys."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, default=str).decode()


def _redact_config_map(raw: MutableMapping[str, Any]) -> None:
    data = raw.get("data")
    if isinstance(data, dict):
        raw["data"] = {
            key: value if value is None else _redact_config_value(str(key), _as_text(value))
            for key, value in data.items()
        }
    binary = raw.get("binaryData")
    if isinstance(binary, dict):
        raw["binaryData"] = {
            k: v if marker_label(v) else marker("binary", v if isinstance(v, str) else "")
            for k, v in binary.items()
        }


def _redact_env(container: MutableMapping[str, Any]) -> None:
    env = container.get("env")
    if not isinstance(env, list):
        return
    for var in env:
        if not isinstance(var, dict):
            continue
        value = var.get("value")
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            # a number or mapping the API server would refuse, but a manifest may hold
            if looks_like_credential_name(str(var.get("name") or "")):
                var["value"] = marker("credential", str(value))
            continue
        if value.startswith(MARKER_PREFIX):
            continue
        label = classify_key_material(value)
        if label:
            var["value"] = marker(label, value)
        elif looks_like_credential_name(str(var.get("name") or "")):
            var["value"] = marker("credential", value)
        else:
            var["value"] = redact_text(value, key_material=False)


def _redact_command(holder: MutableMapping[str, Any], field_name: str) -> None:
    value = holder.get(field_name)
    if isinstance(value, list):
        holder[field_name] = redact_args(value)


def _redact_handler(handler: object) -> None:
    """A probe or lifecycle hook: its exec command, and its HTTP path and headers."""
    if not isinstance(handler, dict):
        return
    exec_action = handler.get("exec")
    if isinstance(exec_action, dict):
        _redact_command(exec_action, "command")
    http = handler.get("httpGet")
    if not isinstance(http, dict):
        return
    if isinstance(http.get("path"), str):
        http["path"] = redact_text(http["path"])
    for header in http.get("httpHeaders") or ():
        if isinstance(header, dict) and isinstance(header.get("value"), str):
            header["value"] = redact_header(str(header.get("name") or ""), header["value"])


def _redact_container(container: MutableMapping[str, Any]) -> None:
    _redact_env(container)
    _redact_command(container, "command")
    _redact_command(container, "args")
    for probe in PROBES:
        _redact_handler(container.get(probe))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in LIFECYCLE_HOOKS:
            _redact_handler(lifecycle.get(hook))


def redact(obj: K8sObject) -> None:
    """Replace every sensitive value in ``obj.raw`` (in place) by a redaction marker.

    Idempotent: a redacted object comes out unchanged, so a snapshot can be redacted again on
    reading and on writing.
    """
    raw: MutableMapping[str, Any] = obj.raw  # type: ignore[assignment]
    metadata = raw.get("metadata")
    if isinstance(metadata, dict):
        _redact_annotations(metadata)
    if obj.kind == "Secret":
        _redact_secret(raw)
    elif obj.kind == "ConfigMap":
        _redact_config_map(raw)
    template = pod_template(obj)
    if template is None:
        return
    pod_metadata, spec = template
    if isinstance(pod_metadata, dict) and pod_metadata is not metadata:
        _redact_annotations(pod_metadata)
    for field_name, _ in CONTAINER_FIELDS:
        for container in spec.get(field_name) or ():
            if isinstance(container, dict):
                _redact_container(container)


def to_object(doc: object, *, origin: str | None = None) -> K8sObject | None:
    """Validate and redact one document. Returns None for a kind okeguard does not read.

    Raises :class:`NotAnObject` when ``doc`` lacks ``apiVersion``, ``kind`` or ``metadata.name``.
    A namespaced object without a namespace is placed in ``default``, as kubectl would.
    """
    obj = identify(doc, origin)
    if obj is not None:
        redact(obj)
    return obj


def identify(doc: object, origin: str | None) -> K8sObject | None:
    """The object of a document already redacted (:func:`to_object` without the redaction)."""
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
    return K8sObject(api_version, kind, namespace, name, doc, origin)
