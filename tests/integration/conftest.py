"""Fixtures for integration tests: fake servers on 127.0.0.1 behind the real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api
from tests.fakes.oci_api import FakeOciApi, running_fake_oci_api
from tests.fakes.oci_world import OkeWorld, build_oke_world
from tests.integration.database import database, database_url, postgres_url  # noqa: F401


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[FakeKubeApi]:
    """A running fake Kubernetes API server with a kubeconfig (context ``fake``) pointing at it.

    The kubeconfig path is ``kube_api.kubeconfig_path``.
    """
    with running_fake_kube_api() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        yield api


@pytest.fixture(scope="session")
def oci_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI config file with a throwaway RSA API key (one per run: key generation is slow)."""
    return FakeOciApi().write_config(tmp_path_factory.mktemp("oci"))


@pytest.fixture
def oci_api() -> Iterator[FakeOciApi]:
    """A running fake OCI API (see ``tests/fakes/oci_api.py``)."""
    with running_fake_oci_api() as api:
        yield api


@pytest.fixture
def world(oci_api: FakeOciApi) -> OkeWorld:
    """A typical OKE cluster stored in the fake: secret_ids[0] has a rotation target (ADB,
    rotated by rotate_secret), secret_ids[1] has none (update_secret)."""
    return build_oke_world(oci_api)
