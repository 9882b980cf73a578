"""The conventions the code promises: ruff clean and formatted, mypy --strict on the whole package,
imports one way (no cycle, not even through an import inside a function)."""

from __future__ import annotations

import ast
import fnmatch
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return str(found)
    path = shutil.which(name)
    assert path, f"{name} is not installed (it is in the dev extra)"
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_check_and_format() -> None:
    lint = run(tool("ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run(tool("ruff"), "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict_on_the_whole_package() -> None:
    result = run(tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_no_part_of_the_package_is_left_out_of_strict() -> None:
    """The run above covers ``okeguard`` as a whole, and no override loosens a module of ours
    (overrides are for third-party packages without type hints)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["strict"] is True and config["files"] == ["okeguard"]
    for override in config.get("overrides", []):
        modules = override["module"]
        ours = [m for m in ([modules] if isinstance(modules, str) else modules) if "okeguard" in m]
        assert not ours, f"{ours} are loosened: {override}"


# ---------------------------------------------------------------- one-way imports

PACKAGE = ROOT / "okeguard"

# Cycles closed by an import inside a function that are known and allowed: only each registry's
# discovery of the modules that register into it, within its own package (all_checks() imports
# okeguard.checks.catalogue on first use, whose modules import the registry's @check; the same
# for planners and actions and okeguard.remediations.catalogue). A cycle found outside one
# package is new.
KNOWN_LAZY_CYCLES: tuple[set[str], ...] = ({"okeguard.checks.*"}, {"okeguard.remediations.*"})


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module, module: str, is_package: bool, *, lazy: bool) -> set[str]:
    """The names ``module`` imports (``a.b`` and ``a.b.c`` for ``from a.b import c``), at
    module level (class bodies, ``if`` and ``try`` included), and in functions when ``lazy``;
    never under ``if TYPE_CHECKING:``."""
    names: set[str] = set()

    def visit(nodes: Sequence[ast.AST], top: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, top)
                continue
            if isinstance(node, ast.Import) and (top or lazy):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (top or lazy):
                base = node.module or ""
                if node.level:
                    anchor = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(list(ast.iter_child_nodes(node)), top and not function)

    visit(tree.body, True)
    return names


def import_graph(package: Path = PACKAGE, *, lazy: bool) -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    files = {module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = _imported(tree, module, path.name == "__init__.py", lazy=lazy)
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def _home_of(name: str, package: Path = PACKAGE) -> str:
    homes = [
        module_name(path, package)
        for path in package.rglob("*.py")
        if f"\nclass {name}(" in path.read_text(encoding="utf-8")
        or f"\nclass {name}:" in path.read_text(encoding="utf-8")
    ]
    assert len(homes) == 1, homes
    return homes[0]


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [{"a", "b", "c"}]
    assert cycles({**graph, "c": set()}) == []


def test_module_level_imports_have_no_cycle() -> None:
    assert cycles(import_graph(lazy=False)) == []


def test_imports_inside_functions_hide_no_new_cycle() -> None:
    """An import inside a function is for start-up speed (a heavy SDK, a loader only one source
    needs), never to close a cycle the module level could not."""
    for cycle in cycles(import_graph(lazy=True)):
        assert any(
            all(any(fnmatch.fnmatchcase(m, p) for p in allowed) for m in cycle)
            for allowed in KNOWN_LAZY_CYCLES
        ), f"an import cycle: {sorted(cycle)}"


def test_the_scan_report_sits_below_the_fleet_and_remediations() -> None:
    """What loads clusters (the fleet) and fixes them (remediations) uses the scan report; the
    report's module imports neither, not even inside a function."""
    home = _home_of("ScanReport")
    below = reachable(import_graph(lazy=True), home)
    assert not below & {"okeguard.fleet", "okeguard.service", "okeguard.remediations.live"}
    assert home in reachable(import_graph(lazy=False), "okeguard.fleet")
    assert home in reachable(import_graph(lazy=False), "okeguard.remediations.live")


def test_cli_modules_share_only_public_names() -> None:
    """The commands share the configuration, the database and output through
    ``okeguard.bot.cli_context``; no ``cli_*`` module reaches into another's private names."""
    borrowed = []
    for path in sorted((PACKAGE / "bot").glob("cli*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "okeguard.bot.cli"
            ):
                names = [a.name for a in node.names if a.name.startswith("_")]
                borrowed += [f"{path.name}: {node.module}.{name}" for name in names]
    assert borrowed == []
