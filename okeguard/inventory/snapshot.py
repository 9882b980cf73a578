"""Snapshot files: a versioned JSON capture of one cluster (format in ``docs/snapshot.md``).

A snapshot holds the objects okeguard reads (secret values already redacted), how the kubeconfig
users authenticate, and what could not be read when it was taken. Scanning a snapshot is a
whole-cluster scan, evaluated offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from okeguard.errors import InputError
from okeguard.inventory.model import (
    Gap,
    Inventory,
    KubeconfigUser,
    SourceInfo,
    build_inventory,
    parse_time,
)
from okeguard.inventory.normalize import NotAnObject, to_object

SNAPSHOT_SCHEMA = "okeguard.snapshot/v1"


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_document(
    inventory: Inventory, cluster_info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON document of a snapshot of ``inventory``."""
    users = inventory.kubeconfig_users
    return {
        "schema": SNAPSHOT_SCHEMA,
        "captured_at": format_time(inventory.captured_at or datetime.now(UTC)),
        "cluster": {"name": inventory.cluster, **dict(cluster_info or {})},
        "objects": [obj.raw for kind in inventory.objects for obj in inventory.objects[kind]],
        "kubeconfig": None
        if users is None
        else {
            "users": [
                {
                    "name": u.name,
                    "auth": list(u.auth),
                    "exec_command": u.exec_command,
                    "exec_args": list(u.exec_args),
                }
                for u in users
            ]
        },
        "incomplete": [
            {"source": g.source, "kind": g.kind, "reason": g.reason} for g in inventory.gaps
        ],
        "skipped_kinds": dict(inventory.skipped_kinds),
    }


def save_snapshot(
    inventory: Inventory, path: str | Path, cluster_info: Mapping[str, Any] | None = None
) -> int:
    """Write ``inventory`` as a snapshot file; returns the number of bytes written."""
    data = orjson.dumps(snapshot_document(inventory, cluster_info), option=orjson.OPT_INDENT_2)
    try:
        Path(path).write_bytes(data + b"\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot write snapshot: {exc.strerror}") from None
    return len(data) + 1


def _require(doc: Mapping[str, Any], key: str, kind: type, label: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise InputError(f"{label}: '{key}' is missing or not a {kind.__name__}")
    return value


def parse_snapshot(data: bytes, label: str, *, source_type: str = "snapshot") -> Inventory:
    """Parse snapshot bytes (``label`` names the file in errors) into a whole-cluster inventory."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{label}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{label}: not an okeguard snapshot (expected a JSON object)")
    schema = doc.get("schema")
    if schema != SNAPSHOT_SCHEMA:
        raise InputError(
            f"{label}: not an okeguard snapshot (schema is {schema!r}, expected '{SNAPSHOT_SCHEMA}')"
        )
    cluster = _require(doc, "cluster", dict, label)
    name = _require(cluster, "name", str, f"{label}: cluster")
    objects = []
    skipped = dict(doc.get("skipped_kinds") or {})
    for index, raw in enumerate(_require(doc, "objects", list, label)):
        try:
            obj = to_object(raw, origin=None)
        except NotAnObject as exc:
            raise InputError(f"{label}: objects[{index}]: {exc}") from None
        if obj is None:
            kind = str(raw.get("kind"))
            skipped[kind] = skipped.get(kind, 0) + 1
        else:
            objects.append(obj)
    users = None
    if isinstance(doc.get("kubeconfig"), dict):
        users = [
            KubeconfigUser(
                name=str(u.get("name")),
                auth=tuple(u.get("auth") or ()),
                exec_command=u.get("exec_command"),
                exec_args=tuple(u.get("exec_args") or ()),
            )
            for u in doc["kubeconfig"].get("users") or ()
        ]
    gaps = [
        Gap(str(g.get("source", "kubernetes")), g.get("kind"), str(g.get("reason", "")))
        for g in doc.get("incomplete") or ()
    ]
    captured_at = parse_time(doc.get("captured_at"))
    return build_inventory(
        objects,
        cluster=name,
        source=SourceInfo(source_type, {"file": label, "captured_at": doc.get("captured_at")}),
        whole_cluster=True,
        captured_at=captured_at,
        kubeconfig_users=users,
        gaps=gaps,
        skipped_kinds=skipped,
    )


def load_snapshot(path: str | Path) -> Inventory:
    """Read a snapshot file; errors name the file (and line, for JSON syntax errors)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{file}: no such file or directory") from None
    except IsADirectoryError:
        raise InputError(f"{file}: is a directory, expected a snapshot file") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
    return parse_snapshot(data, str(file))
