#!/usr/bin/env python3
"""Build okeguard's runtime tree, exactly as the container image's builder stage does.

``python scripts/build_image.py --target DIR``:

1. creates a virtual environment at ``DIR`` (``python -m venv``);
2. builds okeguard's wheel from the source tree and installs it (not editable), binaries only;
3. prunes the OCI SDK to the services okeguard uses (``scripts/prune_oci.py``);
4. removes ``pip``, ``setuptools`` and ``wheel`` from ``DIR``: nothing can install at run time;
5. verifies the result: ``okeguard --version``, ``okeguard checks --format json`` and
   ``okeguard scan --demo --format json`` (exit codes and output), an import of every okeguard
   module, and the OCI clients of every kind built from a throwaway config file;
6. prints the sizes (``--report FILE`` also writes them, with the checks, as JSON).

The ``Dockerfile`` runs this script, so the image and the tests cannot drift. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import prune_oci  # noqa: E402  (a sibling script, not a package)

REMOVED_TOOLS = ("pip", "setuptools", "wheel")
_MB = 1024 * 1024

# Run inside the target environment: import every okeguard module (the OCI-using ones
# included), then build the SDK clients of every kind and touch every SDK name okeguard uses,
# and report which oci packages got loaded.
VERIFY_IMPORTS = r"""
import importlib, json, pkgutil, sys
from pathlib import Path

import okeguard

failed = {}
modules = []
for info in pkgutil.walk_packages(okeguard.__path__, "okeguard."):
    if info.name.startswith("okeguard.migrations"):
        continue  # alembic scripts: they run inside alembic's context only
    try:
        importlib.import_module(info.name)
        modules.append(info.name)
    except Exception as exc:
        failed[info.name] = f"{type(exc).__name__}: {exc}"

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from okeguard.config import OciAuthConfig
from okeguard.inventory.oci_clients import CLIENT_CLASSES, make_clients

work = Path(sys.argv[1])
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
(work / "key.pem").write_bytes(
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
)
(work / "config").write_text(
    "[DEFAULT]\n"
    "user=ocid1.user.oc1..aaaaaaaaexample\n"
    "fingerprint=" + ":".join(["ab"] * 16) + "\n"
    "tenancy=ocid1.tenancy.oc1..aaaaaaaaexample\n"
    "region=eu-frankfurt-1\n"
    f"key_file={work / 'key.pem'}\n"
)
clients = make_clients(
    OciAuthConfig(mode="config_file", config_file=str(work / "config")), "eu-frankfurt-1"
)
built = sorted(type(c).__name__ for c in clients.by_kind.values())
assert set(clients.by_kind) == set(CLIENT_CLASSES), clients.by_kind

import oci

# every SDK name okeguard's code reaches (grep 'oci\.' okeguard/), and the signers of the
# other auth modes (instance principal reaches oci.identity)
names = [
    "oci.core.models.CreateNetworkSecurityGroupDetails",
    "oci.core.models.AddNetworkSecurityGroupSecurityRulesDetails",
    "oci.core.models.RemoveNetworkSecurityGroupSecurityRulesDetails",
    "oci.core.models.UpdateSecurityListDetails",
    "oci.core.models.AddSecurityRuleDetails",
    "oci.container_engine.models.UpdateClusterEndpointConfigDetails",
    "oci.vault.models.UpdateSecretDetails",
    "oci.vault.models.Base64SecretContentDetails",
    "oci.exceptions.ServiceError",
    "oci.pagination.list_call_get_all_results",
    "oci.retry.RetryStrategyBuilder",
    "oci.circuit_breaker.NoCircuitBreakerStrategy",
    "oci.config.from_file",
    "oci.auth.signers.InstancePrincipalsSecurityTokenSigner",
    "oci.auth.signers.get_resource_principals_signer",
    "oci.auth.signers.get_oke_workload_identity_resource_principal_signer",
    "oci.identity.IdentityClient",
]
missing = []
for name in names:
    obj = oci
    try:
        for part in name.split(".")[1:]:
            obj = getattr(obj, part)
    except Exception as exc:
        missing.append(f"{name}: {type(exc).__name__}: {exc}")
loaded = sorted({m.split(".")[1] for m in sys.modules if m.startswith("oci.")})
print(json.dumps({"modules": len(modules), "failed": failed, "clients": built,
                  "missing": missing, "oci_packages_loaded": loaded}))
"""


def _run(cmd: list[str], *, env: dict[str, str] | None = None, **kw: Any) -> str:
    """Run ``cmd``; on failure print its output and exit. Returns stdout."""
    print("+ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"build_image: failed ({proc.returncode}): {' '.join(cmd)}")
    return str(proc.stdout)


def site_packages(target: Path) -> Path:
    """The site-packages directory of the virtual environment at ``target``."""
    found = sorted(target.glob("lib/python3*/site-packages"))
    if len(found) != 1:
        raise SystemExit(f"{target}: expected one lib/python3*/site-packages, found {found}")
    return found[0]


def create_venv(target: Path, python: str) -> None:
    """A fresh virtual environment at ``target`` (``--clear`` empties one left behind)."""
    _run([python, "-m", "venv", "--clear", str(target)])


def install(target: Path, source: Path, wheel_dir: Path) -> Path:
    """Build okeguard's wheel from ``source`` into ``wheel_dir`` and install it in ``target``.
    Dependencies come as wheels only: the builder needs no compiler."""
    py = str(target / "bin" / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheel_dir), str(source)])
    wheels = sorted(wheel_dir.glob("okeguard-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"build_image: expected one okeguard wheel in {wheel_dir}: {wheels}")
    _run([*pip, "install", "--only-binary=:all:", str(wheels[0])])
    return wheels[0]


def remove_tools(target: Path) -> None:
    """Uninstall pip, setuptools and wheel from ``target`` (pip last: it does the work)."""
    py = str(target / "bin" / "python")
    _run([py, "-m", "pip", "uninstall", "--yes", "setuptools", "wheel", "pip"])
    for script in target.glob("bin/pip*"):  # left behind by some pip versions
        script.unlink()
    site = site_packages(target)
    left = [
        p.name
        for name in REMOVED_TOOLS
        for p in [*site.glob(name), *site.glob(f"{name}-*.dist-info"), *site.glob(f"_{name}*")]
    ]
    if left:
        raise SystemExit(f"build_image: still in {site}: {left}")


def runtime_env(home: Path) -> dict[str, str]:
    """The environment of the image (Dockerfile ``ENV``), with its writable dirs under ``home``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OCI_"))
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        MPLCONFIGDIR=str(home / "matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


def verify(target: Path, work: Path) -> dict[str, Any]:
    """Run okeguard from ``target`` as the image would; exit on any failure. Returns findings."""
    bin_dir = target / "bin"
    env = runtime_env(work)
    version = _run([str(bin_dir / "okeguard"), "--version"], env=env).strip()
    if not version.startswith("okeguard "):
        raise SystemExit(f"build_image: unexpected --version output: {version!r}")
    checks = json.loads(_run([str(bin_dir / "okeguard"), "checks", "--format", "json"], env=env))
    if not checks or not all("id" in c for c in checks):
        raise SystemExit("build_image: okeguard checks --format json: no checks")
    scan = json.loads(
        _run([str(bin_dir / "okeguard"), "scan", "--demo", "--format", "json"], env=env)
    )
    if not scan.get("findings"):
        raise SystemExit("build_image: okeguard scan --demo found nothing")
    script = work / "verify_imports.py"
    script.write_text(VERIFY_IMPORTS, encoding="utf-8")
    imports = json.loads(
        _run([str(bin_dir / "python"), str(script), str(work)], env=env).splitlines()[-1]
    )
    if imports["failed"] or imports["missing"]:
        raise SystemExit(
            "build_image: imports failed in the pruned tree:\n"
            + json.dumps({k: imports[k] for k in ("failed", "missing")}, indent=2)
        )
    tools = _run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u; print([m for m in ('pip', 'setuptools', 'wheel') "
            "if u.find_spec(m)])",
        ],
        env=env,
    ).strip()
    if tools != "[]":
        raise SystemExit(f"build_image: still importable: {tools}")
    return {
        "version": version,
        "checks": len(checks),
        "demo_findings": len(scan["findings"]),
        "okeguard_modules_imported": imports["modules"],
        "oci_clients": imports["clients"],
        "oci_packages_loaded": imports["oci_packages_loaded"],
    }


def build(target: Path, source: Path, python: str) -> dict[str, Any]:
    """Steps 1 to 5 of the module docstring; returns the report."""
    started = time.monotonic()
    create_venv(target, python)
    with tempfile.TemporaryDirectory(prefix="okeguard-build-") as tmp:
        wheel = install(target, source, Path(tmp))
        site = site_packages(target)
        venv_before = prune_oci.tree_size(target)
        result = prune_oci.prune(site)
        remove_tools(target)
        venv_after = prune_oci.tree_size(target)
        work = Path(tmp) / "run"
        work.mkdir()
        checks = verify(target, work)
    loaded = set(checks["oci_packages_loaded"])
    services = set(result.kept) | set(result.deleted)
    return {
        "target": str(target),
        "wheel": wheel.name,
        "oci_mb_before": round(result.before / _MB, 1),
        "oci_mb_after": round(result.after / _MB, 1),
        "venv_mb_before_prune": round(venv_before / _MB, 1),
        "venv_mb_after": round(venv_after / _MB, 1),
        "oci_services_kept": list(result.kept),
        "oci_services_deleted": len(result.deleted),
        "oci_services_loaded_at_run_time": sorted(loaded & services),
        "removed_tools": list(REMOVED_TOOLS),
        "verified": checks,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, type=Path, help="the venv to create")
    parser.add_argument(
        "--source", type=Path, default=HERE.parent, help="okeguard's source tree (default: here)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter of the venv (default: this one)"
    )
    parser.add_argument("--report", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    target = args.target.resolve()
    if target == Path(sysconfig.get_paths()["data"]).resolve():
        raise SystemExit("build_image: --target is the running environment")
    report = build(target, args.source.resolve(), args.python)
    print(
        f"build_image: oci/ {report['oci_mb_before']} MB -> {report['oci_mb_after']} MB; "
        f"venv {report['venv_mb_before_prune']} MB -> {report['venv_mb_after']} MB; "
        f"{report['seconds']} s"
    )
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
