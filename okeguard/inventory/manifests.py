"""Loading Kubernetes manifests: files, directories (recursively), multi-document YAML or JSON,
``kind: List``, and standard input (``-``).

Errors name the file, and the line for YAML syntax errors. Unknown kinds are skipped and counted.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from okeguard.errors import InputError
from okeguard.inventory.model import Inventory, K8sObject, SourceInfo, build_inventory
from okeguard.inventory.normalize import NotAnObject, to_object

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

try:  # the C loader is ~10x faster; fall back when libyaml is missing
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


def _documents(text: str, label: str) -> Iterator[tuple[int, Any]]:
    """Yield (1-based start line, document) for each YAML document in ``text``."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield node.start_mark.line + 1, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise InputError(f"{label}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _flatten(doc: Any, line: int, label: str) -> Iterator[tuple[Any, str]]:
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List"):
        items = doc.get("items")
        if isinstance(items, list):
            for index, item in enumerate(items):
                yield item, f"{label}:{line} (items[{index}])"
            return
    yield doc, f"{label}:{line}"


def parse_manifest_text(
    text: str, label: str, skipped: Counter[str] | None = None
) -> list[K8sObject]:
    """Parse the YAML/JSON documents of one file (``label`` names it in errors)."""
    objects: list[K8sObject] = []
    for line, doc in _documents(text, label):
        if doc is None:
            continue  # an empty document between two '---'
        for item, origin in _flatten(doc, line, label):
            try:
                obj = to_object(item, origin=origin)
            except NotAnObject as exc:
                raise InputError(f"{origin}: {exc}") from None
            if obj is None:
                if skipped is not None:
                    skipped[str(item.get("kind"))] += 1
                continue
            objects.append(obj)
    return objects


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if child.suffix.lower() in MANIFEST_SUFFIXES and child.is_file() and not hidden:
                yield child
    else:
        yield path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def load_manifests(
    paths: Sequence[str], *, cluster: str = "manifests", stdin_text: str | None = None
) -> Inventory:
    """Load manifests from files, directories and ``-`` (standard input) into an inventory.

    The result is not a whole-cluster view: checks that need one are not applicable.
    """
    skipped: Counter[str] = Counter()
    objects: list[K8sObject] = []
    files_read = 0
    for raw_path in paths:
        if raw_path == "-":
            text = stdin_text if stdin_text is not None else sys.stdin.read()
            objects += parse_manifest_text(text, "<stdin>", skipped)
            files_read += 1
            continue
        path = Path(raw_path)
        if not path.exists():
            raise InputError(f"{raw_path}: no such file or directory")
        for file in _files(path):
            objects += parse_manifest_text(_read(file), str(file), skipped)
            files_read += 1
    return build_inventory(
        objects,
        cluster=cluster,
        source=SourceInfo("manifests", {"paths": list(paths), "files": files_read}),
        whole_cluster=False,
        skipped_kinds=dict(skipped),
    )


def objects_from_documents(docs: Iterable[Any], label: str = "<documents>") -> list[K8sObject]:
    """Validate already-parsed documents (used by tests and the demo builder)."""
    out = []
    for index, doc in enumerate(docs):
        for item, origin in _flatten(doc, index + 1, label):
            try:
                obj = to_object(item, origin=origin)
            except NotAnObject as exc:
                raise InputError(f"{origin}: {exc}") from None
            if obj is not None:
                out.append(obj)
    return out
