"""Readable output through the real console script: colour only on a terminal (a pty here),
tables as wide as the terminal, short ids that ``okeguard fix`` takes, and close ids suggested
when ``fix`` is given one it does not know."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.e2e.conftest import Run, okeguard_command, one_error_line

ESC = "\x1b["
FINDING = "k8s.run-as-root:platform/shop-admin"  # an open finding of the demo with a fix


def on_terminal(
    tmp_path: Path, *args: str, columns: int = 100, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``okeguard ARGS`` with stdout on a pseudo-terminal ``columns`` wide (stderr piped)."""
    full_env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm-256color", **env}
    for name in ("NO_COLOR", "COLUMNS", "KUBECONFIG"):
        if name not in env:
            full_env.pop(name, None)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen(
        [*okeguard_command(), *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=full_env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the process closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    stdout = b"".join(chunks).decode().replace("\r\n", "\n")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_the_scan_table_is_coloured_on_a_terminal_only(run: Run, tmp_path: Path) -> None:
    coloured = on_terminal(tmp_path, "scan", "--demo")
    assert coloured.returncode == 0, coloured.stderr
    assert ESC in coloured.stdout
    assert ESC not in on_terminal(tmp_path, "scan", "--demo", NO_COLOR="1").stdout
    assert ESC not in on_terminal(tmp_path, "scan", "--demo", "--no-color").stdout
    assert ESC not in run("scan", "--demo", env={"TERM": "xterm-256color"}).stdout


@pytest.mark.parametrize("columns", [60, 100])
def test_the_scan_table_fits_the_terminal(tmp_path: Path, columns: int) -> None:
    result = on_terminal(tmp_path, "scan", "--demo", "--no-color", columns=columns)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert any(line.endswith("…") for line in lines)  # a long resource name was shortened


def test_piped_tables_keep_one_line_per_finding(run: Run) -> None:
    wide = run("scan", "--demo").stdout
    narrow = run("scan", "--demo", env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in wide.splitlines()) > 80
    assert max(len(line) for line in narrow.splitlines()) <= 80


def test_the_short_id_of_the_scan_table_is_what_fix_takes(run: Run) -> None:
    table = run("scan", "--demo").stdout
    doc = json.loads(run("scan", "--demo", "--format", "json").stdout)
    target = next(
        f
        for f in doc["findings"]
        if f["check_id"] == "k8s.run-as-root" and f["resource"]["name"] == "shop-admin"
    )
    short = target["fingerprint"][:12]
    assert f"  {short}  k8s.run-as-root  " in table
    plan = run("fix", short, "--demo")
    assert plan.returncode == 0, plan.stderr
    assert f"finding {short}" in plan.stdout


def test_fix_suggests_close_ids(run: Run) -> None:
    line = one_error_line(run("fix", "k8s.run-as-rot:platform/shop-admin", "--demo"))
    assert f"did you mean '{FINDING}'" in line
    doc = json.loads(run("scan", "--demo", "--format", "json").stdout)
    short = next(f["fingerprint"][:12] for f in doc["findings"] if f["status"] == "open")
    typo = short[:5] + ("0" if short[5] != "0" else "1") + short[6:]
    line = one_error_line(run("fix", typo, "--demo"))
    assert f"no finding matches '{typo}' (did you mean '{short}'" in line
    line = one_error_line(run("fix", "k8s.run-as-root", "--demo"))
    assert f"did you mean '{FINDING}'" in line
    line = one_error_line(run("fix", "ffffffffffff", "--demo"))
    assert "the ID column of 'okeguard scan' lists them" in line


def test_the_fix_diff_is_coloured_on_a_terminal_only(run: Run, tmp_path: Path) -> None:
    coloured = on_terminal(tmp_path, "fix", FINDING, "--demo")
    assert coloured.returncode == 0, coloured.stderr
    diff = coloured.stdout.split("Diff:", 1)[1]
    assert f"{ESC}32m+" in diff and f"{ESC}31m-" in diff
    assert ESC not in coloured.stdout.split("Diff:", 1)[0]  # only the diff is coloured
    for plain in (
        on_terminal(tmp_path, "fix", FINDING, "--demo", NO_COLOR="1"),
        on_terminal(tmp_path, "fix", FINDING, "--demo", "--no-color"),
        run("fix", FINDING, "--demo", env={"TERM": "xterm-256color"}),
    ):
        assert plain.returncode == 0, plain.stderr
        assert ESC not in plain.stdout and "\n+" in plain.stdout
