"""A fake OCI API: a real HTTP server on 127.0.0.1 that the real ``oci`` SDK clients talk to.

Point a client at it with ``service_endpoint=api.url`` (the SDK appends its API version, e.g.
``/20180222``) and a config file from :meth:`FakeOciApi.write_config` (a throwaway RSA API key;
the SDK signs every request, the fake requires the ``Authorization: Signature …`` header but
does not verify it).

Served (JSON bodies in the API's camelCase shapes, as the SDK's model ``attribute_map`` s name
them)::

    GET  /20180222/clusters/{id}                          Container Engine
    GET  /20180222/nodePools?compartmentId&clusterId      (summaries: no ``nodes``)
    GET  /20180222/nodePools/{id}
    GET  /20160918/subnets/{id} | vcns/{id} | securityLists/{id} | networkSecurityGroups/{id}
    GET  /20160918/networkSecurityGroups/{id}/securityRules
    GET  /20160918/images/{id}                            Compute
    GET  /20160918/tenancies/{id}, /20160918/compartments?compartmentId    Identity
    GET  /20200531/logGroups?compartmentId, /20200531/logGroups/{id}/logs  Logging
    GET  /20190901/configuration?compartmentId            Audit (retentionPeriodDays)
    GET  /20180608/secrets?compartmentId, /secrets/{id}, /secrets/{id}/versions   Vault
    PUT  any single-resource path above                   merge the body; ``if-match`` or 412

Lists page with ``limit``/``page`` and answer ``opc-next-page``; single resources carry an
``etag`` header. Errors are OCI error bodies (``{"code": …, "message": …}``); a missing
resource is ``404 NotAuthorizedOrNotFound`` as OCI answers it. Faults (status, or delay) are
switched on per path glob; every request is recorded.

The store is a plain dict of JSON documents keyed by OCID (``api.resources``), with
:meth:`add`, :meth:`update` and :meth:`remove`, so write paths can reuse the fake.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import itertools
import json
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.serving import ServesHttp

TENANCY = "ocid1.tenancy.oc1..faketenancy"
REGION = "eu-frankfurt-1"

# collection path segment -> (API version prefix, kind)
COLLECTIONS: Mapping[str, tuple[str, str]] = {
    "clusters": ("/20180222", "cluster"),
    "nodePools": ("/20180222", "nodePool"),
    "subnets": ("/20160918", "subnet"),
    "vcns": ("/20160918", "vcn"),
    "securityLists": ("/20160918", "securityList"),
    "networkSecurityGroups": ("/20160918", "networkSecurityGroup"),
    "images": ("/20160918", "image"),
    "tenancies": ("/20160918", "tenancy"),
    "compartments": ("/20160918", "compartment"),
    "logGroups": ("/20200531", "logGroup"),
    "secrets": ("/20180608", "secret"),
}

_ERROR_CODES = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    403: "NotAuthorizedOrNotFound",
    404: "NotAuthorizedOrNotFound",
    409: "Conflict",
    412: "NoEtagMatch",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (the Authorization header is not kept)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    authorized: bool
    if_match: str | None
    at: float


@dataclass
class _Fault:
    pattern: str
    status: int
    code: str | None
    message: str | None
    remaining: int | None  # None: until cleared


def error_body(status: int, code: str | None = None, message: str | None = None) -> dict[str, str]:
    """An OCI error body."""
    code = code or _ERROR_CODES.get(status, "InternalServerError")
    if message is None:
        message = (
            "Authorization failed or requested resource not found."
            if code == "NotAuthorizedOrNotFound"
            else f"{code} (fake)"
        )
    return {"code": code, "message": message}


@dataclass
class FakeOciApi(ServesHttp):
    """The fake's state: resources by OCID, recorded requests and switchable faults."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    nsg_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secret_versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit_retention_days: dict[str, int] = field(default_factory=dict)
    max_page_size: int = 1000  # the largest page served, whatever ``limit`` asks
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeOciApi:
        self._serve(_Server, _Handler)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(
        self, directory: Path, *, profile: str = "DEFAULT", region: str = REGION
    ) -> Path:
        """Write an OCI config file and a fresh RSA API key (PEM) in ``directory``."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.md5(der, usedforsecurity=False).hexdigest()
        fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        key_path = directory / "oci_api_key.pem"
        key_path.write_bytes(pem)
        key_path.chmod(0o600)
        config_path = directory / "oci_config"
        config_path.write_text(
            f"[{profile}]\n"
            "user=ocid1.user.oc1..fakeuser\n"
            f"fingerprint={fingerprint}\n"
            f"key_file={key_path}\n"
            f"tenancy={TENANCY}\n"
            f"region={region}\n",
            encoding="utf-8",
        )
        return config_path

    def service_endpoints(self) -> dict[str, str]:
        """Every client kind of the collector pointed at this server."""
        kinds = ("container_engine", "virtual_network", "compute", "identity")
        return {k: self.url for k in (*kinds, "logging", "audit", "vaults")}

    # -- the store -------------------------------------------------------------------------
    def new_ocid(self, kind: str) -> str:
        short = {"networkSecurityGroup": "networksecuritygroup", "nodePool": "nodepool"}
        name = short.get(kind, kind.lower())
        return f"ocid1.{name}.oc1.{REGION}.fake{next(self._counter):06d}"

    def add(self, kind: str, doc: Mapping[str, Any]) -> str:
        """Store a resource (camelCase JSON); an ``id`` is made when missing. Returns the OCID."""
        with self._lock:
            item = copy.deepcopy(dict(doc))
            ocid = item.setdefault("id", self.new_ocid(kind))
            item.setdefault("lifecycleState", "ACTIVE")
            self.resources[ocid] = item
            self.kinds[ocid] = kind
            self._touch(ocid)
            return str(ocid)

    def update(self, ocid: str, **changes: Any) -> None:
        """Change top-level fields of a resource (a new etag, as a real update makes)."""
        with self._lock:
            self.resources[ocid].update(copy.deepcopy(changes))
            self._touch(ocid)

    def remove(self, ocid: str) -> None:
        with self._lock:
            self.resources.pop(ocid, None)
            self.kinds.pop(ocid, None)
            self.etags.pop(ocid, None)

    def get(self, ocid: str) -> dict[str, Any]:
        return self.resources[ocid]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for o, r in self.resources.items() if self.kinds.get(o) == kind]

    def set_nsg_rules(self, nsg_id: str, rules: list[dict[str, Any]]) -> None:
        with self._lock:
            self.nsg_rules[nsg_id] = [
                {"id": f"rule{i:04d}", "isValid": True, **copy.deepcopy(r)}
                for i, r in enumerate(rules)
            ]
            self._touch(nsg_id)

    def _touch(self, ocid: str) -> None:
        self.etags[ocid] = f"etag-{next(self._counter):08d}"

    # -- faults and recording --------------------------------------------------------------
    def fail(
        self,
        pattern: str,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer requests whose path matches the glob ``pattern`` with ``status`` (``times``
        times, or until cleared). 403 and 404 carry ``NotAuthorizedOrNotFound``."""
        with self._lock:
            self.faults.append(_Fault(pattern, status, code, message, times))

    def delay(self, pattern: str, seconds: float) -> None:
        """Answer requests whose path matches ``pattern`` only after ``seconds``."""
        self.delays[pattern] = seconds

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.delays.clear()

    def requests_to(self, pattern: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if fnmatch.fnmatchcase(r.path, pattern) and (method is None or r.method == method)
        ]

    def count(self, pattern: str = "*") -> int:
        return len(self.requests_to(pattern))

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self.faults:
                if fnmatch.fnmatchcase(path, fault.pattern):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self.faults.remove(fault)
                    return fault
            return None

    def _delay_for(self, path: str) -> float:
        return max((s for p, s in self.delays.items() if fnmatch.fnmatchcase(path, p)), default=0.0)


_ID = r"([^/]+)"
_GET_LISTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/20180222/nodePools"), "nodePools"),
    (re.compile(rf"/20160918/networkSecurityGroups/{_ID}/securityRules"), "nsgRules"),
    (re.compile(r"/20160918/compartments"), "compartments"),
    (re.compile(r"/20200531/logGroups"), "logGroups"),
    (re.compile(rf"/20200531/logGroups/{_ID}/logs"), "logs"),
    (re.compile(r"/20180608/secrets"), "secrets"),
    (re.compile(rf"/20180608/secrets/{_ID}/versions"), "secretVersions"),
]
_ONE = re.compile(r"(/\d{8})/([A-Za-z]+)/([^/]+)")


class _Handler(BaseHTTPRequestHandler):
    api: FakeOciApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
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

    def _begin(self, method: str) -> tuple[str, dict[str, list[str]]] | None:
        """Record the request, apply delays and faults; None when already answered."""
        api = self.api
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        authorized = (self.headers.get("Authorization") or "").startswith("Signature ")
        with api._lock:
            api.requests.append(
                RecordedRequest(
                    method, path, query, authorized, self.headers.get("if-match"), time.time()
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
        fault = api._take_fault(path)
        if fault is not None:
            self._error(fault.status, fault.code, fault.message)
            return None
        return path, query

    def do_GET(self) -> None:
        begun = self._begin("GET")
        if begun is None:
            return
        path, query = begun
        api = self.api
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
        begun = self._begin("PUT")
        if begun is None:
            return
        path, _ = begun
        api = self.api
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._error(400, message="the body is not JSON")
        with api._lock:
            one = self._resource(path)
            if one is None:
                return self._error(404)
            ocid, _ = one
            if_match = self.headers.get("if-match")
            if if_match is not None and if_match != api.etags[ocid]:
                return self._error(
                    412, message=f"The If-Match header {if_match!r} does not match the etag."
                )
            api.update(ocid, **{k: v for k, v in body.items() if k != "id"})
            doc = copy.deepcopy(api.resources[ocid])
            etag = api.etags[ocid]
        return self._send(200, doc, {"etag": etag})

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
            return (query.get(key) or [None])[0]

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
            elif name == "secretVersions":
                if api.kinds.get(parent or "") != "secret":
                    return self._error(404)
                items = list(api.secret_versions.get(parent or "", []))
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


@contextmanager
def running_fake_oci_api(**kwargs: Any) -> Iterator[FakeOciApi]:
    """Start a fake OCI API; stop it on exit."""
    api = FakeOciApi(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()
