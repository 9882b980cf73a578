"""Rendering the kustomizations and Helm charts of a scanned repository into manifests.

A directory with a ``kustomization.yaml`` (or ``kustomization.yml``, ``Kustomization``) is built
with ``kubectl kustomize`` (or the standalone ``kustomize build``), and a directory with a
``Chart.yaml`` with ``helm template``: their files are inputs to a renderer (patches, templates,
values), not manifests. When the tool is not on ``PATH`` the directory is skipped with a warning
that says how to render it by hand; a renderer that fails is an error naming the directory.

The objects of a rendered directory point at their source: the kustomization file, or the chart
template named by helm's ``# Source:`` comment. Renderers do not say which line of their input an
object came from, so the origin says line 1 and names the renderer.
"""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from okeguard.errors import InputError, one_line

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
CHART_FILE = "Chart.yaml"
RENDER_TIMEOUT = 300  # seconds; a kustomization may fetch remote bases
_SOURCE = re.compile(r"^# Source: (?P<path>\S.*?)\s*$", re.M)
_KLOG_ERROR = re.compile(r'err="(?P<message>(?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Rendered:
    """The output of a renderer for ``directory``: ``text`` holds its YAML documents."""

    directory: Path
    renderer: str  # "kustomize" or "helm"
    text: str
    source_file: Path  # the kustomization file or Chart.yaml

    @property
    def label(self) -> str:
        """Names the output in errors about its YAML."""
        return f"{self.directory} ({self.renderer} output)"

    def origins(self) -> OriginOf:
        """A function from a document's line in :attr:`text` to the origin of its objects."""
        return OriginOf(self)


class OriginOf:
    """Maps a line of rendered output to ``path:1 (renderer)``: for helm the template named by
    the last ``# Source:`` comment above the line, else the kustomization file or Chart.yaml."""

    def __init__(self, rendered: Rendered) -> None:
        self._suffix = f":1 ({rendered.renderer})"
        self._default = str(rendered.source_file)
        self._lines: list[int] = []
        self._paths: list[str] = []
        if rendered.renderer == "helm":
            for match in _SOURCE.finditer(rendered.text):
                self._lines.append(rendered.text.count("\n", 0, match.start()) + 1)
                self._paths.append(str(_chart_file(rendered.directory, match["path"])))

    def __call__(self, line: int) -> str:
        index = bisect.bisect_right(self._lines, line) - 1
        path = self._paths[index] if index >= 0 else self._default
        return path + self._suffix


def _chart_file(chart: Path, source: str) -> Path:
    """The file of ``chart`` that helm names ``<chart name>/templates/x.yaml`` in ``# Source:``
    (a subchart's: ``<chart name>/charts/<sub>/templates/x.yaml``)."""
    parts = Path(source).parts
    return chart.joinpath(*parts[1:]) if len(parts) > 1 else chart / source


@dataclass(frozen=True)
class NotRendered:
    """A directory that could not be rendered here; ``reason`` is one line with the way out."""

    directory: Path
    reason: str


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of ``directory``, or None when it is not a kustomization."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def renderer_of(names: Iterable[str]) -> str | None:
    """``kustomize`` or ``helm`` when a directory holding files of these ``names`` is a
    kustomization or a Helm chart (a kustomization first: it may inflate a chart), else None."""
    present = set(names)
    if present.intersection(KUSTOMIZATION_FILES):
        return "kustomize"
    return "helm" if CHART_FILE in present else None


def kustomization_references(directory: Path) -> set[Path]:
    """The local files and directories the kustomization of ``directory`` builds from (bases,
    resources, components, patches, generator inputs), resolved. They are its inputs, so a
    directory walk must not read them again as manifests. Remote URLs are left out; a file that
    cannot be read gives nothing (the renderer will say what is wrong)."""
    file = kustomization_file(directory)
    if file is None:
        return set()
    try:
        spec = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return set()
    if not isinstance(spec, dict):
        return set()
    found = set()
    for value in _referenced(spec):
        if "://" in value or value.startswith(("git@", "github.com/")) or "\n" in value:
            continue  # remote, or an inline patch
        found.add((directory / value).resolve())
    return found


def _strings(value: Any) -> Iterator[str]:
    items = value if isinstance(value, list) else [value]
    yield from (item for item in items if isinstance(item, str))


def _referenced(spec: dict[str, Any]) -> Iterator[str]:
    for key in ("resources", "bases", "components", "crds", "patchesStrategicMerge"):
        yield from _strings(spec.get(key))
    for key in ("transformers", "generators", "validators"):
        yield from _strings(spec.get(key))
    for key in ("patches", "patchesJson6902", "replacements"):
        for entry in spec.get(key) or ():
            if isinstance(entry, dict):
                yield from _strings(entry.get("path"))
    for key in ("configMapGenerator", "secretGenerator"):
        for entry in spec.get(key) or ():
            if isinstance(entry, dict):
                for item in _strings(entry.get("files")):
                    yield item.rpartition("=")[2]
                yield from _strings(entry.get("envs"))
                yield from _strings(entry.get("env"))


def render_kustomization(directory: Path) -> Rendered | NotRendered:
    """Build the kustomization in ``directory`` with ``kubectl kustomize`` (or ``kustomize
    build``). Raises :class:`InputError` naming the directory when the build fails."""
    file = kustomization_file(directory)
    assert file is not None, directory
    if kubectl := shutil.which("kubectl"):
        command = [kubectl, "kustomize", _argument(directory)]
    elif kustomize := shutil.which("kustomize"):
        command = [kustomize, "build", _argument(directory)]
    else:
        return NotRendered(
            directory,
            f"kubectl not found: skipped kustomization {directory}; install kubectl, or render "
            f"it with `kubectl kustomize {directory}` and scan the output",
        )
    text = _run(command, directory, "kustomize")
    return Rendered(directory, "kustomize", text, file)


def render_chart(directory: Path) -> Rendered | NotRendered | None:
    """Render the Helm chart in ``directory`` with ``helm template`` and its default values.
    None for a library chart, which renders nothing. Raises :class:`InputError` naming the
    directory when helm fails."""
    if _is_library_chart(directory / CHART_FILE):
        return None
    helm = shutil.which("helm")
    if helm is None:
        return NotRendered(
            directory,
            f"helm not found: skipped chart {directory}; render it with "
            f"`helm template {directory}` and scan the output",
        )
    text = _run([helm, "template", _argument(directory)], directory, "helm template")
    return Rendered(directory, "helm", text, directory / CHART_FILE)


def _argument(directory: Path) -> str:
    """``directory`` as a command-line argument that no tool reads as an option."""
    text = str(directory)
    return f"./{text}" if text.startswith("-") else text


def _is_library_chart(chart_file: Path) -> bool:
    try:
        chart = yaml.safe_load(chart_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # helm will say what is wrong with it
    return isinstance(chart, dict) and chart.get("type") == "library"


def _run(command: list[str], directory: Path, what: str) -> str:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=RENDER_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise InputError(f"{directory}: {what} took longer than {RENDER_TIMEOUT} s") from None
    except OSError as exc:
        raise InputError(f"{directory}: cannot run {what}: {exc.strerror}") from None
    if done.returncode != 0:
        message = _error_message(done.stderr.decode("utf-8", "replace").splitlines())
        hint = ""
        if what == "helm template" and ("dependency build" in message or "charts/" in message):
            hint = f" (run `helm dependency build {directory}` first)"
        raise InputError(f"{directory}: {what} failed: {message}{hint}")
    return done.stdout.decode("utf-8", "replace")


def _error_message(lines: Iterable[str]) -> str:
    """The one line of a renderer's stderr that says what went wrong."""
    kept = [line.strip() for line in lines if line.strip()]
    for line in kept:
        klog = _KLOG_ERROR.search(line)  # kubectl: E1205 ... "command failed" err="..."
        if klog:
            return _shorten(klog["message"].replace('\\"', '"'))
    for line in kept:
        if line.lower().startswith("error:"):
            return _shorten(line[len("error:") :].strip())
    return _shorten(kept[-1]) if kept else "no message"


def _shorten(text: str, limit: int = 300) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
