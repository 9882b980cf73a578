"""The conventions the code promises: ruff clean and formatted, mypy --strict on the whole package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
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
