"""Fuzzing the command line with hostile manifests and snapshots: never a traceback.

Kubernetes-shaped objects get random YAML structures (and raw YAML snippets: tags, aliases, bad
timestamps, 5,000-digit integers, alias bombs, deep nesting) placed at random paths, and random
bytes around them; snapshots get the same in their header and objects. ``okeguard scan`` runs in
this process (``main``, as the console script does) and must exit 0, 1 or 2, with exactly one
line on stderr when it exits 2.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.bot.cli import main
from okeguard.inventory.shapes import field_problem
from okeguard.inventory.validate import _FIELD_CHECKS, FIELD_TYPES
from tests.unit.factories import (
    bare_container,
    cluster_role,
    config_map,
    ingress,
    namespace,
    network_policy,
    node,
    role_binding,
    rule,
    secret,
    service_account,
    tls_secret,
    user,
    workload,
)

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "snapshot.jsonl"
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _objects() -> list[dict[str, Any]]:
    secure = {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}
    web = workload(
        name="web",
        containers=[
            bare_container("app", securityContext=secure, env=[{"name": "TOKEN", "value": "x"}])
        ],
    )
    web["spec"]["template"]["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    cron = workload(kind="CronJob", name="nightly", containers=[bare_container("job")])
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop", "namespace": "shop", "annotations": {"a": "b"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}], "loadBalancerSourceRanges": []},
    }
    return [
        namespace("shop"),
        web,
        cron,
        service,
        role_binding("admins", role_name="cluster-admin", subjects=[user("alice")]),
        cluster_role("wide", rules=[rule(["*"], ["*"])]),
        network_policy(
            "deny",
            "shop",
            pod_selector={"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]},
            policy_types=["Ingress"],
            ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
        ),
        ingress(tls=False),
        tls_secret("cert"),
        secret("db", created="2020-01-01T00:00:00Z"),
        config_map("cfg", "shop", {"k": "v"}),
        service_account("default", "shop"),
        node(images=[(["nginx:1.27"], 600_000_000)]),
    ]


# YAML written as is where a value goes: what safe_dump would never write.
RAW = [
    "2020-13-45",
    "2020-02-30T25:61:00Z",
    "9" * 5000,
    "-" + "1" * 4400,
    "1:2:3:99999999999999999999",
    "!Ref foo",
    "!!int abc",
    "!!timestamp nope",
    "!!binary abc",
    "!!float x",
    "!!set {a, b}",
    "!!omap [a, b]",
    "!!python/object:os.system x",
    "*undefined",
    "&anchor [1, *anchor]",
    "<<",
    "{<<: 5}",
    "{<<: [1, {a: 1}]}",
    "{? [a] : 1}",
    "[" * 150 + "]" * 150,
    "'unterminated",
    "yes",
    "off",
    "~",
    ".nan",
    "0o777",
    "0x" + "f" * 40,
    "[&a [x,x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]"
    ", &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], "
    "&f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]",
]
MARK = "@@raw{}@@"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**19, max_value=10**40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "0", "true", "ALL", "SYS_ADMIN", "cluster-admin", "*", "Ingress"]),
    st.datetimes(),
    st.dates(),
    st.sampled_from(range(len(RAW))).map(MARK.format),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, bases: list[dict[str, Any]]) -> Any:
    """A copy of one of ``bases`` with random values put at random paths (or new keys)."""
    doc: Any = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        value = draw(values)
        if not path:
            doc = value
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent[draw(st.text(max_size=6))] = value  # a new key beside the old one
        else:
            parent[path[-1]] = value
    return doc


def _yaml(docs: list[Any]) -> str:
    text = yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)
    for index, raw in enumerate(RAW):
        mark = MARK.format(index)
        text = text.replace(f"'{mark}'", raw).replace(mark, raw)
    return text


def run(*args: str) -> tuple[int, str]:
    """``okeguard ARGS`` in this process: (exit code, stderr). An exception escaping ``main``
    (a traceback for the user) fails the test."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    code: Any = 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    logging.getLogger().handlers.clear()  # the CLI's handler writes to the closed buffer
    stderr.seek(0)
    return code, stderr.read()


def check_outcome(code: Any, stderr: str) -> None:
    assert code in (0, 1, 2), (code, stderr)
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("okeguard: error: "), stderr


@FUZZ
@given(
    docs=st.lists(mutated(_objects()), min_size=1, max_size=4),
    as_list=st.booleans(),
    garbage=st.one_of(st.just(b""), st.binary(max_size=12)),
    output=st.sampled_from(["json", "table", "sarif", "markdown"]),
)
def test_hostile_manifests_never_crash(
    docs: list[Any], as_list: bool, garbage: bytes, output: str
) -> None:
    if as_list:
        docs = [{"apiVersion": "v1", "kind": "List", "items": docs}]
    data = _yaml(docs).encode() + garbage
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.yaml"
        path.write_bytes(data)
        code, stderr = run("scan", "--manifests", str(path), "--format", output, "--fail-on", "low")
    check_outcome(code, stderr)
    if code == 2:
        assert str(path) in stderr


def _snapshot_parts() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = DEMO.read_text().splitlines()
    header = json.loads(lines[0])
    objects = [json.loads(line) for line in lines[1:40]]
    return header, objects


HEADER, SNAPSHOT_OBJECTS = _snapshot_parts()


@FUZZ
@given(
    header=mutated([HEADER]),
    objects=st.lists(mutated(SNAPSHOT_OBJECTS), max_size=3),
    keep=st.integers(0, len(SNAPSHOT_OBJECTS)),
    garbage=st.one_of(st.just(""), st.text(max_size=12)),
)
def test_hostile_snapshots_never_crash(
    header: Any, objects: list[Any], keep: int, garbage: str
) -> None:
    lines = [header, *SNAPSHOT_OBJECTS[:keep], *objects]
    text = "".join(json.dumps(line, default=str) + "\n" for line in lines) + garbage
    for index, raw in enumerate(RAW):  # raw YAML is only noise in JSON
        text = text.replace(MARK.format(index), raw[:40].replace('"', "'"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "snap.jsonl"
        path.write_text(text)
        code, stderr = run("scan", "--snapshot", str(path), "--format", "json")
    check_outcome(code, stderr)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated(_objects()))
def test_the_fast_field_check_agrees_with_the_one_that_names_the_field(doc: Any) -> None:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or kind not in FIELD_TYPES:
        return
    assert _FIELD_CHECKS[kind](doc) == (field_problem(doc, FIELD_TYPES[kind]) is None)
