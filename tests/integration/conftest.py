"""Fixtures for integration tests: fake servers on 127.0.0.1 behind the real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.integration.database import database, database_url, postgres_url  # noqa: F401


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[FakeKubeApi]:
    """A running fake Kubernetes API server with a kubeconfig (context ``fake``) pointing at it.

    The kubeconfig path is ``kube_api.kubeconfig_path``.
    """
    with running_fake_kube_api() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api
