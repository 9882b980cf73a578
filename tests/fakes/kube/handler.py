"""The HTTP side of the fake Kubernetes API: the server, the request handler (recording,
auth, faults, routing to reads and writes) and the fault and version bodies."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.kube.model import RecordedRequest, _ApiError, status_body

if TYPE_CHECKING:
    from tests.fakes.kube.store import FakeKubeApi


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> tuple[Any, bool]:
        """The request body parsed as JSON (raw text if not JSON) and whether it parsed."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None, True
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text), True
        except ValueError:
            return text, False

    def _handle(self, method: str) -> None:
        api = self.api
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        body, parsed = self._read_body()  # always read, so the connection stays usable
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip() or None
        authorized = self.headers.get("Authorization") == f"Bearer {api.token}"
        with api._lock:
            api.requests.append(
                RecordedRequest(method, path, query, authorized, body, content_type)
            )
        if api.delay:
            time.sleep(api.delay)
        if api.global_status is not None:
            return self._send(api.global_status, _fault_body(api.global_status, path, None))
        if not authorized:
            return self._send(401, _fault_body(401, path, None))
        fault = api._take_fault(path, method)
        if fault is not None:
            verb = _VERBS.get(method, "list")
            return self._send(fault.status, _fault_body(fault.status, path, fault.message, verb))
        if method == "GET" and path in ("/version", "/version/"):
            return self._send(200, _version(api.git_version))
        route = api._route(path)
        if route is None:
            return self._send(404, _fault_body(404, path, None))
        kind, namespace, name = route
        try:
            if method == "GET":
                result = (
                    api._read_one(kind, namespace, name)
                    if name is not None
                    else api._read_list(kind, namespace, path, query)
                )
            elif not parsed:
                message = "the body of the request could not be decoded as JSON"
                raise _ApiError(400, status_body(400, message, "BadRequest"))
            else:
                result = api._write(method, route, query, body, content_type)
        except _ApiError as err:
            return self._send(err.status, err.body)
        return self._send(result.status, result.body)


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


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


def _fault_body(status: int, path: str, message: str | None, verb: str = "list") -> dict[str, Any]:
    resource = path.rstrip("/").rsplit("/", 1)[-1]
    parts = path.split("/")
    group = parts[2] if path.startswith("/apis/") and len(parts) > 2 else ""
    if status == 403:
        text = message or (
            f'{resource} is forbidden: User "system:serviceaccount:okeguard:okeguard" cannot '
            f'{verb} resource "{resource}" in API group "{group}" at the cluster scope'
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
