#!/usr/bin/env python3
"""Delete the OCI SDK service packages okeguard never imports, and print the size before/after.

The ``oci`` wheel ships one package per OCI service (~180 of them, ~500 MB); okeguard talks to
six services. This script keeps the SDK core (every top-level module and every package that is
not a service), the services in :data:`KEEP`, and every service those reach by import, and
deletes the rest.

Usage: ``python scripts/prune_oci.py SITE_PACKAGES [--dry-run]``

Runs in the image's builder stage (through ``scripts/build_image.py``) and in the tests, so the
two cannot drift. Stdlib only: it runs before and after okeguard's dependencies exist.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The OCI services okeguard uses, and why. Derived from ``grep -rn 'oci\.' okeguard/`` and
# checked at run time by ``scripts/build_image.py`` (it imports every OCI-using okeguard module
# and builds the clients of every kind in ``okeguard.inventory.oci_clients.CLIENT_CLASSES``).
KEEP: dict[str, str] = {
    "container_engine": "ContainerEngineClient: clusters, node pools (collector); "
    "UpdateClusterEndpointConfigDetails (remediations/oci_attach.py)",
    "core": "VirtualNetworkClient + ComputeClient: subnets, security lists, NSGs, images "
    "(collector); NSG and security-list models (remediations/oci_actions.py, oci_writer.py)",
    "logging": "LoggingManagementClient: VCN flow logs and the control-plane log (collector)",
    "audit": "AuditClient: audit events (collector)",
    "vault": "VaultsClient: vault secrets (collector); UpdateSecretDetails (secret_actions.py)",
    "secrets": "SecretsClient: secret bundles (remediations/secret_actions.py, secret_vault.py)",
    # Not imported by okeguard itself but by the SDK core, found by the closure below and kept
    # here so that a change in the SDK shows up as a difference, not as a silent new package:
    "identity": "oci.auth.signers.InstancePrincipalsSecurityTokenSigner calls "
    "oci.identity.IdentityClient (the instance_principal auth mode)",
    "dns": "oci.pagination.pagination_utils imports it (isinstance checks in "
    "list_call_get_all_results, which okeguard uses)",
    "object_storage": "oci.pagination.pagination_utils imports it (as dns)",
    "work_requests": "oci.core's *_client_composite_operations (imported with oci.core) "
    "build an oci.work_requests.WorkRequestClient",
}

# SDK packages that are optional add-ons, imported by nothing in the SDK core or in okeguard:
# their imports do not pull services into the closure (e.g. ``addons/adk`` -> generative AI).
ADDONS = frozenset({"addons", "encryption"})

_MB = 1024 * 1024


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` kept and deleted, and the size of ``oci/`` before and after (bytes)."""

    kept: tuple[str, ...]
    deleted: tuple[str, ...]
    before: int
    after: int


def tree_size(path: Path) -> int:
    """Bytes of all regular files under ``path`` (symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def service_packages(oci_dir: Path) -> set[str]:
    """The service packages of the SDK: the lazily imported names of ``oci/__init__.py``'s
    ``__all__`` that are packages and not imported eagerly by ``oci/__init__.py`` itself."""
    tree = ast.parse((oci_dir / "__init__.py").read_text(encoding="utf-8"))
    eager: set[str] = set()
    names: set[str] = set()
    for stmt in tree.body:  # module level only: the eager imports of the SDK core
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 1:
            eager.update(alias.name for alias in stmt.names)
            if stmt.module:
                eager.add(stmt.module.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            names.update(str(v) for v in value)
    if not names:
        raise SystemExit(f"{oci_dir}/__init__.py: no __all__: unknown SDK layout, not pruning")
    return {n for n in names - eager if (oci_dir / n / "__init__.py").is_file()}


def _python_files(path: Path) -> Iterator[Path]:
    if path.is_file():
        if path.suffix == ".py":
            yield path
        return
    yield from sorted(path.rglob("*.py"))


def _oci_chain(node: ast.expr) -> list[str] | None:
    """``oci.core.models.X`` -> ["oci", "core", "models", "X"]; None when not rooted at a name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def references(files: Iterable[Path], oci_dir: Path) -> dict[str, Path]:
    """Top-level ``oci`` packages the code in ``files`` imports or uses (``oci.X.…``), each with
    the first file that does. Comments and docstrings do not count; function-level imports do."""
    found: dict[str, Path] = {}
    for file in files:
        try:
            tree = ast.parse(file.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        package = file.relative_to(oci_dir).parts
        # oci/__init__.py imports every service eagerly only when OCI_PYTHON_SDK_LAZY_IMPORTS_
        # DISABLED is set (the image does not set it): there, follow the module level only.
        nodes: Iterable[ast.AST] = tree.body if package == ("__init__.py",) else ast.walk(tree)
        for node in nodes:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[1] for a in node.names if a.name.startswith("oci.")]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.split(".")[0] == "oci":
                    parts = node.module.split(".")
                    names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
                elif node.level > 0:
                    # relative: resolve against the file's package inside oci/
                    base = list(package[:-1])[: len(package) - node.level]
                    target = base + (node.module.split(".") if node.module else [])
                    names = (
                        [target[0]] if target else [a.name for a in node.names]
                    )  # "from .. import x" at oci/ level
            elif isinstance(node, ast.Attribute):
                chain = _oci_chain(node)
                if chain and len(chain) > 1 and chain[0] == "oci":
                    names = [chain[1]]
            for name in names:
                found.setdefault(name, file)
    return found


def closure(oci_dir: Path, keep: Iterable[str]) -> tuple[set[str], dict[str, str]]:
    """(service packages to keep, why each one beyond ``keep`` is needed). Starts from the SDK
    core (top-level modules and non-service packages other than add-ons) and ``keep``, and
    follows imports until nothing new is reached."""
    services = service_packages(oci_dir)
    unknown = set(keep) - services
    if unknown:
        raise SystemExit(f"KEEP names no service package of this SDK: {sorted(unknown)}")
    core = [
        p
        for p in oci_dir.iterdir()
        if p.name not in services
        and p.name not in ADDONS
        and p.name != "__pycache__"
        and (p.suffix == ".py" or (p / "__init__.py").is_file())
    ]
    kept: set[str] = set(keep)
    why: dict[str, str] = {}
    todo: list[Path] = core + [oci_dir / k for k in sorted(kept)]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, file in references(_python_files(path), oci_dir).items():
            if name in services and name not in kept:
                kept.add(name)
                why[name] = f"used by {file.relative_to(oci_dir.parent)}"
                todo.append(oci_dir / name)
    return kept, why


def prune(site_packages: Path, *, dry_run: bool = False, keep: Iterable[str] = KEEP) -> PruneResult:
    """Delete the service packages outside the import closure of ``keep`` from
    ``site_packages/oci``. Returns what was kept and deleted and the sizes."""
    oci_dir = site_packages / "oci"
    if not (oci_dir / "__init__.py").is_file():
        raise SystemExit(f"{oci_dir}: not an installed oci SDK")
    kept, why = closure(oci_dir, keep)
    extra = set(why) - set(KEEP)
    if extra:  # the SDK grew a dependency: keep it, but say so (and add it to KEEP)
        for name in sorted(extra):
            print(f"prune_oci: also keeping oci.{name} ({why[name]})", file=sys.stderr)
    before = tree_size(oci_dir)
    deleted = sorted(service_packages(oci_dir) - kept)
    if not dry_run:
        for name in deleted:
            shutil.rmtree(oci_dir / name)
        _drop_record_entries(site_packages, deleted)
    after = before - sum(tree_size(oci_dir / n) for n in deleted) if dry_run else tree_size(oci_dir)
    return PruneResult(tuple(sorted(kept)), tuple(deleted), before, after)


def _drop_record_entries(site_packages: Path, deleted: list[str]) -> None:
    """Remove the deleted files from ``oci-*.dist-info/RECORD`` so the metadata stays true."""
    if not deleted:
        return
    pattern = re.compile(r"^oci/(" + "|".join(map(re.escape, deleted)) + r")/")
    for record in site_packages.glob("oci-*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        record.write_text("".join(x for x in lines if not pattern.match(x)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site_packages", type=Path, help="the site-packages holding oci/")
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    args = parser.parse_args(argv)
    result = prune(args.site_packages, dry_run=args.dry_run)
    print(f"prune_oci: kept {len(result.kept)} services: {', '.join(result.kept)}")
    print(f"prune_oci: {'would delete' if args.dry_run else 'deleted'} {len(result.deleted)}")
    print(f"prune_oci: oci/ {result.before / _MB:.1f} MB -> {result.after / _MB:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
