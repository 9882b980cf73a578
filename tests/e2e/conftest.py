"""End-to-end tests run the real console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


def okeguard_command() -> list[str]:
    script = Path(sys.executable).with_name("okeguard")
    if script.exists():
        return [str(script)]
    found = shutil.which("okeguard")
    assert found, "the okeguard console script is not installed (pip install -e '.[dev]')"
    return [found]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Run ``okeguard ARGS`` with optional stdin; returns the completed process (text)."""

    def _run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path), **(env or {})}
        full_env.pop("KUBECONFIG", None) if env is None or "KUBECONFIG" not in env else None
        return subprocess.run(
            [*okeguard_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
            check=False,
        )

    return _run


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Assert a user error: exit 2, nothing on stdout, one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]
