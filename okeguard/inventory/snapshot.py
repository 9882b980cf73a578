"""Snapshot files: a versioned capture of one cluster (format in ``docs/snapshot.md``).

A snapshot holds the objects okeguard reads (secret values already redacted), how the kubeconfig
users authenticate, and what could not be read when it was taken. Scanning a snapshot is a
whole-cluster scan, evaluated offline.

On disk a snapshot is JSON Lines: a header object on the first line, then one Kubernetes object
per line. Reading it line by line keeps only one line's bytes beside the objects already built,
which is what keeps a 10,000-workload scan under 400 MB. A single JSON document with the same
header keys plus ``objects`` (handy when writing one by hand) is read too.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from okeguard.errors import InputError
from okeguard.inventory.model import (
    Gap,
    Inventory,
    K8sObject,
    KubeconfigUser,
    SourceInfo,
    build_inventory,
    parse_time,
)
from okeguard.inventory.normalize import NotAnObject, to_object
from okeguard.inventory.oci_model import oci_state_from_dict, oci_state_to_dict

SNAPSHOT_SCHEMA = "okeguard.snapshot/v1"


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_header(
    inventory: Inventory, cluster_info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The first line of a snapshot: everything but the objects."""
    users = inventory.kubeconfig_users
    return {
        "schema": SNAPSHOT_SCHEMA,
        "captured_at": format_time(inventory.captured_at or datetime.now(UTC)),
        "cluster": {"name": inventory.cluster, **dict(cluster_info or {})},
        "objects": inventory.object_count,
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
        "oci": None if inventory.oci is None else oci_state_to_dict(inventory.oci),
    }


def save_snapshot(
    inventory: Inventory, path: str | Path, cluster_info: Mapping[str, Any] | None = None
) -> int:
    """Write ``inventory`` as a snapshot file; returns the number of bytes written."""
    written = 0
    try:
        with Path(path).open("wb") as out:
            for line in _lines(inventory, cluster_info):
                out.write(line)
                written += len(line)
    except OSError as exc:
        raise InputError(f"{path}: cannot write snapshot: {exc.strerror}") from None
    return written


def _lines(inventory: Inventory, cluster_info: Mapping[str, Any] | None) -> Iterator[bytes]:
    yield orjson.dumps(snapshot_header(inventory, cluster_info)) + b"\n"
    for objects in inventory.objects.values():
        for obj in objects:
            yield orjson.dumps(obj.raw) + b"\n"


def _require(doc: Mapping[str, Any], key: str, kind: type, label: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise InputError(f"{label}: '{key}' is missing or not a {kind.__name__}")
    return value


def _decode(data: bytes, label: str, line_offset: int = 0) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{label}:{exc.lineno + line_offset}: invalid JSON: {exc.msg}") from None


def _check_header(doc: Any, label: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InputError(f"{label}: not an okeguard snapshot (expected a JSON object)")
    schema = doc.get("schema")
    if schema != SNAPSHOT_SCHEMA:
        raise InputError(
            f"{label}: not an okeguard snapshot (schema is {schema!r}, expected '{SNAPSHOT_SCHEMA}')"
        )
    _require(_require(doc, "cluster", dict, label), "name", str, f"{label}: cluster")
    return doc


def _objects(documents: Iterable[tuple[str, Any]], skipped: dict[str, int]) -> Iterator[K8sObject]:
    for where, raw in documents:
        try:
            obj = to_object(raw, origin=None)
        except NotAnObject as exc:
            raise InputError(f"{where}: {exc}") from None
        if obj is None:
            kind = str(raw.get("kind"))
            skipped[kind] = skipped.get(kind, 0) + 1
        else:
            yield obj


def _read(stream: IO[bytes], label: str) -> tuple[dict[str, Any], list[K8sObject], dict[str, int]]:
    """Header, objects and skipped-kind counts of a snapshot stream (JSON Lines or one document)."""
    first = stream.readline()
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        header = None
    if isinstance(header, dict) and not isinstance(header.get("objects"), list):
        header = _check_header(header, label)
        skipped: dict[str, int] = dict(header.get("skipped_kinds") or {})
        documents = (
            (f"{label}:{number}", _decode(line, label, number - 1))
            for number, line in enumerate(stream, start=2)
            if line.strip()
        )
        return header, list(_objects(documents, skipped)), skipped
    doc = _check_header(_decode(first + stream.read(), label), label)
    skipped = dict(doc.get("skipped_kinds") or {})
    items = _require(doc, "objects", list, label)
    documents = ((f"{label}: objects[{i}]", raw) for i, raw in enumerate(items))
    return doc, list(_objects(documents, skipped)), skipped


def _inventory(stream: IO[bytes], label: str, source_type: str) -> Inventory:
    header, objects, skipped = _read(stream, label)
    users = None
    if isinstance(header.get("kubeconfig"), dict):
        users = [
            KubeconfigUser(
                name=str(u.get("name")),
                auth=tuple(u.get("auth") or ()),
                exec_command=u.get("exec_command"),
                exec_args=tuple(u.get("exec_args") or ()),
            )
            for u in header["kubeconfig"].get("users") or ()
        ]
    gaps = [
        Gap(str(g.get("source", "kubernetes")), g.get("kind"), str(g.get("reason", "")))
        for g in header.get("incomplete") or ()
    ]
    return build_inventory(
        objects,
        cluster=header["cluster"]["name"],
        source=SourceInfo(source_type, {"file": label, "captured_at": header.get("captured_at")}),
        whole_cluster=True,
        captured_at=parse_time(header.get("captured_at")),
        kubeconfig_users=users,
        gaps=gaps,
        skipped_kinds=skipped,
        oci=oci_state_from_dict(header["oci"]) if isinstance(header.get("oci"), dict) else None,
    )


def parse_snapshot(data: bytes, label: str, *, source_type: str = "snapshot") -> Inventory:
    """Parse snapshot bytes (``label`` names the file in errors) into a whole-cluster inventory."""
    return _inventory(io.BytesIO(data), label, source_type)


def load_snapshot(path: str | Path, *, source_type: str = "snapshot") -> Inventory:
    """Read a snapshot file; errors name the file (and line, for JSON syntax errors)."""
    file = Path(path)
    try:
        with file.open("rb") as stream:
            return _inventory(stream, str(file), source_type)
    except FileNotFoundError:
        raise InputError(f"{file}: no such file or directory") from None
    except IsADirectoryError:
        raise InputError(f"{file}: is a directory, expected a snapshot file") from None
    except PermissionError:
        raise InputError(f"{file}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
