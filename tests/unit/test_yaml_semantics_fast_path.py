"""Manifests are read with YAML 1.1 as Kubernetes and PyYAML read it, on every path okeguard uses.

okeguard does not load manifests with ``yaml.safe_load``: it builds objects straight from
libyaml's events (:mod:`okeguard.inventory.yaml_stream`), from a stream in chunks or from a
string, in this process or in worker processes (:mod:`okeguard.inventory.parallel`). A faster
parser that read ``privileged: yes`` as the string ``"yes"`` would miss a privileged container,
so each of these paths must give exactly what ``yaml.safe_load_all`` gives.

Not tried: PyYAML's ``CSafeLoader`` has no C constructor to take a shortcut through (only its
parser is C; composing and constructing are Python, slower than building from events), and
libfyaml 1.0.0b2's ``yaml1.1`` mode reads ``y``/``n`` as booleans (``y: 1`` becomes
``{True: 1}``), ``1:30`` and timestamps as strings and ``!!binary`` undecoded, and reports no
line numbers, so it is not used (see docs/benchmarks.md).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from okeguard.inventory.parallel import map_in_order
from okeguard.inventory.yaml_stream import yaml_documents

# Plain scalars whose YAML 1.1 meaning is not a string, and look-alikes that stay strings.
EDGE_SCALARS = [
    # booleans: yes/no/on/off in any of three cases; y and n are strings to PyYAML
    *("yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"),
    *("true", "True", "TRUE", "false", "False", "FALSE", "y", "Y", "n", "N", "yES", "oN"),
    # integers: octal 0755, 0o17 (a string in 1.1), hex, binary, underscores, sexagesimal
    *("0755", "0o17", "09", "0x1F", "0x_1f", "0b1010", "-0b11", "1_000", "+12", "-0", "0"),
    *(
        "1:30",
        "-1:30",
        "190:20:30",
        "1:60",
        "12345678901234567890123456789",
        "-99999999999999999999",
    ),
    # floats: .inf, .nan, exponents (1e3 is a string in 1.1), a trailing dot
    *(
        ".inf",
        ".Inf",
        "-.INF",
        "+.inf",
        ".nan",
        ".NaN",
        "1e3",
        "1.0e+3",
        "6.8523015e+5",
        "0.",
        "-.5",
    ),
    *("685_230.15", "190:20:30.15", "1.2.3"),
    # null
    *("~", "null", "Null", "NULL", "nUll"),
    # timestamps: dates, date-times with and without zones, a space, lower-case t
    *(
        "2002-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10",
        "2001-12-15 2:59:43.10",
    ),
    *("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+02:00", "2024-5-1"),
    # strings that look like something else
    *("0o", "._", "1.", "True1", "null0", "v1.2", "8080/TCP", "http://x:80", "a: b"),
]

DOCUMENTS = [
    "\n".join(f"k{i}: {text}" for i, text in enumerate(EDGE_SCALARS) if text != "a: b"),
    "list: [" + ", ".join(t for t in EDGE_SCALARS if "," not in t and ":" not in t) + "]",
    # Kubernetes fields in their YAML 1.1 spellings
    """apiVersion: v1
kind: Pod
metadata: {name: p, creationTimestamp: 2024-05-01T10:00:00Z, labels: {on: yes, n: no}}
spec:
  hostNetwork: on
  hostPID: yes
  securityContext: {runAsNonRoot: yes, runAsUser: 0}
  volumes: [{name: v, configMap: {name: c, defaultMode: 0755}}]
  containers:
  - name: c
    securityContext: {privileged: yes, allowPrivilegeEscalation: On, readOnlyRootFilesystem: off}
    ports: [{containerPort: 0x1F90}]
""",
    # keys: booleans, null, integers and timestamps as keys; y stays a string
    "yes: 1\nno: 2\non: 3\ny: 4\nn: 5\n~: 6\n0755: 7\n2024-05-01: 8\n1:30: 9\n",
    # merge keys: one mapping, a list of mappings (the first wins), the mapping's own keys win
    """base: &base {a: 1, b: 2}
other: &other {b: 3, c: 4}
one:
  <<: *base
  b: 20
two:
  <<: [*base, *other]
  d: 5
three: {<<: *other, c: 40}
""",
    # anchors and aliases of scalars, lists and mappings; tags of the YAML types
    """a: &x yes
b: *x
c: &l [1, 2]
d: *l
e: !!str 0755
f: !!int "0755"
g: !!float "1"
h: !!binary aGVsbG8=
i: !!bool "yes"
j: !!null ""
k: !!timestamp 2024-05-01
l: !!set {a, b}
m: !!omap [{x: 1}, {y: 2}]
n: !!seq [1]
o: !!map {p: 1}
""",
    # block scalars, quoting, flow collections, comments, empty values
    """literal: |
  yes
  0755
folded: >-
  on
  off
single: 'yes'
double: "0755\\ttab"
empty:
flow: {a: [], b: {}, c: [~, '', ""]}
# a comment
""",
    # several documents, an empty one between them, an explicit end
    "---\na: 1\n---\n---\nb: on\n...\n---\n- x\n- 0755\n",
    # a kind: List, as kubectl get -o yaml prints it
    """apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {k: yes}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}, data: {k: 0755}}
""",
    # JSON is YAML too
    '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "eWVz"}, "n": 1e3}',
]


def _comparable(value: Any) -> Any:
    """``value`` with NaN replaced (NaN equals nothing, not even itself) and sets sorted."""
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"
    if isinstance(value, dict):
        return {_comparable(k): _comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_comparable(v) for v in value)
    if isinstance(value, set):
        return sorted(map(repr, value))
    return value


def _with_types(value: Any) -> Any:
    """``value`` with the type of every scalar beside it: True must not pass for 1, nor 1.0."""
    if isinstance(value, dict):
        return {(type(k).__name__, k): _with_types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_with_types(v) for v in value]
    return (type(value).__name__, value)


def _expected(text: str) -> Any:
    return _with_types(_comparable(list(yaml.safe_load_all(text))))


def _from_stream(text: str) -> Any:
    docs = [doc for _, doc, problems in yaml_documents(io.BytesIO(text.encode()), "t.yaml")]
    return _with_types(_comparable(docs))


def _from_string(text: str) -> Any:
    return _with_types(_comparable([doc for _, doc, _ in yaml_documents(text, "t.yaml")]))


def _from_file(path: Path) -> Any:
    with path.open("rb") as stream:
        docs = [doc for _, doc, problems in yaml_documents(stream, str(path)) if not problems]
    return _with_types(_comparable(docs))


@pytest.mark.parametrize("text", DOCUMENTS, ids=range(len(DOCUMENTS)))
@pytest.mark.parametrize("read", [_from_stream, _from_string], ids=["stream", "string"])
def test_documents_read_as_pyyaml_safe_load_reads_them(read: Any, text: str) -> None:
    assert read(text) == _expected(text)


def test_the_yaml_1_1_spellings_kubernetes_relies_on() -> None:
    (pod,) = [doc for _, doc, _ in yaml_documents(DOCUMENTS[2], "pod.yaml")]
    spec = pod["spec"]
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["privileged"] is True
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 0o755
    assert pod["metadata"]["labels"] == {True: True, "n": False}


def test_documents_read_in_worker_processes_are_the_same(tmp_path: Path) -> None:
    files = []
    for index, text in enumerate(DOCUMENTS):
        path = tmp_path / f"doc{index}.yaml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    sizes = [path.stat().st_size for path in files]
    read = list(map_in_order(_from_file, files, sizes, workers=2, min_bytes=0))
    assert read == [_expected(path.read_text(encoding="utf-8")) for path in files]


def test_a_chunk_boundary_inside_a_scalar_changes_nothing() -> None:
    # the stream is read in chunks: a value split across two reads must come out whole
    text = "".join(f"key{i}: {EDGE_SCALARS[i % len(EDGE_SCALARS)]!r}\n" for i in range(20000))
    assert _from_stream(text) == _expected(text)


_plain = st.sampled_from([t for t in EDGE_SCALARS if t not in ("a: b", "http://x:80")])
_key = st.one_of(st.sampled_from(["a", "b", "y", "n", "on", "yes", "0755", "~"]), _plain)
_tree = st.recursive(
    _plain,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=4)),
    max_leaves=20,
)


def _dump(value: Any, indent: int = 0) -> str:
    """Block-style YAML with every scalar written plain, so the resolver decides its type."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "\n" + "".join(f"{pad}{k}: {_dump(v, indent + 2)}\n" for k, v in value.items())
    if isinstance(value, list):
        if not value:
            return "[]"
        return "\n" + "".join(f"{pad}- {_dump(v, indent + 2).lstrip()}\n" for v in value)
    return str(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(_key, _tree, min_size=1, max_size=5))
def test_any_tree_of_edge_scalars_reads_as_pyyaml_reads_it(tree: dict[str, Any]) -> None:
    text = _dump(tree).strip("\n") + "\n"
    try:
        expected = _expected(text)
    except yaml.YAMLError:
        return  # not valid YAML as written (e.g. a duplicate layout): nothing to compare
    assert _from_stream(text) == expected
