"""Loading Kubernetes manifests: files, directories (recursively), multi-document YAML or JSON,
``kind: List``, and standard input (``-``).

Files are read in chunks and built document by document (:mod:`okeguard.inventory.yaml_stream`),
so memory follows the objects kept, not the text read. Only regular files are read: a FIFO or a
device named on the command line is refused instead of waited on or read forever.

Errors name the file, and the line for YAML syntax errors. Unknown kinds are skipped and counted.
An object with a field of the wrong type, or a value YAML cannot build, is not evaluated: it is
kept aside (:class:`~okeguard.inventory.model.Unevaluated`, reported ``unknown`` by the checks
that read its kind) and the rest is scanned.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from okeguard.errors import InputError, one_line
from okeguard.inventory.files import open_regular_file
from okeguard.inventory.model import Inventory, K8sObject, SourceInfo, Unevaluated, build_inventory
from okeguard.inventory.normalize import NotAnObject
from okeguard.inventory.validate import admit
from okeguard.inventory.yaml_stream import Problem, yaml_documents

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
WARNED_OBJECTS = 10  # objects not evaluated named one by one on stderr; the rest are counted

log = logging.getLogger(__name__)


class _Loaded:
    """What the documents read so far hold: objects, objects not evaluated, skipped kinds."""

    def __init__(self) -> None:
        self.objects: list[K8sObject] = []
        self.unevaluated: list[Unevaluated] = []
        self.skipped: Counter[str] = Counter()

    def read(self, source: IO[bytes] | str, label: str) -> None:
        for line, doc, problems in yaml_documents(source, label):
            if doc is None and not problems:
                continue  # an empty document between two '---'
            for item, origin, found in _flatten(doc, line, label, problems):
                self.add(item, origin, found, label)

    def add(self, item: Any, origin: str, problems: Sequence[Problem], label: str) -> None:
        reasons = [f"line {p.line}, {p.field}: {p.message}" for p in problems]
        try:
            admitted = admit(item, origin, reasons)
        except NotAnObject as exc:
            if problems:  # the problem is what left the object without a kind or name
                first = problems[0]
                raise InputError(f"{label}:{first.line}: {first.field}: {first.message}") from None
            raise InputError(f"{origin}: {exc}") from None
        if admitted is None:
            self.skipped[str(item.get("kind"))] += 1
        elif isinstance(admitted, Unevaluated):
            self.unevaluated.append(admitted)
        else:
            self.objects.append(admitted)


def _flatten(
    doc: Any, line: int, label: str, problems: Sequence[Problem]
) -> Iterator[tuple[Any, str, list[Problem]]]:
    """The objects of a document: the items of a ``kind: List`` (each with the problems found
    inside it), or the document itself."""
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List"):
        items = doc.get("items")
        if isinstance(items, list):
            for index, item in enumerate(items):
                inside = [p for p in problems if p.path[:2] == ("items", index)]
                yield item, f"{label}:{line} (items[{index}])", inside
            return
    yield doc, f"{label}:{line}", list(problems)


def parse_manifest_text(
    text: str, label: str, skipped: Counter[str] | None = None
) -> list[K8sObject]:
    """Parse the YAML/JSON documents of one text (``label`` names it in errors); objects that
    cannot be evaluated are left out."""
    loaded = _Loaded()
    loaded.read(text, label)
    if skipped is not None:
        skipped.update(loaded.skipped)
    return loaded.objects


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if child.suffix.lower() in MANIFEST_SUFFIXES and child.is_file() and not hidden:
                yield child
    else:
        yield path


def _read_file(loaded: _Loaded, file: Path) -> None:
    with open_regular_file(file, what="manifest file or directory") as stream:
        try:
            loaded.read(stream, str(file))
        except OSError as exc:
            raise InputError(f"{file}: cannot read: {exc.strerror}") from None


def _warn(unevaluated: Sequence[Unevaluated]) -> None:
    for item in unevaluated[:WARNED_OBJECTS]:
        obj = item.obj
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        message = f"{obj.origin}: {obj.kind} {where} not evaluated: {item.reason}"
        log.warning("%s", one_line(message))
    if len(unevaluated) > WARNED_OBJECTS:
        more = len(unevaluated) - WARNED_OBJECTS
        log.warning("%d more objects not evaluated (see the findings of status unknown)", more)


def load_manifests(
    paths: Sequence[str], *, cluster: str = "manifests", stdin_text: str | None = None
) -> Inventory:
    """Load manifests from files, directories and ``-`` (standard input) into an inventory.

    The result is not a whole-cluster view: checks that need one are not applicable.
    """
    loaded = _Loaded()
    files_read = 0
    for raw_path in paths:
        if raw_path == "-":
            loaded.read(stdin_text if stdin_text is not None else sys.stdin.buffer, "<stdin>")
            files_read += 1
            continue
        path = Path(raw_path)
        for file in _files(path):  # a missing path is named when opened
            _read_file(loaded, file)
            files_read += 1
    _warn(loaded.unevaluated)
    return build_inventory(
        loaded.objects,
        cluster=cluster,
        source=SourceInfo("manifests", {"paths": list(paths), "files": files_read}),
        whole_cluster=False,
        skipped_kinds=dict(loaded.skipped),
        unevaluated=loaded.unevaluated,
    )


def objects_from_documents(docs: Iterable[Any], label: str = "<documents>") -> list[K8sObject]:
    """Validate already-parsed documents (used by tests and the demo builder). Documents written
    by a program must be right: one that would not be evaluated raises :class:`InputError`."""
    loaded = _Loaded()
    for index, doc in enumerate(docs):
        for item, origin, problems in _flatten(doc, index + 1, label, ()):
            loaded.add(item, origin, problems, label)
    for item in loaded.unevaluated:
        raise InputError(f"{item.obj.origin}: {item.obj.kind} {item.obj.name}: {item.reason}")
    return loaded.objects
