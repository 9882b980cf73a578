"""A scan run as the okeguard program ends without freeing its report object by object
(``cli_context.exit_without_freeing``): everything it writes must still be out, with the right
exit code, and a caller of ``main`` in its own process must not be ended by it."""

from __future__ import annotations

import gc
import json
import os
import subprocess
from pathlib import Path

import pytest

from okeguard.bot.cli import main
from okeguard.bot.cli_context import _KEPT
from tests.e2e.conftest import Run, okeguard_command

BROKEN = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken, namespace: shop}
spec: {template: {spec: {containers: "not a list"}}}
---
apiVersion: v1
kind: Pod
metadata: {name: root, namespace: shop}
spec: {containers: [{name: app, image: nginx:1.27, securityContext: {privileged: yes}}]}
"""


def test_the_report_and_the_exit_code_are_out_before_the_process_ends(
    run: Run, tmp_path: Path
) -> None:
    result = run("scan", "--demo", "--format", "json", "--fail-on", "low")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # complete: it parses, to the last brace
    assert report["summary"]["by_status"]["open"] > 0
    manifests = tmp_path / "app.yaml"
    manifests.write_text(BROKEN)
    written = tmp_path / "report.sarif"
    result = run("scan", str(manifests), "--format", "sarif", "-o", str(written))
    assert result.returncode == 0, result.stderr
    assert json.loads(written.read_text())["runs"][0]["results"]
    # the warning goes through logging, which is shut down (flushed) before the end
    assert "broken not evaluated" in result.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path)}
    scan = subprocess.Popen(
        [*okeguard_command(), "scan", "--demo", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert scan.stdout is not None and scan.stderr is not None
    scan.stdout.read(10)
    scan.stdout.close()  # as `| head -c 10` does
    err = scan.stderr.read().decode()
    assert scan.wait(timeout=60) == 0
    assert "Traceback" not in err and "Exception ignored" not in err


def test_main_called_in_a_process_returns_to_its_caller(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["scan", "--demo", "--format", "json", "--fail-on", "low"])
    assert ended.value.code == 1
    assert _KEPT  # kept for the program's end, which this process did not take
    assert json.loads(capsys.readouterr().out)["summary"]["by_status"]["open"] > 0
    _KEPT.clear()
    gc.unfreeze()  # what the scan froze for the program's end, which this process did not take
