"""The HTTP side of the fake OCI API: the server and the request handler (recording, auth,
delays and faults; reads, paged lists and secret bundles; writes with retry tokens and
``if-match``)."""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.oci.model import (
    _ID,
    COLLECTIONS,
    RecordedRequest,
    _fail,
    _param,
    _Reply,
    error_body,
)
from tests.fakes.oci.writes import _WRITES, _stale

if TYPE_CHECKING:
    from tests.fakes.oci.store import FakeOciApi


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_GET_LISTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/20180222/nodePools"), "nodePools"),
    (re.compile(rf"/20160918/networkSecurityGroups/{_ID}/securityRules"), "nsgRules"),
    (re.compile(r"/20160918/networkSecurityGroups"), "nsgs"),
    (re.compile(r"/20160918/compartments"), "compartments"),
    (re.compile(r"/20200531/logGroups"), "logGroups"),
    (re.compile(rf"/20200531/logGroups/{_ID}/logs"), "logs"),
    (re.compile(r"/20180608/secrets"), "secrets"),
    (re.compile(rf"/20180608/secrets/{_ID}/versions"), "secretVersions"),
    (re.compile(r"/20180222/workRequests"), "workRequests"),
    (re.compile(rf"/20180222/workRequests/{_ID}/errors"), "workRequestErrors"),
]
_ONE = re.compile(r"(/\d{8})/([A-Za-z]+)/([^/]+)")
_WORK_REQUEST = re.compile(rf"/20180222/workRequests/{_ID}")
_SECRET_READ = re.compile(rf"/20180608/secrets/{_ID}(?:/versions)?|/20190301/secretbundles/{_ID}")


class _Handler(BaseHTTPRequestHandler):
    api: FakeOciApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", f"fake-{time.monotonic_ns()}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str | None = None, message: str | None = None) -> None:
        self._send(status, error_body(status, code, message))

    def _begin(self, method: str) -> tuple[str, dict[str, list[str]], Any] | None:
        """Read and record the request, apply delays and faults; None when already answered.
        Returns the path, the query and the parsed JSON body (None when empty)."""
        api = self.api
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        authorized = (self.headers.get("Authorization") or "").startswith("Signature ")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw.strip() else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        with api._lock:
            api.requests.append(
                RecordedRequest(
                    method,
                    path,
                    query,
                    authorized,
                    self.headers.get("if-match"),
                    time.time(),
                    self.headers.get("opc-retry-token"),
                    body,
                )
            )
        pause = api._delay_for(path)
        if pause:
            time.sleep(pause)
        if not authorized:
            self._error(
                401, message="The required information to complete authentication was not provided."
            )
            return None
        fault = api._take_fault(path, method)
        if fault is not None:
            self._error(fault.status, fault.code, fault.message)
            return None
        if not parsed:
            self._error(400, "CannotParseRequest", "The request body is not JSON.")
            return None
        return path, query, body

    def do_GET(self) -> None:
        begun = self._begin("GET")
        if begun is None:
            return
        path, query, _ = begun
        api = self.api
        read = _SECRET_READ.fullmatch(path)
        secret_id = read and (read.group(1) or read.group(2))
        if secret_id and api.kinds.get(secret_id) == "secret":
            api._read_secret(secret_id)
        if path.startswith("/20190301/secretbundles/"):
            return self._secret_bundle(path.rsplit("/", 1)[1], query)
        work = _WORK_REQUEST.fullmatch(path)
        if work is not None:
            with api._lock:
                if work.group(1) not in api.work_requests:
                    return self._error(404)
                api._poll_work(work.group(1))
                request = copy.deepcopy(api.work_requests[work.group(1)])
            return self._send(200, request)
        if path == "/20190901/configuration":
            tenancy = (query.get("compartmentId") or [""])[0]
            days = api.audit_retention_days.get(tenancy)
            if days is None:
                return self._error(404)
            return self._send(200, {"retentionPeriodDays": days})
        for pattern, name in _GET_LISTS:
            m = pattern.fullmatch(path)
            if m:
                return self._list(name, m.groups()[0] if m.groups() else None, query)
        one = self._resource(path)
        if one is None:
            return self._error(404)
        ocid, doc = one
        return self._send(200, doc, {"etag": api.etags[ocid]})

    def do_PUT(self) -> None:
        self._write("PUT")

    def do_POST(self) -> None:
        self._write("POST")

    def do_DELETE(self) -> None:
        self._write("DELETE")

    def _write(self, method: str) -> None:
        """Answer a write: replay a retried one, else apply it (recording its retry token)."""
        begun = self._begin(method)
        if begun is None:
            return
        path, _, body = begun
        api = self.api
        token = self.headers.get("opc-retry-token")
        fingerprint = json.dumps([method, path, body], sort_keys=True)
        with api._lock:
            reply = api._replay(token, fingerprint, method)
            if reply is None:
                reply, subject = self._apply_write(method, path, body or {})
                if token is not None and 200 <= reply.status < 300:
                    api._retry_tokens[token] = (fingerprint, reply, subject)
            fault = api._take_fault(path, method, after_apply=True) if reply.status < 300 else None
        if fault is not None:
            return self._error(fault.status, fault.code, fault.message)
        return self._send(reply.status, reply.body, reply.headers)

    def _apply_write(self, method: str, path: str, body: Any) -> tuple[_Reply, str]:
        """Run the write operation the path names; returns its answer and the OCID acted on."""
        api = self.api
        if_match = self.headers.get("if-match")
        if not isinstance(body, dict):
            return _fail(400, "InvalidParameter", "The request body must be a JSON object."), ""
        for verb, pattern, kind, operation in _WRITES:
            m = pattern.fullmatch(path)
            if verb != method or m is None:
                continue
            ocid = m.group(1) if pattern.groups else ""
            if kind is not None and api.kinds.get(ocid) != kind:
                return _fail(404), ocid
            if kind is not None and (stale := _stale(api, ocid, if_match)) is not None:
                return stale, ocid
            reply = operation(api, ocid, body)
            created = reply.body.get("id") if isinstance(reply.body, dict) else None
            return reply, ocid or str(created or "")
        one = self._resource(path) if method == "PUT" else None
        if one is None:
            return _fail(404), ""
        ocid = one[0]
        if (stale := _stale(api, ocid, if_match)) is not None:
            return stale, ocid
        api.update(ocid, **{k: v for k, v in body.items() if k != "id"})
        return _Reply(200, copy.deepcopy(api.resources[ocid]), {"etag": api.etags[ocid]}), ocid

    def _secret_bundle(self, secret_id: str, query: Mapping[str, list[str]]) -> None:
        """GET /20190301/secretbundles/{id}: one version with its content (CURRENT by default)."""
        api = self.api
        number, name, stage = (
            _param(query, k) for k in ("versionNumber", "secretVersionName", "stage")
        )
        if number is not None and not number.isdigit():
            return self._error(400, "InvalidParameter", "versionNumber must be a number")
        if number is None and name is None and stage is None:
            stage = "CURRENT"

        def selected(version: dict[str, Any]) -> bool:
            return (
                (number is None or int(number) == version["versionNumber"])
                and (name is None or name == version.get("versionName"))
                and (stage is None or stage in version["stages"])
            )

        with api._lock:
            if api.kinds.get(secret_id) != "secret":
                return self._error(404)
            secret = api.resources[secret_id]
            versions = api.secret_versions.get(secret_id, [])
            version = next((v for v in versions if selected(v)), None)
            key = (secret_id, version["versionNumber"]) if version else None
            content = api.secret_contents.get(key) if key else None
            if version is None or content is None:
                return self._error(404)
            bundle = {
                "secretId": secret_id,
                "versionNumber": version["versionNumber"],
                "versionName": version.get("versionName"),
                "timeCreated": version.get("timeCreated"),
                "stages": list(version["stages"]),
                "metadata": secret.get("metadata"),
                "timeOfDeletion": None,
                "timeOfExpiry": None,
                "secretBundleContent": {"contentType": "BASE64", "content": content},
            }
        return self._send(200, bundle)

    def _resource(self, path: str) -> tuple[str, dict[str, Any]] | None:
        m = _ONE.fullmatch(path)
        if m is None:
            return None
        version, collection, ocid = m.groups()
        served = COLLECTIONS.get(collection)
        api = self.api
        with api._lock:
            if served is None or served[0] != version or api.kinds.get(ocid) != served[1]:
                return None
            return ocid, copy.deepcopy(api.resources[ocid])

    def _list(self, name: str, parent: str | None, query: Mapping[str, list[str]]) -> None:
        api = self.api

        def q(key: str) -> str | None:
            return _param(query, key)

        with api._lock:
            items: list[dict[str, Any]]
            if name == "nodePools":
                items = [
                    {k: v for k, v in r.items() if k != "nodes"}
                    for r in api.of_kind("nodePool")
                    if r.get("compartmentId") == q("compartmentId")
                    and (q("clusterId") is None or r.get("clusterId") == q("clusterId"))
                ]
            elif name == "nsgRules":
                if api.kinds.get(parent or "") != "networkSecurityGroup":
                    return self._error(404)
                items = [
                    r
                    for r in api.nsg_rules.get(parent or "", [])
                    if q("direction") is None or r.get("direction") == q("direction")
                ]
            elif name == "logs":
                if api.kinds.get(parent or "") != "logGroup":
                    return self._error(404)
                items = [r for r in api.of_kind("log") if r.get("logGroupId") == parent]
            elif name == "nsgs":
                if q("compartmentId") is None:
                    return self._error(400, "MissingParameter", "compartmentId is required")
                items = [
                    r
                    for r in api.of_kind("networkSecurityGroup")
                    if r.get("compartmentId") == q("compartmentId")
                    and (q("vcnId") is None or r.get("vcnId") == q("vcnId"))
                    and (q("displayName") is None or r.get("displayName") == q("displayName"))
                ]
            elif name == "secretVersions":
                if api.kinds.get(parent or "") != "secret":
                    return self._error(404)
                items = list(api.secret_versions.get(parent or "", []))
            elif name == "workRequests":
                items = [
                    r
                    for r in api.work_requests.values()
                    if r.get("compartmentId") == q("compartmentId")
                    and q("resourceId") in (None, *(x["identifier"] for x in r["resources"]))
                ]
            elif name == "workRequestErrors":
                if parent not in api.work_request_errors:
                    return self._error(404)
                items = list(api.work_request_errors[parent or ""])
            else:
                if q("compartmentId") is None:
                    return self._error(400, "MissingParameter", "compartmentId is required")
                kind = {"compartments": "compartment", "logGroups": "logGroup"}.get(name, "secret")
                items = [
                    r
                    for r in api.of_kind(kind)
                    if r.get("compartmentId") == q("compartmentId")
                    and (q("vaultId") is None or r.get("vaultId") == q("vaultId"))
                    and (
                        q("lifecycleState") is None
                        or r.get("lifecycleState") == q("lifecycleState")
                    )
                ]
            items = copy.deepcopy(items)
        page = q("page")
        offset = int(page) if page and page.isdigit() else 0
        if page and not page.isdigit():
            return self._error(400, "InvalidParameter", "invalid page token")
        limit = q("limit")
        size = min(int(limit) if limit and limit.isdigit() else 100, api.max_page_size)
        end = offset + size
        headers = {"opc-next-page": str(end)} if end < len(items) else {}
        return self._send(200, items[offset:end], headers)
