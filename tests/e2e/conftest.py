"""End-to-end tests run the real console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.slack_support import ALICE, APPROVERS_GROUP, BOB
from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.fakes.slack_api import FakeSlackApi, running_fake_slack_api
from tests.integration.database import database_url, postgres_url  # noqa: F401
from tests.unit.factories import bare_container, namespace, workload

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


# -- the Slack bot's tests (tests/e2e/test_slack_*.py) ------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApi]:
    """A cluster (context ``fake``) whose Deployment shop/web runs as root. Test modules with
    a cluster of their own override this fixture."""
    web = workload(containers=[bare_container("web", image="fra.ocir.io/shop/web:1")])
    web["spec"]["replicas"] = 2
    with running_fake_kube_api([namespace("shop"), web]) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api


@pytest.fixture
def slack() -> Iterator[FakeSlackApi]:
    """The fake Slack Web API with the approvers' user group (Alice and Bob)."""
    with running_fake_slack_api() as api:
        api.add_usergroup(APPROVERS_GROUP, [ALICE, BOB])
        yield api
