"""Malformed and hostile input never crashes: each case is refused in one line naming the file,
line and field, or the one bad object is reported as not evaluated while the rest is scanned."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from okeguard.checks.engine import run_checks
from okeguard.checks.model import Status
from okeguard.config import Config
from okeguard.errors import InputError
from okeguard.inventory.manifests import load_manifests, objects_from_documents
from okeguard.inventory.shapes import field_problem
from okeguard.inventory.snapshot import SNAPSHOT_SCHEMA, load_snapshot
from okeguard.inventory.validate import FIELD_TYPES
from okeguard.inventory.yaml_stream import MAX_DEPTH, yaml_documents
from okeguard.timestamps import parse_timestamp
from tests.helpers import NOW
from tests.unit.factories import bare_container, workload

GOOD = workload(name="good", containers=[bare_container("app")])


def documents(text: str) -> list[tuple[int, Any, list[tuple[int, str, str]]]]:
    return [
        (line, doc, [(p.line, p.field, p.message) for p in problems])
        for line, doc, problems in yaml_documents(text, "t.yaml")
    ]


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO or device that is read instead of refused would hang the suite: fail instead."""

    def timeout(*_: object) -> None:
        raise TimeoutError("took more than 20 s: input was read instead of refused")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# -- YAML as PyYAML's SafeLoader reads it, built from events ---------------------------------


def test_yaml_1_1_is_read_as_pyyaml_reads_it() -> None:
    text = (
        "a: yes\nb: on\nc: off\nd: 017\ne: 0o17\nf: 1:30\ng: 2020-01-01\nh: 2020-01-01T10:00:00Z\n"
        "i: ~\nj: 0x1F\nk: 1_000\nl: .inf\nm: '1'\nn: !!str 5\no: !!binary aGk=\np: 1.5e3\n"
        "base: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\nboth:\n  <<: [{a: 1}, {a: 2, b: 2}]\n"
        "list: &l [1, 2]\nagain: *l\nset: !!set {a, b}\npairs: !!omap [a: 1, b: 2]\n"
    )
    (line, doc, problems), *_ = documents(text)
    assert line == 1 and not problems
    assert doc == yaml.load(text, Loader=yaml.CSafeLoader)
    assert doc["a"] is True and doc["b"] is True and doc["c"] is False
    assert (doc["d"], doc["e"], doc["f"], doc["j"], doc["k"]) == (15, "0o17", 90, 31, 1000)
    assert doc["h"] == dt.datetime(2020, 1, 1, 10, tzinfo=dt.UTC)
    assert doc["merged"] == {"x": 1, "y": 3} and doc["both"] == {"a": 1, "b": 2}


def test_streams_and_lines_match_the_documents() -> None:
    text = "---\n---\nkind: A\n---\n- 1\n---\nplain\n"
    assert [(line, doc) for line, doc, _ in documents(text)] == [
        (2, None),
        (3, {"kind": "A"}),
        (5, [1]),
        (7, "plain"),
    ]
    as_json = json.dumps({"a": [1, 2.5, True, None, "x"]})
    assert documents(as_json)[0][1] == json.loads(as_json)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 5000, "cannot read '99999999999999999999…(5000 characters)' as int"),
        ("2020-13-45", "cannot read '2020-13-45' as timestamp: month must be in 1..12"),
        ("2020-02-30T10:00:00Z", "as timestamp: day is out of range for month"),
        ("2020-01-01T10:00:00+99:00", "as timestamp"),
        ("!Ref foo", "unknown tag '!Ref'"),
        ("!!int abc", "cannot read 'abc' as int"),
        ("!!timestamp nope", "cannot read 'nope' as timestamp"),
        ("!!binary abc", "cannot read 'abc' as binary: failed to decode base64 data"),
        ("!!python/object:os.system x", "unknown tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("*nowhere", "alias *nowhere names no anchor before it"),
        ("<<", "'<<' (a merge key) used as a value"),
        ("{<<: 5}", "'<<' merges a mapping or a list of mappings only"),
        ("!Custom {a: 1}", "unknown tag '!Custom' on a mapping"),
        ("!!omap [a, b]", "expects a list of single-key mappings"),
        ("{[a]: 1}", "a mapping or list used as a key"),
    ],
)
def test_a_value_yaml_cannot_build_is_a_problem_with_line_and_field(
    value: str, message: str
) -> None:
    (_, doc, problems), *rest = documents(f"kind: Pod\nspec:\n  field: {value}\n---\nkind: Next\n")
    assert doc["kind"] == "Pod" and rest[0][1] == {"kind": "Next"}
    line, field, text = problems[0]
    assert line == 3 and field.startswith("spec.field") and message in text


def test_an_anchor_may_be_defined_again_as_yaml_says_and_kubectl_reads_it() -> None:
    (_, doc, problems), *_ = documents("a: &x 1\nb: &x 2\nc: *x\n")
    assert doc == {"a": 1, "b": 2, "c": 2} and not problems


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 12):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    started = time.perf_counter()
    (_, _, problems), *_ = documents("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2
    assert "(an alias bomb?)" in problems[0][2] and problems[0][1].startswith("a")


def test_modest_reuse_of_anchors_is_fine() -> None:
    env = "[" + ", ".join(f"{{name: V{i}, value: x}}" for i in range(20)) + "]"
    text = f"common: &env {env}\ncontainers:\n" + "".join(
        f"- name: c{i}\n  env: *env\n" for i in range(200)
    )
    (_, doc, problems), *_ = documents(text)
    assert not problems and doc["containers"][199]["env"][19]["name"] == "V19"


def test_nesting_is_bounded_without_recursion() -> None:
    depth = MAX_DEPTH + 50
    (_, _, problems), *_ = documents("a: " + "[" * depth + "]" * depth + "\n")
    assert problems[0][2] == f"nested deeper than {MAX_DEPTH} levels"
    with pytest.raises(InputError, match=r"t\.yaml:1: invalid YAML: .*nesting depth"):
        documents("a: " + "[" * 20_000 + "]" * 20_000)


def test_a_stream_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "big.yaml"
    file.write_bytes(b"a: b\n---\n" * 100_000)
    with file.open("rb") as stream, pytest.raises(InputError, match="larger than 0 MiB"):
        list(yaml_documents(stream, str(file), limit=1 << 16))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"kind: Pod\nname: \xff\xfe\n", "invalid leading UTF-8 octet"),
        (b"\x7fELF\x02\x01\x01\x00\x00", "control characters are not allowed"),
        (b"\xff\xfe\x00binary", "incomplete UTF-16 character"),
    ],
)
def test_binary_and_invalid_utf8_are_not_text(tmp_path: Path, data: bytes, reason: str) -> None:
    file = tmp_path / "blob.yaml"
    file.write_bytes(data)
    with pytest.raises(InputError) as err:
        load_manifests([str(file)])
    assert str(err.value).startswith(f"{file}: not a text file ({reason} at byte ")


# -- only regular files are read --------------------------------------------------------------


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe\.yaml: not a regular file \(a pipe or a device\)"):
        load_manifests([str(fifo)])
    with pytest.raises(InputError, match=r"pipe\.yaml: not a regular file"):
        load_snapshot(fifo)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(GOOD))
    assert [o.name for o in load_manifests([str(tmp_path)]).objects["Deployment"]] == ["good"]


def test_a_device_is_never_read() -> None:
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        load_manifests(["/dev/zero"])
    with pytest.raises(InputError, match="/dev/zero: not a regular file"):
        load_snapshot("/dev/zero")


# -- one malformed object is not evaluated; the rest is scanned ---------------------------------


def _deployment(**spec: Any) -> dict[str, Any]:
    doc = workload(name="bad", containers=[bare_container("app")])
    doc["spec"].update(spec)
    return doc


def _binding(**fields: Any) -> dict[str, Any]:
    meta = {"name": "bad", "namespace": "shop"}
    doc = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta}
    return {**doc, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}, **fields}


def _policy(**spec: Any) -> dict[str, Any]:
    meta = {"name": "bad", "namespace": "shop"}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": spec,
    }


def _pod_spec(**fields: Any) -> dict[str, Any]:
    return _deployment(template={"spec": {"containers": [{"name": "app"}], **fields}})


def _container(**fields: Any) -> dict[str, Any]:
    return _deployment(template={"spec": {"containers": [{"name": "app", **fields}]}})


MALFORMED = {
    "spec is a string": (
        {**_deployment(), "spec": "x"},
        "spec is the string 'x', expected a mapping",
    ),
    "containers not a list": (
        _pod_spec(containers="app"),
        "spec.template.spec.containers is the string 'app', expected a list",
    ),
    "container not a mapping": (
        _pod_spec(containers=[5]),
        "spec.template.spec.containers[0] is int 5, expected a mapping",
    ),
    "securityContext a string": (
        _container(securityContext="x"),
        "containers[0].securityContext is the string 'x', expected a mapping",
    ),
    "runAsUser a string": (
        _container(securityContext={"runAsUser": "0"}),
        "securityContext.runAsUser is the string '0', expected an integer",
    ),
    "privileged a string": (
        _container(securityContext={"privileged": "true"}),
        "securityContext.privileged is the string 'true', expected a boolean",
    ),
    "capabilities not a mapping": (
        _container(securityContext={"capabilities": ["SYS_ADMIN"]}),
        "securityContext.capabilities is a list, expected a mapping",
    ),
    "env a mapping": (
        _container(env={"A": "b"}),
        "containers[0].env is a mapping, expected a list",
    ),
    "huge runAsUser": (
        _container(securityContext={"runAsUser": 10**30}),
        "runAsUser is an integer too large, expected an integer",
    ),
    "pod securityContext a list": (
        _pod_spec(securityContext=[]),
        "spec.template.spec.securityContext is a list, expected a mapping",
    ),
    "volumes hostPath a string": (
        _pod_spec(volumes=[{"name": "v", "hostPath": "/"}]),
        "volumes[0].hostPath is the string '/', expected a mapping",
    ),
    "CronJob jobTemplate a string": (
        {**workload(kind="CronJob", name="bad"), "spec": {"jobTemplate": "x"}},
        "spec.jobTemplate is the string 'x', expected a mapping",
    ),
    "subjects a string": (
        _binding(subjects="alice"),
        "subjects is the string 'alice', expected a list",
    ),
    "subject name a mapping": (
        _binding(subjects=[{"kind": "User", "name": {"a": 1}}]),
        "subjects[0].name is a mapping, expected a string",
    ),
    "roleRef a string": (
        _binding(roleRef="admin"),
        "roleRef is the string 'admin', expected a mapping",
    ),
    "podSelector a string": (_policy(podSelector="app"), "spec.podSelector is the string 'app'"),
    "policyTypes a number": (_policy(policyTypes=5), "spec.policyTypes is int 5, expected a list"),
    "ingress from a string": (
        _policy(ingress=[{"from": "x"}]),
        "spec.ingress[0].from is the string 'x', expected a list",
    ),
    "matchExpressions values a number": (
        _policy(podSelector={"matchExpressions": [{"key": "a", "operator": "In", "values": 3}]}),
        "spec.podSelector.matchExpressions[0].values is int 3, expected a list",
    ),
    "creationTimestamp garbage": (
        {
            **GOOD,
            "metadata": {"name": "bad", "namespace": "shop", "creationTimestamp": "yesterday"},
        },
        "metadata.creationTimestamp is the string 'yesterday', expected a timestamp",
    ),
    "creationTimestamp an int": (
        {**GOOD, "metadata": {"name": "bad", "namespace": "shop", "creationTimestamp": 1700000000}},
        "metadata.creationTimestamp is int 1700000000, expected a timestamp",
    ),
    "labels a list": (
        {**GOOD, "metadata": {"name": "bad", "namespace": "shop", "labels": ["a"]}},
        "metadata.labels is a list, expected a mapping",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_object_is_not_evaluated_and_the_rest_is_scanned(
    tmp_path: Path, case: str
) -> None:
    bad, reason = MALFORMED[case]
    file = tmp_path / "app.yaml"
    file.write_text(yaml.safe_dump_all([bad, GOOD], sort_keys=False))
    inv = load_manifests([str(file)])
    assert [o.name for o in inv.objects["Deployment"]] == ["good"]
    (skipped,) = inv.unevaluated
    assert (skipped.obj.kind, skipped.obj.name, skipped.obj.origin) == (
        bad["kind"],
        "bad",
        f"{file}:1",
    )
    assert reason in skipped.reason
    findings = run_checks(inv, Config(), now=NOW).findings
    unknown = [f for f in findings if f.resource.name == "bad"]
    assert unknown and {f.status for f in unknown} == {Status.UNKNOWN}
    assert all(f.message == f"could not evaluate: {skipped.reason}" for f in unknown)
    assert any(f.resource.name == "good" and f.status is Status.OPEN for f in findings)


def test_every_read_field_type_is_listed_for_every_supported_kind() -> None:
    assert all("metadata" in shape and "spec" in shape for shape in FIELD_TYPES.values())
    assert field_problem({"spec": {"x": 1}}, FIELD_TYPES["Deployment"]) is None
    assert field_problem({"metadata": {"name": None}}, FIELD_TYPES["Pod"]) is None  # null = unset


def test_documents_written_by_a_program_must_be_right() -> None:
    with pytest.raises(InputError, match=r"<test>:1: Deployment bad: spec is the string 'x'"):
        objects_from_documents([{**_deployment(), "spec": "x"}], "<test>")


def test_a_yaml_problem_leaves_its_object_unevaluated_with_the_line(tmp_path: Path) -> None:
    bad = yaml.safe_dump({**_deployment(), "spec": {"replicas": 1}}, sort_keys=False)
    file = tmp_path / "app.yaml"
    file.write_text(
        yaml.safe_dump(GOOD) + "---\n" + bad.replace("replicas: 1", "replicas: " + "9" * 5000)
    )
    inv = load_manifests([str(file)])
    (skipped,) = inv.unevaluated
    assert skipped.obj.name == "bad" and [o.name for o in inv.objects["Deployment"]] == ["good"]
    assert (
        skipped.reason.startswith("line ") and ", spec.replicas: cannot read '999" in skipped.reason
    )


def test_a_problem_that_hides_the_identity_is_one_error_naming_it(tmp_path: Path) -> None:
    file = tmp_path / "app.yaml"
    file.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: !Ref db\n")
    with pytest.raises(InputError) as err:
        load_manifests([str(file)])
    assert str(err.value) == f"{file}:4: metadata.name: unknown tag '!Ref'"


def test_one_bad_item_of_a_list_is_the_only_one_not_evaluated(tmp_path: Path) -> None:
    bad = {**_deployment(), "spec": {"replicas": 1}}
    items = [GOOD, bad, {**GOOD, "metadata": {"name": "other", "namespace": "shop"}}]
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False)
    text = text.replace("replicas: 1", "replicas: 2020-13-45")
    file = tmp_path / "list.yaml"
    file.write_text(text)
    inv = load_manifests([str(file)])
    assert sorted(o.name for o in inv.objects["Deployment"]) == ["good", "other"]
    (skipped,) = inv.unevaluated
    assert skipped.obj.origin == f"{file}:1 (items[1])"
    assert "items[1].spec.replicas: cannot read '2020-13-45' as timestamp" in skipped.reason


def test_a_kubectl_list_document_is_read_item_by_item() -> None:
    items = [{**GOOD, "metadata": {"name": f"w{i}", "namespace": "shop"}} for i in range(50)]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    inv = load_manifests(["-"], stdin_text=text)
    assert len(inv.objects["Deployment"]) == 50 and not inv.unevaluated


# -- snapshots ----------------------------------------------------------------------------------


def _snapshot(tmp_path: Path, header: dict[str, Any], *objects: Any) -> Path:
    path = tmp_path / "snap.jsonl"
    lines = [{"schema": SNAPSHOT_SCHEMA, "cluster": {"name": "c"}, **header}, *objects]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            {"skipped_kinds": {"Pod": "x"}},
            "skipped_kinds.Pod is the string 'x', expected an integer",
        ),
        ({"skipped_kinds": []}, "skipped_kinds is a list, expected a mapping"),
        ({"kubeconfig": {"users": "x"}}, "kubeconfig.users is the string 'x', expected a list"),
        ({"kubeconfig": {"users": [{"auth": [1]}]}}, "kubeconfig.users[0].auth[0] is int 1"),
        ({"incomplete": [1]}, "incomplete[0] is int 1, expected a mapping"),
        (
            {"captured_at": "last week"},
            "captured_at is the string 'last week', expected a timestamp",
        ),
        ({"oci": "x"}, "oci is the string 'x', expected a mapping"),
        ({"oci": {"cluster": 5}}, "oci.cluster is int 5, expected a mapping"),
        ({"oci": {"region": "r", "subnets": {"s": {}}}}, "'oci' cannot be read (TypeError: "),
        ({"oci": {"region": None}}, "oci.region is null, expected a value"),
        ({"schema": "x" * 5000}, "not an okeguard snapshot (schema is 'xxxxx"),
        ({"cluster": {"name": ["c"]}}, "cluster: 'name' is missing or not a str"),
    ],
)
def test_a_garbage_snapshot_header_is_one_error(
    tmp_path: Path, header: dict[str, Any], message: str
) -> None:
    path = _snapshot(tmp_path, header, GOOD)
    with pytest.raises(InputError) as err:
        load_snapshot(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert len(str(err.value)) < 300 and "\n" not in str(err.value)


def test_a_malformed_object_in_a_snapshot_is_not_evaluated(tmp_path: Path) -> None:
    path = _snapshot(tmp_path, {}, GOOD, {**_deployment(), "spec": [1]})
    inv = load_snapshot(path)
    assert [o.name for o in inv.objects["Deployment"]] == ["good"]
    (skipped,) = inv.unevaluated
    assert skipped.reason == f"{path}:3: spec is a list, expected a mapping"


# -- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:59-23:00", "0001-01-01T00:00:00+23:00", "x" * 10_000, "9" * 5000, 1e300],
)
def test_a_time_outside_what_datetime_holds_names_no_instant(value: object) -> None:
    assert parse_timestamp(value) is None


# -- a message about a field that may hold a credential never quotes its value ----------------


def test_a_mistyped_credential_field_is_named_without_its_value() -> None:
    env = [{"name": "DB_PASSWORD", "value": 918273645501}]
    problem = field_problem(_container(env=env), FIELD_TYPES["Deployment"])
    assert problem is not None and "env[0].value" in problem
    assert "918273645501" not in problem and "of type int" in problem
    # an ordinary field still shows what it holds, so the user can find it
    shown = field_problem(_container(securityContext="x"), FIELD_TYPES["Deployment"])
    assert shown is not None and "'x'" in shown


def test_an_unreadable_credential_value_is_named_without_its_value(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: c, namespace: shop, labels: {team: !Ref blue-0xbeef}}\n"
        "data:\n  password: !Ref s3cr3t-0xfeed\n"
    )
    problems = [p for _, _, found in yaml_documents(text, "c.yaml") for p in found]
    by_field = {p.field: p.message for p in problems}
    assert "s3cr3t-0xfeed" not in by_field["data.password"]
    assert "may be a secret" in by_field["data.password"]
    assert "may be a secret" not in by_field["metadata.labels.team"]  # only credential fields
