"""A fake Kubernetes API server: a real HTTP server on 127.0.0.1 speaking the Kubernetes REST API.

It serves ``GET /version``, the cluster-wide list path of every kind in ``SUPPORTED_KINDS``
(``/api/v1/pods``, ``/apis/apps/v1/deployments``…), the namespaced list paths
(``/api/v1/namespaces/{ns}/pods``) and single-object GETs. Lists are ``<Kind>List`` bodies that
honour ``limit`` and ``continue`` (opaque base64 tokens; an invalid or expired one gets a
``410 Gone`` Status). Items are stored without ``kind``/``apiVersion``, as a real server lists
them. A bearer token is required. Every request is recorded; faults can be switched on per path
(403/404/500… with a proper ``Status`` body), globally (e.g. 401), and a delay added.

Point the real ``kubernetes`` client at it with :meth:`FakeKubeApi.write_kubeconfig`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from okeguard.inventory.model import CLUSTER_SCOPED_KINDS, SUPPORTED_KINDS
from tests.fakes.serving import ServesHttp

DEFAULT_TOKEN = "fake-kube-token-0123456789abcdef"


def plural(kind: str) -> str:
    """The resource name of a kind: ``NetworkPolicy`` -> ``networkpolicies``."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def list_path(kind: str, namespace: str | None = None) -> str:
    """The list path of ``kind``: cluster-wide, or in ``namespace`` for a namespaced kind."""
    api_version = SUPPORTED_KINDS[kind]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace is None:
        return f"{prefix}/{plural(kind)}"
    return f"{prefix}/namespaces/{namespace}/{plural(kind)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# (api prefix, resource) -> kind, for routing
_ROUTES: dict[tuple[str, str], str] = {
    ("/api/v1" if v == "v1" else f"/apis/{v}", plural(k)): k for k, v in SUPPORTED_KINDS.items()
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (the Authorization header is not kept)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    authorized: bool


@dataclass
class _Fault:
    status: int
    message: str | None
    remaining: int | None  # None: forever


@dataclass
class FakeKubeApi(ServesHttp):
    """The fake's state: objects by kind, recorded requests and switchable faults."""

    token: str = DEFAULT_TOKEN
    git_version: str = "v1.30.1"
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: dict[str, _Fault] = field(default_factory=dict)
    global_status: int | None = None
    delay: float = 0.0
    resource_version: int = 1000
    token_epoch: int = 0
    expire_next_continue: bool = False  # the next request with a continue token gets 410
    kubeconfig_path: Path | None = None  # the last kubeconfig written by write_kubeconfig
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
                if kind not in CLUSTER_SCOPED_KINDS:
                    meta.setdefault("namespace", "default")
                self.resource_version += 1
                meta.setdefault("resourceVersion", str(self.resource_version))
                meta.setdefault("uid", f"uid-{kind.lower()}-{self.resource_version}")
                meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
                self.objects.setdefault(kind, []).append(item)

    def count(self, kind: str) -> int:
        return len(self.objects.get(kind, ()))

    # -- faults and recording --------------------------------------------------------------
    def fail(
        self, path: str, status: int, message: str | None = None, times: int | None = None
    ) -> None:
        """Answer requests to ``path`` with ``status`` (``times`` times, or until cleared)."""
        self.faults[path] = _Fault(status, message, times)

    def forbid(self, kind: str) -> None:
        """Answer the cluster-wide list of ``kind`` with 403 Forbidden, as RBAC would."""
        self.fail(list_path(kind), 403)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.global_status = None
        self.delay = 0.0

    def expire_continue_tokens(self) -> None:
        """Make every continue token handed out so far invalid (the next use gets 410)."""
        self.token_epoch += 1

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            fault = self.faults.get(path)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[path]
            return fault


def status_body(
    code: int, message: str, reason: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` object as the API server returns with an error."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


def _fault_body(status: int, path: str, message: str | None) -> dict[str, Any]:
    resource = path.rstrip("/").rsplit("/", 1)[-1]
    parts = path.split("/")
    group = parts[2] if path.startswith("/apis/") and len(parts) > 2 else ""
    if status == 403:
        text = message or (
            f'{resource} is forbidden: User "system:serviceaccount:okeguard:okeguard" cannot '
            f'list resource "{resource}" in API group "{group}" at the cluster scope'
        )
        return status_body(403, text, "Forbidden", {"group": group, "kind": resource})
    if status == 404:
        return status_body(
            404, message or "the server could not find the requested resource", "NotFound"
        )
    if status == 401:
        return status_body(401, message or "Unauthorized", "Unauthorized")
    if status >= 500:
        return status_body(
            status, message or "Internal error occurred: etcd timed out", "InternalError"
        )
    return status_body(
        status, message or HTTPStatus(status).phrase, HTTPStatus(status).phrase.replace(" ", "")
    )


def _encode_token(path: str, offset: int, epoch: int, resource_version: str) -> str:
    raw = json.dumps({"p": path, "o": offset, "e": epoch, "rv": resource_version}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str, path: str, epoch: int) -> int | None:
    """The offset a continue token encodes, or None when it is invalid or expired."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("p") != path or data.get("e") != epoch:
        return None
    offset = data.get("o")
    return offset if isinstance(offset, int) and offset >= 0 else None


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubeApi
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        api = self.api
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        authorized = self.headers.get("Authorization") == f"Bearer {api.token}"
        with api._lock:
            api.requests.append(RecordedRequest("GET", path, query, authorized))
        if api.delay:
            time.sleep(api.delay)
        if api.global_status is not None:
            return self._send(api.global_status, _fault_body(api.global_status, path, None))
        if not authorized:
            return self._send(401, _fault_body(401, path, None))
        fault = api._take_fault(path)
        if fault is not None:
            return self._send(fault.status, _fault_body(fault.status, path, fault.message))
        if path in ("/version", "/version/"):
            return self._send(200, _version(api.git_version))
        route = _route(path)
        if route is None:
            return self._send(404, _fault_body(404, path, None))
        kind, namespace, name = route
        if name is not None:
            return self._get_one(kind, namespace, name)
        return self._list(kind, namespace, path, query)

    def _get_one(self, kind: str, namespace: str | None, name: str) -> None:
        for item in self.api.objects.get(kind, ()):
            meta = item["metadata"]
            if meta.get("name") == name and meta.get("namespace") == namespace:
                doc = {"kind": kind, "apiVersion": SUPPORTED_KINDS[kind], **item}
                return self._send(200, doc)
        resource = plural(kind)
        return self._send(
            404,
            status_body(
                404, f'{resource} "{name}" not found', "NotFound", {"name": name, "kind": resource}
            ),
        )

    def _list(
        self, kind: str, namespace: str | None, path: str, query: Mapping[str, list[str]]
    ) -> None:
        api = self.api
        with api._lock:
            items = [
                i
                for i in api.objects.get(kind, ())
                if namespace is None or i["metadata"].get("namespace") == namespace
            ]
            epoch, resource_version = api.token_epoch, str(api.resource_version)
        offset = 0
        token = (query.get("continue") or [""])[0]
        if token and api.expire_next_continue:
            with api._lock:
                api.expire_next_continue = False
                api.token_epoch += 1
                epoch = api.token_epoch
        if token:
            decoded = _decode_token(token, path, epoch)
            if decoded is None:
                message = "The provided continue parameter is too old to display a consistent list result."
                return self._send(410, status_body(410, message, "Expired"))
            offset = decoded
        limit_text = (query.get("limit") or ["0"])[0]
        limit = int(limit_text) if limit_text.isdigit() else 0
        end = offset + limit if limit > 0 else len(items)
        page = items[offset:end]
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if end < len(items):
            metadata["continue"] = _encode_token(path, end, epoch, resource_version)
            metadata["remainingItemCount"] = len(items) - end
        api_version = SUPPORTED_KINDS[kind]
        self._send(
            200,
            {"kind": f"{kind}List", "apiVersion": api_version, "metadata": metadata, "items": page},
        )


def _version(git_version: str) -> dict[str, str]:
    major, minor = git_version.lstrip("v").split(".")[:2]
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _route(path: str) -> tuple[str, str | None, str | None] | None:
    """(kind, namespace, name) for a list or get path, or None when the path is not served."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest = "/api/v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        prefix, rest = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":  # /namespaces/{ns}/{resource}[/{name}]
        namespace, rest = rest[1], rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces" and prefix == "/api/v1":
        return "Namespace", None, rest[1]  # GET /api/v1/namespaces/{name}
    if not rest or len(rest) > 2:
        return None
    kind = _ROUTES.get((prefix, rest[0]))
    if kind is None or (namespace is not None and kind in CLUSTER_SCOPED_KINDS):
        return None
    return kind, namespace, rest[1] if len(rest) == 2 else None


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
