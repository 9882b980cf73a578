"""Manifest loading: files, directories, multi-document YAML, JSON, kind: List, stdin, errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from okeguard.errors import InputError
from okeguard.inventory.manifests import load_manifests, parse_manifest_text

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx:1.27
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_multi_document_file_keeps_every_object_and_its_line(tmp_path: Path) -> None:
    text = (
        DEPLOYMENT
        + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
    )
    file = write(tmp_path / "app.yaml", text)
    inv = load_manifests([str(file)])
    assert [(o.kind, o.name) for o in inv.of_kind("Deployment", "Service")] == [
        ("Deployment", "web"),
        ("Service", "web"),
    ]
    service = next(inv.of_kind("Service"))
    assert service.origin == f"{file}:13"
    assert not inv.whole_cluster


def test_directories_are_read_recursively_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    write(tmp_path / "a" / "b" / "deep.yml", DEPLOYMENT.replace("name: web", "name: deep"))
    write(
        tmp_path / "top.json",
        json.dumps(yaml.safe_load(DEPLOYMENT.replace("name: web", "name: top"))),
    )
    write(tmp_path / ".git" / "hidden.yaml", DEPLOYMENT.replace("name: web", "name: hidden"))
    write(tmp_path / "notes.txt", "not: a manifest")
    inv = load_manifests([str(tmp_path)])
    assert sorted(o.name for o in inv.of_kind("Deployment")) == ["deep", "top"]
    assert inv.source.detail["files"] == 2


def test_kind_list_is_flattened(tmp_path: Path) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(DEPLOYMENT)] * 1}
    doc["items"].append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
    inv = load_manifests([str(write(tmp_path / "list.yaml", yaml.safe_dump(doc)))])
    assert {o.kind for o in inv.of_kind("Deployment", "ConfigMap")} == {"Deployment", "ConfigMap"}


def test_stdin_is_read_for_dash() -> None:
    inv = load_manifests(["-"], stdin_text=DEPLOYMENT)
    assert [o.name for o in inv.of_kind("Deployment")] == ["web"]
    assert next(inv.of_kind("Deployment")).origin == "<stdin>:1"


def test_namespaced_object_without_namespace_lands_in_default_and_cluster_scoped_has_none() -> None:
    text = DEPLOYMENT.replace("  namespace: shop\n", "")
    text += "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: x}\n"
    inv = load_manifests(["-"], stdin_text=text)
    assert next(inv.of_kind("Deployment")).namespace == "default"
    assert next(inv.of_kind("ClusterRole")).namespace is None


def test_unknown_kinds_are_skipped_and_counted_empty_documents_ignored() -> None:
    text = (
        "---\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n---\n"
        + DEPLOYMENT
    )
    text += "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    inv = load_manifests(["-"], stdin_text=text)
    assert inv.skipped_kinds == {"PersistentVolumeClaim": 1, "Widget": 1}
    assert inv.object_count == 1


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: no such file or directory"):
        load_manifests([str(tmp_path / "nope.yaml")])


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    file = write(
        tmp_path / "bad.yaml", DEPLOYMENT + "---\nkind: Service\nmetadata:\n  name: [unclosed\n"
    )
    with pytest.raises(InputError) as err:
        load_manifests([str(file)])
    message = str(err.value)
    assert message.startswith(f"{file}:")
    line = int(message.split(":")[1])
    assert 14 <= line <= 16  # the broken flow sequence, not the first document
    assert "invalid YAML" in message and "\n" not in message


def test_document_that_is_not_a_kubernetes_object_is_an_error(tmp_path: Path) -> None:
    file = write(tmp_path / "values.yaml", "replicaCount: 3\nimage: nginx\n")
    with pytest.raises(InputError, match=r"values\.yaml:1: not a Kubernetes object: no kind"):
        load_manifests([str(file)])
    scalar = write(tmp_path / "scalar.yaml", "just a string\n")
    with pytest.raises(InputError, match="expected a mapping"):
        load_manifests([str(scalar)])
    nameless = write(tmp_path / "nameless.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {}\n")
    with pytest.raises(InputError, match=r"Secret has no metadata\.name"):
        load_manifests([str(nameless)])


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        file = write(tmp_path / "secret.yaml", DEPLOYMENT)
        file.chmod(0)
        with pytest.raises(InputError, match="permission denied"):
            load_manifests([str(file)])
        return
    # As root every file is readable: load it in a forked child that has dropped to 'nobody'.
    folder = Path(tempfile.mkdtemp(prefix="okeguard-perm-", dir="/tmp"))
    folder.chmod(0o755)
    file = write(folder / "secret.yaml", DEPLOYMENT)
    file.chmod(0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.setgid(65534)
        os.setuid(65534)
        try:
            load_manifests([str(file)])
            message = "no error"
        except InputError as exc:
            message = str(exc)
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        assert pipe.read() == f"{file}: permission denied"


def test_binary_file_is_rejected_with_its_name(tmp_path: Path) -> None:
    file = tmp_path / "blob.yaml"
    file.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputError, match=r"blob\.yaml: not a text file"):
        load_manifests([str(file)])


def test_the_same_object_twice_is_kept_once_last_wins() -> None:
    second = DEPLOYMENT.replace("nginx:1.27", "nginx:1.28")
    inv = load_manifests(["-"], stdin_text=DEPLOYMENT + "---\n" + second)
    (deployment,) = inv.of_kind("Deployment")
    assert deployment.spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(names, names, st.sampled_from(["ConfigMap", "Service", "Deployment"])),
        min_size=1,
        max_size=8,
        unique=True,
    )
)
def test_any_multi_document_stream_round_trips(items: list[tuple[str, str, str]]) -> None:
    docs = [
        {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "data": {"k": name},
        }
        for name, ns, kind in items
    ]
    text = yaml.safe_dump_all(docs)
    objects = parse_manifest_text(text, "<gen>")
    expected = {(kind, ns, name) for name, ns, kind in items}
    assert {(o.kind, o.namespace, o.name) for o in objects} == expected
