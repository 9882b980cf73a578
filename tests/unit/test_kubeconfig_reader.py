"""Reading kubeconfig files: auth mechanisms (never values), merging, errors, context choice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.errors import ClusterAccessError, InputError
from okeguard.inventory.kubeconfig import load_kubeconfig, read_kubeconfig_users, resolve_context
from okeguard.inventory.model import KubeconfigUser

TOKEN = "eyJhbGciOiJSUzI1NiJ9.static-token-value"
PASSWORD = "p4ssw0rd-value"
KEY_DATA = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ=="


def write(path: Path, doc: Any) -> str:
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return str(path)


def kubeconfig(
    users: list[dict[str, Any]], contexts: tuple[str, ...] = (), current: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
        "users": users,
    }


OKE_EXEC = {
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "command": "oci",
    "args": [
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        "ocid1.cluster.oc1.x",
        "--region",
        "eu-frankfurt-1",
    ],
    "env": [{"name": "OCI_CLI_PROFILE", "value": "DEFAULT"}],
}


def test_each_mechanism_is_named_and_no_value_is_kept(tmp_path: Path) -> None:
    users = [
        {"name": "oke", "user": {"exec": OKE_EXEC}},
        {"name": "static", "user": {"token": TOKEN}},
        {"name": "file", "user": {"tokenFile": "/var/run/token"}},
        {"name": "basic", "user": {"username": "admin", "password": PASSWORD}},
        {
            "name": "cert",
            "user": {"client-certificate-data": "Y2VydA==", "client-key-data": KEY_DATA},
        },
        {"name": "cert-file", "user": {"client-key": "/keys/me.key"}},
        {
            "name": "oidc",
            "user": {"auth-provider": {"name": "oidc", "config": {"id-token": TOKEN}}},
        },
        {"name": "empty", "user": None},
    ]
    got = read_kubeconfig_users(write(tmp_path / "config", kubeconfig(users)))
    assert [(u.name, u.auth) for u in got] == [
        ("oke", ("exec",)),
        ("static", ("token",)),
        ("file", ("token-file",)),
        ("basic", ("password",)),
        ("cert", ("client-key",)),
        ("cert-file", ("client-key",)),
        ("oidc", ("auth-provider",)),
        ("empty", ()),
    ]
    assert got[0].exec_command == "oci"
    assert got[0].exec_args == tuple(OKE_EXEC["args"])
    dumped = repr(got)
    for value in (TOKEN, PASSWORD, KEY_DATA, "DEFAULT"):
        assert value not in dumped


def test_credential_like_exec_arguments_are_redacted(tmp_path: Path) -> None:
    args = ["get-token", "--token=abc123secret", "--password", "hunter2hunter2", "--region", "x"]
    users = [{"name": "u", "user": {"exec": {"command": "plugin", "args": args}}}]
    (user,) = read_kubeconfig_users(write(tmp_path / "config", kubeconfig(users)))
    assert user.exec_args[0] == "get-token"
    assert user.exec_args[1].startswith("--token=okeguard:redacted:credential:")
    assert user.exec_args[2] == "--password"
    assert user.exec_args[3].startswith("okeguard:redacted:credential:")
    assert user.exec_args[4:] == ("--region", "x")
    assert "abc123secret" not in repr(user) and "hunter2hunter2" not in repr(user)


def test_kubeconfig_env_list_is_merged_first_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(
        tmp_path / "a", kubeconfig([{"name": "u", "user": {"exec": OKE_EXEC}}], ("one",), "one")
    )
    second = write(
        tmp_path / "b",
        kubeconfig(
            [{"name": "u", "user": {"token": TOKEN}}, {"name": "v", "user": {"token": TOKEN}}],
            ("two",),
            "two",
        ),
    )
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), first, "", second])
    )
    merged = load_kubeconfig()
    assert [(u.name, u.auth) for u in merged.users] == [("u", ("exec",)), ("v", ("token",))]
    assert merged.current_context == "one"
    assert sorted(merged.contexts) == ["one", "two"]
    assert [p.name for p in merged.paths] == ["a", "b"]
    assert read_kubeconfig_users() == list(merged.users)


def test_default_location_missing_gives_no_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_kubeconfig_users() == []
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    assert read_kubeconfig_users() == []


def test_explicit_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.yaml: no such file"):
        read_kubeconfig_users(str(tmp_path / "missing.yaml"))


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config", "apiVersion: v1\nusers:\n  - name: a\n    user: {token: [\n")
    with pytest.raises(InputError) as err:
        read_kubeconfig_users(path)
    assert str(err.value).startswith(f"{path}:5: invalid YAML in kubeconfig")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["- just\n- a list\n", "users: 3\n"])
def test_non_kubeconfig_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(InputError, match="not a kubeconfig"):
        read_kubeconfig_users(write(tmp_path / "config", text))


def test_empty_file_has_no_users(tmp_path: Path) -> None:
    assert read_kubeconfig_users(write(tmp_path / "config", "")) == []


def test_resolve_context_picks_current_or_suggests(tmp_path: Path) -> None:
    path = write(tmp_path / "config", kubeconfig([], ("prod-oke", "staging-oke"), "staging-oke"))
    assert resolve_context(path, None)[1] == "staging-oke"
    assert resolve_context(path, "prod-oke")[1] == "prod-oke"
    with pytest.raises(ClusterAccessError) as err:
        resolve_context(path, "prod-okee")
    assert str(err.value) == (
        f"kubeconfig {path}: no context named 'prod-okee'; did you mean 'prod-oke'? "
        "(available: prod-oke, staging-oke)"
    )
    with pytest.raises(ClusterAccessError, match="sets no current-context; pass --context"):
        resolve_context(write(tmp_path / "nocurrent", kubeconfig([], ("a",))), None)


_names = st.text(alphabet="abcdefgh-", min_size=1, max_size=6)
_mechanisms = st.sampled_from(["token", "tokenFile", "password", "client-key-data", "exec"])


def _user(name: str, mechanism: str, secret: str) -> dict[str, Any]:
    if mechanism == "exec":
        return {
            "name": name,
            "user": {"exec": {"command": "oci", "env": [{"name": "X", "value": secret}]}},
        }
    return {"name": name, "user": {mechanism: secret}}


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.lists(st.tuples(_names, _mechanisms), max_size=5), min_size=1, max_size=3),
    secret=st.text(alphabet="XYZ0123456789", min_size=12, max_size=20),
)
def test_merge_is_first_wins_and_never_keeps_values(
    tmp_path_factory: pytest.TempPathFactory, files: list[list[tuple[str, str]]], secret: str
) -> None:
    directory = tmp_path_factory.mktemp("merge")
    paths = []
    expected: dict[str, str] = {}
    for index, entries in enumerate(files):
        unique = dict(reversed(entries))  # one entry per name within a file (the first listed)
        users = [_user(name, mech, secret) for name, mech in unique.items()]
        paths.append(write(directory / f"k{index}", kubeconfig(users)))
        for name, mech in unique.items():
            expected.setdefault(name, mech)
    merged = _load_env(paths)
    names = {"tokenFile": "token-file", "client-key-data": "client-key"}
    assert {u.name: u.auth for u in merged} == {n: (names.get(m, m),) for n, m in expected.items()}
    assert secret not in repr(merged)


def _load_env(paths: list[str]) -> list[KubeconfigUser]:
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = os.pathsep.join(paths)
    try:
        return read_kubeconfig_users()
    finally:
        if old is None:
            del os.environ["KUBECONFIG"]
        else:
            os.environ["KUBECONFIG"] = old
