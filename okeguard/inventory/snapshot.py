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
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson

from okeguard.errors import InputError, one_line
from okeguard.inventory.files import open_regular_file
from okeguard.inventory.model import (
    Gap,
    Inventory,
    K8sObject,
    KubeconfigUser,
    SourceInfo,
    Unevaluated,
    build_inventory,
    parse_time,
)
from okeguard.inventory.normalize import NotAnObject
from okeguard.inventory.oci_model import OciState, oci_state_from_dict, oci_state_to_dict
from okeguard.inventory.shapes import TIMESTAMP, dataclass_shape, field_problem
from okeguard.inventory.snapshot_lines import admit_lines
from okeguard.inventory.validate import admit

SNAPSHOT_SCHEMA = "okeguard.snapshot/v1"
log = logging.getLogger(__name__)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Kubernetes writes it."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_header(
    inventory: Inventory, cluster_info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The first line of a snapshot: everything but the objects (credentials redacted)."""
    from okeguard.inventory.sensitive import redact_args, redact_text

    users = inventory.kubeconfig_users
    info = {k: redact_text(v) if isinstance(v, str) else v for k, v in (cluster_info or {}).items()}
    return {
        "schema": SNAPSHOT_SCHEMA,
        "captured_at": format_time(inventory.captured_at or datetime.now(UTC)),
        "cluster": {"name": inventory.cluster, **info},
        "objects": inventory.object_count,
        "kubeconfig": None
        if users is None
        else {
            "users": [
                {
                    "name": u.name,
                    "auth": list(u.auth),
                    "exec_command": u.exec_command,
                    "exec_args": redact_args(list(u.exec_args)),
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
    from okeguard.inventory.normalize import redact

    yield orjson.dumps(snapshot_header(inventory, cluster_info)) + b"\n"
    for objects in inventory.objects.values():
        for obj in objects:
            # Loading redacted it already; once more, so that nothing built another way can
            # put a secret on disk. Idempotent: a redacted object is written as it is.
            redact(obj)
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


# The header fields a snapshot is read with, and their types (see okeguard.inventory.validate).
HEADER_TYPES = {
    "captured_at": TIMESTAMP,
    "kubeconfig": {
        "users": [{"name": str, "auth": [str], "exec_command": str, "exec_args": [str]}]
    },
    "incomplete": [{"source": str, "kind": str, "reason": str}],
    "skipped_kinds": {"*": int},
    "oci": dataclass_shape(OciState),
}


def _check_header(doc: Any, label: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InputError(f"{label}: not an okeguard snapshot (expected a JSON object)")
    schema = doc.get("schema")
    if schema != SNAPSHOT_SCHEMA:
        shown = repr(schema) if len(repr(schema)) <= 60 else repr(schema)[:60] + "…"
        raise InputError(
            f"{label}: not an okeguard snapshot (schema is {shown}, expected '{SNAPSHOT_SCHEMA}')"
        )
    _require(_require(doc, "cluster", dict, label), "name", str, f"{label}: cluster")
    problem = field_problem(doc, HEADER_TYPES)
    if problem is not None:
        raise InputError(f"{label}: invalid snapshot header: {problem}")
    return doc


class _Objects:
    """The objects of a snapshot as they are admitted, the ones not evaluated, skipped kinds."""

    def __init__(self, skipped: Mapping[str, int]) -> None:
        self.objects: list[K8sObject] = []
        self.unevaluated: list[Unevaluated] = []
        self.skipped = dict(skipped)

    def add(self, raw: Any, where: Callable[[], str]) -> None:
        """Admit one object; ``where`` names its place (called only to report a problem)."""
        try:
            admitted = admit(raw, None)
        except NotAnObject as exc:
            raise InputError(f"{where()}: {exc}") from None
        if type(admitted) is K8sObject:
            self.objects.append(admitted)
        elif admitted is None:
            kind = str(raw.get("kind"))
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
        elif isinstance(admitted, Unevaluated):
            self.unevaluated.append(Unevaluated(admitted.obj, f"{where()}: {admitted.reason}"))
        else:
            self.objects.append(admitted)

    def add_line(self, label: str) -> Callable[[bytes, int], None]:
        """``add`` for line ``number`` of the file ``label`` (JSON Lines)."""
        add = self.add

        def add_line(line: bytes, number: int) -> None:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:  # its lineno is 2 when the line is cut short
                raise InputError(f"{label}:{number}: invalid JSON: {exc.msg}") from None
            add(doc, partial("{}:{}".format, label, number))

        return add_line


def _read(stream: IO[bytes], label: str, path: str | None) -> tuple[dict[str, Any], _Objects]:
    """Header and objects of a snapshot stream (JSON Lines or one document); ``path`` names
    the stream's file, when it is one (workers may then read parts of it)."""
    first = stream.readline()
    try:
        header = orjson.loads(first)
    except orjson.JSONDecodeError:
        header = None
    if isinstance(header, dict) and not isinstance(header.get("objects"), list):
        header = _check_header(header, label)
        found = _Objects(header.get("skipped_kinds") or {})
        if path is not None and admit_lines(stream, path, found, found.add_line(label)):
            return header, found
        found = _Objects(header.get("skipped_kinds") or {})
        add_line = found.add_line(label)
        for number, line in enumerate(stream, start=2):
            if not line.isspace():  # as line.strip(), without copying the line
                add_line(line, number)
        return header, found
    doc = _check_header(_decode(first + stream.read(), label), label)
    found = _Objects(doc.get("skipped_kinds") or {})
    items = _require(doc, "objects", list, label)
    for index, raw in enumerate(items):
        found.add(raw, partial("{}: objects[{}]".format, label, index))
    return doc, found


def _oci(header: Mapping[str, Any], label: str) -> OciState | None:
    if not isinstance(header.get("oci"), dict):
        return None
    try:
        return oci_state_from_dict(header["oci"])
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        what = f"{type(exc).__name__}: {exc}"[:120]
        raise InputError(
            f"{label}: invalid snapshot header: 'oci' cannot be read ({what})"
        ) from None


def _inventory(
    stream: IO[bytes], label: str, source_type: str, path: str | None = None
) -> Inventory:
    header, found = _read(stream, label, path)
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
            if isinstance(u, dict)
        ]
    gaps = [
        Gap(str(g.get("source", "kubernetes")), g.get("kind"), str(g.get("reason", "")))
        for g in header.get("incomplete") or ()
        if isinstance(g, dict)
    ]
    oci = _oci(header, label)  # the last thing that may refuse the file: warn only after it
    for item in found.unevaluated[:10]:
        obj = item.obj
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        message = f"{obj.kind} {where} not evaluated: {item.reason}"
        log.warning("%s", one_line(message))
    return build_inventory(
        found.objects,
        cluster=header["cluster"]["name"],
        source=SourceInfo(source_type, {"file": label, "captured_at": header.get("captured_at")}),
        whole_cluster=True,
        captured_at=parse_time(header.get("captured_at")),
        kubeconfig_users=users,
        gaps=gaps,
        skipped_kinds=found.skipped,
        oci=oci,
        unevaluated=found.unevaluated,
    )


def parse_snapshot(data: bytes, label: str, *, source_type: str = "snapshot") -> Inventory:
    """Parse snapshot bytes (``label`` names the file in errors) into a whole-cluster inventory."""
    return _inventory(io.BytesIO(data), label, source_type)


def load_snapshot(path: str | Path, *, source_type: str = "snapshot") -> Inventory:
    """Read a snapshot file; errors name the file (and line, for JSON syntax errors)."""
    file = Path(path)
    try:
        with open_regular_file(file, what="snapshot file") as stream:
            return _inventory(stream, str(file), source_type, os.path.abspath(file))
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror}") from None
