"""Loading Kubernetes manifests: files, directories (recursively), multi-document YAML or JSON,
``kind: List``, rendered kustomizations and Helm charts, and standard input (``-``).

Files are read in chunks and built document by document (:mod:`okeguard.inventory.yaml_stream`),
so memory follows the objects kept, not the text read. Only regular files are read: a FIFO or a
device named on the command line is refused instead of waited on or read forever.

A directory is a repository as it is: in a walk, a YAML or JSON file whose documents are not
Kubernetes objects (``values.yaml``, ``docker-compose.yml``, ``package.json``, a CI workflow) is
skipped and counted, hidden directories (``.git``) and vendored ones (``node_modules``) are not
entered, and kustomizations and Helm charts are rendered (:mod:`okeguard.inventory.render`)
rather than read file by file. A file named on the command line must hold Kubernetes objects.

Errors name the file, and the line for YAML syntax errors. Unknown kinds are skipped and counted.
An object with a field of the wrong type, or a value YAML cannot build, is not evaluated: it is
kept aside (:class:`~okeguard.inventory.model.Unevaluated`, reported ``unknown`` by the checks
that read its kind) and the rest is scanned. Input that holds no Kubernetes object at all is an
error: a scan of nothing must not pass.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from okeguard.errors import InputError, one_line
from okeguard.inventory import render
from okeguard.inventory.files import open_regular_file
from okeguard.inventory.model import Inventory, K8sObject, SourceInfo, Unevaluated, build_inventory
from okeguard.inventory.normalize import NotAnObject
from okeguard.inventory.parallel import map_in_order
from okeguard.inventory.validate import admit
from okeguard.inventory.yaml_stream import Problem, yaml_documents

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
# Directories of other people's code, never our manifests: not entered by a walk.
VENDOR_DIRS = frozenset(
    {"node_modules", "bower_components", "vendor", "venv", "site-packages", "__pycache__"}
)
WARNED_OBJECTS = 10  # objects not evaluated named one by one on stderr; the rest are counted
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


class _Loaded:
    """What the documents read so far hold: objects, objects not evaluated, skipped kinds, and
    how many documents were Kubernetes objects (of any kind)."""

    def __init__(self) -> None:
        self.objects: list[K8sObject] = []
        self.unevaluated: list[Unevaluated] = []
        self.skipped: Counter[str] = Counter()
        self.documents = 0

    def read(
        self,
        source: IO[bytes] | str,
        label: str,
        *,
        lenient: bool = False,
        origin: Callable[[int], str] | None = None,
    ) -> str | None:
        """Read the documents of one input (``label`` names it in errors; ``origin`` maps a
        document's line to where its objects came from, ``label:line`` by default).

        With ``lenient`` (a file found by a directory walk), an input none of whose documents is
        a Kubernetes object is not an error: the reason is returned (``no kind``, ``empty``).
        Documents that are not objects beside ones that are are an error either way."""
        other: tuple[str, str] | None = None  # (where, why) of the first document not an object
        before = self.documents
        for line, doc, problems in yaml_documents(source, label):
            if doc is None and not problems:
                continue  # an empty document between two '---'
            where = origin(line) if origin is not None else f"{label}:{line}"
            is_object = not lenient or _looks_like_an_object(doc, problems)
            if not is_object:
                other = other or (where, _why_not_an_object(doc))
            if other is not None and (is_object or self.documents > before):
                raise InputError(f"{other[0]}: not a Kubernetes object: {other[1]}")  # mixed
            if not is_object:
                continue
            for item, item_origin, found in _flatten(doc, where, problems):
                self.add(item, item_origin, found, label)
            self.documents += 1
        if self.documents > before:
            return None
        return other[1] if other is not None else "empty"

    def merge(self, other: _Loaded) -> None:
        """Add what ``other`` read after what this one read."""
        self.objects.extend(other.objects)
        self.unevaluated.extend(other.unevaluated)
        self.skipped.update(other.skipped)
        self.documents += other.documents

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


def _looks_like_an_object(doc: Any, problems: Sequence[Problem]) -> bool:
    """True for a document with an apiVersion and a kind, or whose kind or apiVersion could not
    be read (that is an error to report, not a file to skip)."""
    if isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"):
        return True
    return any(p.path[:1] in (("kind",), ("apiVersion",)) for p in problems)


def _why_not_an_object(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"a {type(doc).__name__}, not a mapping"
    return "no apiVersion" if not doc.get("apiVersion") else "no kind"


def _flatten(
    doc: Any, where: str, problems: Sequence[Problem]
) -> Iterator[tuple[Any, str, list[Problem]]]:
    """The objects of a document: the items of a ``kind: List`` (each with the problems found
    inside it), or the document itself."""
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List"):
        items = doc.get("items")
        if isinstance(items, list):
            for index, item in enumerate(items):
                inside = [p for p in problems if p.path[:2] == ("items", index)]
                yield item, f"{where} (items[{index}])", inside
            return
    yield doc, where, list(problems)


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


@dataclass(frozen=True)
class _Input:
    """One thing to read: a manifest file, or a directory to render (``kustomize``, ``helm``).
    ``named`` is true for a path given on the command line."""

    kind: str
    path: Path
    named: bool


def _walk(root: Path) -> Iterator[_Input]:
    """The inputs under a directory, in name order: kustomizations and charts as a whole (their
    files are a renderer's input), other YAML and JSON files one by one."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        kind = render.renderer_of(files)
        if kind is not None:
            dirs[:] = []
            yield _Input(kind, here, named=here == root)
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in VENDOR_DIRS)
        for name in sorted(files):
            file = here / name
            if name.startswith(".") or file.suffix.lower() not in MANIFEST_SUFFIXES:
                continue
            if file.is_file():  # not a FIFO, a device or a broken link
                yield _Input("file", file, named=False)


def _inputs(paths: Sequence[str]) -> list[_Input]:
    """What the command-line paths hold, less what a kustomization builds from: its bases and
    patches are read through it, not again on their own."""
    found: list[_Input] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-":
            found.append(_Input("stdin", path, named=True))
        elif path.is_dir():
            found.extend(_walk(path))
        elif path.name in render.KUSTOMIZATION_FILES:
            found.append(_Input("kustomize", path.parent, named=True))
        elif path.name == render.CHART_FILE:
            found.append(_Input("helm", path.parent, named=True))
        else:
            found.append(_Input("file", path, named=True))  # a missing path is named when opened
    used: set[Path] = set()
    for item in found:
        if item.kind == "kustomize":
            used.update(render.kustomization_references(item.path))
    if not used:
        return found
    return [item for item in found if item.named or not _within(item.path.resolve(), used)]


def _within(path: Path, used: set[Path]) -> bool:
    return path in used or any(parent in used for parent in path.parents)


@dataclass
class _Walked:
    """What the inputs gave beside objects, for the report's source."""

    files: int = 0
    skipped_files: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)
    not_rendered: list[dict[str, str]] = field(default_factory=list)


def read_manifest_file(file: Path, lenient: bool) -> tuple[_Loaded, str | None]:
    """What one file holds, and why it holds no Kubernetes object when ``lenient`` (a file a
    walk found) and it holds none (None otherwise). A function of the file alone, with a result
    that pickles, so that files can be read in worker processes."""
    loaded = _Loaded()
    with open_regular_file(file, what="manifest file or directory") as stream:
        try:
            return loaded, loaded.read(stream, str(file), lenient=lenient)
        except OSError as exc:
            raise InputError(f"{file}: cannot read: {exc.strerror}") from None
        except InputError:
            # a walk meets JSON with comments, templates and other near-YAML: skip what does
            # not parse unless it names an apiVersion (then it is a broken manifest)
            if lenient and not loaded.documents and not _mentions_api_version(file):
                return _Loaded(), "not YAML or JSON that can be read"
            raise


def _read_input(item: _Input) -> tuple[_Loaded, str | None]:
    """:func:`read_manifest_file` of one input file (run in a worker process)."""
    return read_manifest_file(item.path, lenient=not item.named)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # named when it is opened


def _mentions_api_version(file: Path) -> bool:
    tail = b""
    with open_regular_file(file) as stream:
        while chunk := stream.read(_CHUNK):
            if b"apiVersion" in tail + chunk:
                return True
            tail = chunk[-16:]
    return False


def _render(loaded: _Loaded, item: _Input, walked: _Walked) -> None:
    if item.kind == "kustomize":
        result: render.Rendered | render.NotRendered | None = render.render_kustomization(item.path)
    else:
        result = render.render_chart(item.path)
    if result is None:
        log.info("skipped %s: a Helm library chart renders no objects", item.path)
    elif isinstance(result, render.NotRendered):
        log.warning("%s", one_line(result.reason))
        walked.not_rendered.append({"path": str(item.path), "reason": result.reason})
    else:
        loaded.read(result.text, result.label, origin=result.origins())
        walked.rendered.append(str(item.path))


def _warn(unevaluated: Sequence[Unevaluated]) -> None:
    for item in unevaluated[:WARNED_OBJECTS]:
        obj = item.obj
        where = f"{obj.namespace}/{obj.name}" if obj.namespace else obj.name
        message = f"{obj.origin}: {obj.kind} {where} not evaluated: {item.reason}"
        log.warning("%s", one_line(message))
    if len(unevaluated) > WARNED_OBJECTS:
        more = len(unevaluated) - WARNED_OBJECTS
        log.warning("%d more objects not evaluated (see the findings of status unknown)", more)


def _namespaces(loaded: _Loaded) -> list[str]:
    """The namespaces the input names: of its namespaced objects, and its Namespace objects."""
    found = {o.namespace for o in loaded.objects if o.namespace is not None}
    found.update(o.name for o in loaded.objects if o.kind == "Namespace")
    found.update(u.obj.namespace for u in loaded.unevaluated if u.obj.namespace is not None)
    return sorted(found)


def _nothing_to_scan(paths: Sequence[str], walked: _Walked) -> InputError:
    where = ", ".join("standard input" if p == "-" else p for p in paths)
    notes = []
    if walked.skipped_files:
        count = len(walked.skipped_files)
        notes.append(f"skipped {skipped_files_phrase(count)}, -v lists them")
    if walked.not_rendered:
        count = len(walked.not_rendered)
        notes.append(f"{count} director{'ies' if count > 1 else 'y'} not rendered, see above")
    note = f" ({'; '.join(notes)})" if notes else ""
    return InputError(f"nothing to scan: no Kubernetes objects in {where}{note}")


def skipped_files_phrase(count: int) -> str:
    """``3 files that are not Kubernetes objects`` (the summary's words)."""
    if count == 1:
        return "1 file that is not a Kubernetes object"
    return f"{count} files that are not Kubernetes objects"


def _read_inputs(
    inputs: Sequence[_Input], parts: Iterator[tuple[_Loaded, str | None]], stdin_text: str | None
) -> tuple[_Loaded, _Walked]:
    """The objects of the inputs, in their order; ``parts`` yields what each file input holds."""
    loaded = _Loaded()
    walked = _Walked()
    for item in inputs:
        if item.kind == "stdin":
            loaded.read(stdin_text if stdin_text is not None else sys.stdin.buffer, "<stdin>")
            walked.files += 1
        elif item.kind == "file":
            part, why = next(parts)
            loaded.merge(part)
            if why is None or item.named:
                walked.files += 1
            else:
                log.info("skipped %s: not a Kubernetes object (%s)", item.path, why)
                walked.skipped_files.append(str(item.path))
        else:
            _render(loaded, item, walked)
    return loaded, walked


def load_manifests(
    paths: Sequence[str], *, cluster: str = "manifests", stdin_text: str | None = None
) -> Inventory:
    """Load manifests from files, directories and ``-`` (standard input) into an inventory.

    The result is not a whole-cluster view: checks that need one are not applicable. Its source
    lists the files skipped as not Kubernetes objects, the directories rendered and those that
    could not be, and the namespaces the input names. Raises :class:`InputError` when the input
    holds no Kubernetes object at all.
    """
    inputs = _inputs(paths)
    files = [item for item in inputs if item.kind == "file"]
    with closing(map_in_order(_read_input, files, [_size(item.path) for item in files])) as parts:
        loaded, walked = _read_inputs(inputs, parts, stdin_text)
    if loaded.documents == 0:
        raise _nothing_to_scan(paths, walked)
    _warn(loaded.unevaluated)
    detail: dict[str, Any] = {"paths": list(paths), "files": walked.files}
    detail["skipped_files"] = walked.skipped_files
    if walked.rendered:
        detail["rendered"] = walked.rendered
    if walked.not_rendered:
        detail["not_rendered"] = walked.not_rendered
    detail["namespaces"] = _namespaces(loaded)
    return build_inventory(
        loaded.objects,
        cluster=cluster,
        source=SourceInfo("manifests", detail),
        whole_cluster=False,
        skipped_kinds=dict(loaded.skipped),
        unevaluated=loaded.unevaluated,
    )


def objects_from_documents(docs: Iterable[Any], label: str = "<documents>") -> list[K8sObject]:
    """Validate already-parsed documents (used by tests and the demo builder). Documents written
    by a program must be right: one that would not be evaluated raises :class:`InputError`."""
    loaded = _Loaded()
    for index, doc in enumerate(docs):
        for item, origin, problems in _flatten(doc, f"{label}:{index + 1}", ()):
            loaded.add(item, origin, problems, label)
    for item in loaded.unevaluated:
        raise InputError(f"{item.obj.origin}: {item.obj.kind} {item.obj.name}: {item.reason}")
    return loaded.objects
