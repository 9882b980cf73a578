"""Snapshot files: round trip, validation errors, and no secret value ever written."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from okeguard.errors import InputError
from okeguard.inventory.model import Gap, KubeconfigUser
from okeguard.inventory.snapshot import SNAPSHOT_SCHEMA, load_snapshot, save_snapshot
from tests.helpers import NOW, deployment, inventory

SECRET_VALUE = "correct-horse-battery-staple"


def secret() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
                    {"stringData": {"pw": SECRET_VALUE}}
                )
            },
        },
        "data": {"password": base64.b64encode(SECRET_VALUE.encode()).decode()},
        "stringData": {"other": SECRET_VALUE},
    }


def test_round_trip_keeps_objects_users_and_gaps(tmp_path: Path) -> None:
    inv = inventory(
        [deployment(), secret()],
        whole_cluster=True,
        kubeconfig_users=[KubeconfigUser("ci", ("token",))],
        gaps=[Gap("kubernetes", "ConfigMap", "403 Forbidden")],
    )
    inv = type(inv)(**{**inv.__dict__, "captured_at": NOW})
    path = tmp_path / "snap.json"
    save_snapshot(inv, path, {"context": "prod"})
    loaded = load_snapshot(path)
    assert loaded.cluster == "test" and loaded.whole_cluster
    assert loaded.captured_at == NOW
    assert {(o.kind, o.name) for o in loaded.of_kind("Deployment", "Secret")} == {
        ("Deployment", "web"),
        ("Secret", "db"),
    }
    assert loaded.kubeconfig_users == (KubeconfigUser("ci", ("token",)),)
    assert loaded.gaps == (Gap("kubernetes", "ConfigMap", "403 Forbidden"),)
    header, *objects = [json.loads(line) for line in path.read_text().splitlines()]
    assert header["schema"] == SNAPSHOT_SCHEMA and header["objects"] == 2
    assert sorted(o["kind"] for o in objects) == ["Deployment", "Secret"]


def test_secret_values_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    save_snapshot(inventory([secret()], whole_cluster=True), path)
    text = path.read_text()
    assert SECRET_VALUE not in text
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in text
    stored = json.loads(text.splitlines()[1])
    assert stored["data"]["password"].startswith("okeguard:redacted:secret:")


HEADER = f'{{"schema": "{SNAPSHOT_SCHEMA}", "cluster": {{"name": "c"}}}}'


def test_a_single_json_document_is_read_too(tmp_path: Path) -> None:
    doc = {
        "schema": SNAPSHOT_SCHEMA,
        "cluster": {"name": "hand-made"},
        "objects": [deployment()],
    }
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc, indent=2))
    loaded = load_snapshot(path)
    assert loaded.cluster == "hand-made"
    assert [w.name for w in loaded.workloads] == ["web"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (HEADER + "\n" + json.dumps(deployment()) + "\n{broken\n", r"snap\.json:3: invalid JSON"),
        (HEADER + '\n\n{"kind": "Pod"}\n', r"snap\.json:3: not a Kubernetes object: no apiVersion"),
        ("{not json", r"snap\.json:1: invalid JSON"),
        ("[]", "not an okeguard snapshot"),
        ('{"schema": "other/v9"}', "schema is 'other/v9'"),
        (f'{{"schema": "{SNAPSHOT_SCHEMA}", "objects": []}}', "'cluster' is missing"),
        (
            f'{{"schema": "{SNAPSHOT_SCHEMA}", "cluster": {{"name": "c"}}, "objects": [{{"kind": "Pod"}}]}}',
            r"objects\[0\]: not a Kubernetes object: no apiVersion",
        ),
    ],
)
def test_invalid_snapshots_are_named_precisely(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(content)
    with pytest.raises(InputError, match=expected):
        load_snapshot(path)


def test_missing_snapshot_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_snapshot(tmp_path / "absent.json")
    with pytest.raises(InputError, match="is a directory"):
        load_snapshot(tmp_path)
