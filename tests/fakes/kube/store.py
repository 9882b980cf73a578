"""The fake Kubernetes API's state: ``FakeKubeApi`` (objects, recorded requests, faults,
lifecycle and reads), ``running_fake_kube_api`` and ``closed_port``."""

from __future__ import annotations

import copy
import json
import random
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from okeguard.inventory.model import CLUSTER_SCOPED_KINDS, SUPPORTED_KINDS
from tests.fakes.kube.handler import _Handler, _Server
from tests.fakes.kube.model import (
    _SAFE_CHARS,
    _UID_NAMESPACE,
    DEFAULT_TOKEN,
    RecordedRequest,
    _ApiError,
    _Fault,
    _Result,
    status_body,
)
from tests.fakes.kube.patching import parse_label_selector
from tests.fakes.kube.paths import (
    _ROUTES,
    _decode_token,
    _encode_token,
    _prefix,
    _route,
    list_path,
    plural,
)
from tests.fakes.kube.rollouts import RolloutSimulation, _Rollout
from tests.fakes.kube.writes import Writes
from tests.fakes.serving import ServesHttp


@dataclass
class FakeKubeApi(RolloutSimulation, Writes, ServesHttp):
    """The fake's state: objects by kind, recorded requests and switchable faults."""

    token: str = DEFAULT_TOKEN
    git_version: str = "v1.30.1"
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: dict[str, _Fault] = field(default_factory=dict)
    method_faults: dict[tuple[str, str], _Fault] = field(default_factory=dict)
    global_status: int | None = None
    delay: float = 0.0
    resource_version: int = 1000
    token_epoch: int = 0
    expire_next_continue: bool = False  # the next request with a continue token gets 410
    kubeconfig_path: Path | None = None  # the last kubeconfig written by write_kubeconfig
    daemonset_nodes: int = 3  # the nodes a simulated DaemonSet runs on
    seed: int = 0  # seeds generated tokens and names
    rollouts: dict[tuple[str, str | None, str], _Rollout] = field(default_factory=dict)
    # workloads whose controller is paused: their rollouts wait until released
    held_rollouts: set[tuple[str, str | None, str]] = field(default_factory=set)
    _custom_routes: dict[tuple[str, str], str] = field(default_factory=dict)
    _custom_kinds: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (v, plural)
    _custom_cluster_scoped: set[str] = field(default_factory=set)
    _pending_tokens: set[tuple[str | None, str]] = field(default_factory=set)
    _rng: random.Random = field(default_factory=random.Random)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeKubeApi:
        self._serve(_Server, _Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self,
        path: Path,
        *,
        context: str = "fake",
        token: str | None = None,
        server: str | None = None,
    ) -> Path:
        """Write a kubeconfig whose ``context`` points at this server with a bearer token."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": context,
            "clusters": [{"name": f"{context}-cluster", "cluster": {"server": server or self.url}}],
            "users": [{"name": f"{context}-user", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": f"{context}-cluster", "user": f"{context}-user"},
                }
            ],
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        self.kubeconfig_path = path
        return path

    # -- objects ---------------------------------------------------------------------------
    def add(self, *docs: Mapping[str, Any]) -> None:
        """Store objects (dicts with ``kind``); kind/apiVersion are dropped like a real store."""
        with self._lock:
            for doc in docs:
                item = copy.deepcopy(dict(doc))
                kind = item.pop("kind")
                item.pop("apiVersion", None)
                meta = item.setdefault("metadata", {})
                if not self._cluster_scoped(kind):
                    meta.setdefault("namespace", "default")
                self.resource_version += 1
                meta.setdefault("resourceVersion", str(self.resource_version))
                meta.setdefault("uid", f"uid-{kind.lower()}-{self.resource_version}")
                meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
                self.objects.setdefault(kind, []).append(item)

    def add_custom(
        self,
        api_version: str,
        plural: str,
        kind: str,
        *docs: Mapping[str, Any],
        namespaced: bool = True,
    ) -> None:
        """Serve the custom resource ``kind`` at ``/apis/{api_version}/…/{plural}`` and store
        ``docs`` of it (``kind``/``apiVersion`` in them are optional)."""
        if "/" not in api_version:
            raise ValueError(f"a custom resource needs a group: {api_version!r}")
        with self._lock:
            self._custom_routes[(_prefix(api_version), plural)] = kind
            self._custom_kinds[kind] = (api_version, plural)
            if not namespaced:
                self._custom_cluster_scoped.add(kind)
        self.add(*({**doc, "kind": kind} for doc in docs))

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """A copy of the stored object (as stored, without kind/apiVersion); KeyError if none."""
        with self._lock:
            index = self._find(kind, namespace, name)
            if index is None:
                raise KeyError((kind, namespace, name))
            return copy.deepcopy(self.objects[kind][index])

    def count(self, kind: str) -> int:
        return len(self.objects.get(kind, ()))

    def api_version(self, kind: str) -> str:
        """The apiVersion of a built-in or registered custom kind."""
        if kind in self._custom_kinds:
            return self._custom_kinds[kind][0]
        return SUPPORTED_KINDS[kind]

    def resource(self, kind: str) -> str:
        """The resource name as error messages qualify it: ``deployments.apps``, ``pods``."""
        group = self.api_version(kind).rpartition("/")[0]
        name = self._custom_kinds[kind][1] if kind in self._custom_kinds else plural(kind)
        return f"{name}.{group}" if group else name

    # -- faults and recording --------------------------------------------------------------
    def fail(
        self,
        path: str,
        status: int,
        message: str | None = None,
        times: int | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer requests to ``path`` with ``status`` (``times`` times, or until cleared);
        only requests with ``method`` (``"PATCH"``…) when given."""
        fault = _Fault(status, message, times)
        if method is None:
            self.faults[path] = fault
        else:
            self.method_faults[(method.upper(), path)] = fault

    def forbid(self, kind: str) -> None:
        """Answer the cluster-wide list of ``kind`` with 403 Forbidden, as RBAC would."""
        self.fail(list_path(kind), 403)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.method_faults.clear()
        self.global_status = None
        self.delay = 0.0

    def expire_continue_tokens(self) -> None:
        """Make every continue token handed out so far invalid (the next use gets 410)."""
        self.token_epoch += 1

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests to ``path`` (with ``method`` only, when given)."""
        return [
            r
            for r in self.requests
            if r.path == path and (method is None or r.method == method.upper())
        ]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, path: str, method: str = "GET") -> _Fault | None:
        with self._lock:
            key: Any
            for faults, key in ((self.method_faults, (method, path)), (self.faults, path)):
                fault = faults.get(key)
                if fault is None:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del faults[key]
                return fault
            return None

    # -- routing and lookup (callers hold the lock where the store may change) --------------
    def _cluster_scoped(self, kind: str) -> bool:
        return kind in CLUSTER_SCOPED_KINDS or kind in self._custom_cluster_scoped

    def _route(self, path: str) -> tuple[str, str | None, str | None] | None:
        return _route(path, {**_ROUTES, **self._custom_routes}, self._cluster_scoped)

    def _find(self, kind: str, namespace: str | None, name: str) -> int | None:
        for index, item in enumerate(self.objects.get(kind, ())):
            meta = item["metadata"]
            if meta.get("name") == name and meta.get("namespace") == namespace:
                return index
        return None

    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _uid(self, *parts: Any) -> str:
        return str(uuid.uuid5(_UID_NAMESPACE, json.dumps(parts)))

    def _random_name(self, length: int = 5) -> str:
        return "".join(self._rng.choice(_SAFE_CHARS) for _ in range(length))

    def _wire(self, kind: str, item: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a stored object as the server sends it (with kind and apiVersion)."""
        return {"kind": kind, "apiVersion": self.api_version(kind), **copy.deepcopy(dict(item))}

    # -- reads -----------------------------------------------------------------------------
    def _read_one(self, kind: str, namespace: str | None, name: str) -> _Result:
        with self._lock:
            index = self._find(kind, namespace, name)
            if index is not None:
                item = self.objects[kind][index]
                self._observe(kind, item)
                return _Result(200, self._wire(kind, item))
            if kind == "Pod":
                for pod in self._synthesized_pods(namespace):
                    if pod["metadata"]["name"] == name:
                        return _Result(200, self._wire(kind, pod))
            raise self._not_found(kind, name)

    def _read_list(
        self, kind: str, namespace: str | None, path: str, query: Mapping[str, list[str]]
    ) -> _Result:
        try:
            selector = parse_label_selector((query.get("labelSelector") or [""])[0])
        except ValueError as err:
            raise _ApiError(400, status_body(400, str(err), "BadRequest")) from None
        with self._lock:
            items = [
                i
                for i in self.objects.get(kind, ())
                if namespace is None or i["metadata"].get("namespace") == namespace
            ]
            if kind == "Pod":
                items += self._synthesized_pods(namespace)
            items = [i for i in items if selector(i["metadata"].get("labels") or {})]
            token = (query.get("continue") or [""])[0]
            if token and self.expire_next_continue:
                self.expire_next_continue = False
                self.token_epoch += 1
            epoch, list_version = self.token_epoch, str(self.resource_version)
            offset = 0
            if token:
                decoded = _decode_token(token, path, epoch)
                if decoded is None:
                    message = "The provided continue parameter is too old to display a consistent list result."
                    raise _ApiError(410, status_body(410, message, "Expired"))
                offset = decoded
            limit_text = (query.get("limit") or ["0"])[0]
            limit = int(limit_text) if limit_text.isdigit() else 0
            end = offset + limit if limit > 0 else len(items)
            page = items[offset:end]
            for item in page:
                self._observe(kind, item)
            metadata: dict[str, Any] = {"resourceVersion": str(self.resource_version)}
            if end < len(items):
                # the token keeps the version of the first page, as the real server's does
                metadata["continue"] = _encode_token(path, end, epoch, list_version)
                metadata["remainingItemCount"] = len(items) - end
            body = {
                "kind": f"{kind}List",
                "apiVersion": self.api_version(kind),
                "metadata": metadata,
                "items": copy.deepcopy(page),
            }
        return _Result(200, body)


@contextmanager
def running_fake_kube_api(
    objects: Iterable[Mapping[str, Any]] = (), **kwargs: Any
) -> Iterator[FakeKubeApi]:
    """Start a fake API server holding ``objects``; stop it on exit."""
    api = FakeKubeApi(**kwargs)
    api.add(*objects)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
