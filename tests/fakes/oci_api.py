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
    GET  /20180222/workRequests?compartmentId&resourceId, /workRequests/{id}, …/{id}/errors
    PUT  /20180222/clusters/{id}, /20180222/nodePools/{id}                  202 + work request
    POST /20180222/clusters/{id}/actions/updateEndpointConfig              202 + work request
    GET  /20160918/subnets/{id} | vcns/{id} | securityLists/{id} | networkSecurityGroups/{id}
    GET  /20160918/networkSecurityGroups?compartmentId[&vcnId][&displayName]
    GET  /20160918/networkSecurityGroups/{id}/securityRules
    POST /20160918/networkSecurityGroups                  create (200, ``etag``)
    DELETE /20160918/networkSecurityGroups/{id}           204; 409 while a cluster/pool uses it
    POST /20160918/networkSecurityGroups/{id}/actions/addSecurityRules | removeSecurityRules
         | updateSecurityRules                            (at most 25 rules added per call)
    GET  /20160918/images/{id}                            Compute
    GET  /20160918/tenancies/{id}, /20160918/compartments?compartmentId    Identity
    GET  /20200531/logGroups?compartmentId, /20200531/logGroups/{id}/logs  Logging
    GET  /20190901/configuration?compartmentId            Audit (retentionPeriodDays)
    GET  /20180608/secrets?compartmentId, /secrets/{id}, /secrets/{id}/versions   Vault
    PUT  /20180608/secrets/{id}                           new version or ``currentVersionNumber``
    POST /20180608/secrets/{id}/actions/rotate            202 + ``opc-work-request-id``
    GET  /20190301/secretbundles/{id}?stage|versionNumber|secretVersionName       Secrets
    PUT  any other single-resource path above             merge the body (top-level keys)

Lists page with ``limit``/``page`` and answer ``opc-next-page``; single resources carry an
``etag`` header and every change makes a new one; writes check ``if-match`` (412
``NoEtagMatch``). Errors are OCI error bodies (``{"code": …, "message": …}``); a missing
resource is ``404 NotAuthorizedOrNotFound`` as OCI answers it. Faults (status, or delay) are
switched on per path glob (``after_apply=True``: the write happens, the answer is lost); every
request is recorded with its retry token and JSON body.

Writes honour ``opc-retry-token``: the same token with the same request replays the first
answer and changes nothing; with a different request, or once the resource is deleted, it is
``409 InvalidatedRetryToken``. Only successful answers use up a token.

Container Engine updates answer 202 with ``opc-work-request-id``; the change is applied when the
work request succeeds, at its ``work_request_polls``-th GET (``<= 0``: at once), or at
:meth:`FakeOciApi.finish_work_requests`. :meth:`FakeOciApi.fail_next_work_request` makes the
next one fail, changing nothing. A secret rotation completes at the ``work_request_polls``-th
read of that secret (its document, versions or a bundle) after the rotate call.

The store is a plain dict of JSON documents keyed by OCID (``api.resources``), with
:meth:`add`, :meth:`update` and :meth:`remove`, so write paths can reuse the fake. Secret
contents are kept per version in ``api.secret_contents`` and served only as secret bundles.
"""

from __future__ import annotations

import base64
import binascii
import copy
import fnmatch
import hashlib
import itertools
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    retry_token: str | None = None  # the ``opc-retry-token`` header
    body: Any = None  # the parsed JSON body; None when there was none


@dataclass(frozen=True)
class NodeCycle:
    """The nodes of a pool replaced by a cycling update (recorded when its work request succeeds)."""

    node_pool_id: str
    work_request_id: str
    old_node_ids: tuple[str, ...]
    new_node_ids: tuple[str, ...]


@dataclass
class _Fault:
    pattern: str
    status: int
    code: str | None
    message: str | None
    remaining: int | None  # None: until cleared
    after_apply: bool = False  # a write is applied, then its answer replaced by the fault
    method: str | None = None  # only requests with this method (None: any)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any = None  # None: no body
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Work:
    """A pending work request; ``apply`` makes the change, or returns why it cannot."""

    resource_id: str
    apply: Callable[[], str | None]
    failure: tuple[str, str] | None  # (code, message) forced by ``fail_next_work_request``
    polls: int = 0


@dataclass
class _Rotation:
    work_request_id: str
    reads: int = 0


def now_iso() -> str:
    """The current UTC time as OCI writes it (RFC 3339, milliseconds, ``Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _param(query: Mapping[str, list[str]], key: str) -> str | None:
    """The first value of a query parameter."""
    values = query.get(key)
    return values[0] if values else None


def _fail(status: int, code: str | None = None, message: str | None = None) -> _Reply:
    return _Reply(status, error_body(status, code, message))


@dataclass
class FakeOciApi(ServesHttp):
    """The fake's state: resources by OCID, recorded requests and switchable faults."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    nsg_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secret_versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit_retention_days: dict[str, int] = field(default_factory=dict)
    secret_contents: dict[tuple[str, int], str] = field(default_factory=dict)  # base64 by version
    work_request_polls: int = 2  # a work request succeeds at this GET of it (<= 0: at once)
    work_requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # WorkRequest JSON
    work_request_errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    node_cycles: list[NodeCycle] = field(default_factory=list)
    max_page_size: int = 1000  # the largest page served, whatever ``limit`` asks
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    delays: dict[str, float] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _work: dict[str, _Work] = field(default_factory=dict)
    _rotations: dict[str, _Rotation] = field(default_factory=dict)
    _next_failure: tuple[str, str] | None = None
    # token -> (request fingerprint, first answer, OCID acted on)
    _retry_tokens: dict[str, tuple[str, _Reply, str]] = field(default_factory=dict)

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
        return {k: self.url for k in (*kinds, "logging", "audit", "vaults", "secrets")}

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

    # -- secrets ---------------------------------------------------------------------------
    def add_secret_version(
        self, secret_id: str, content: str, *, stage: str = "CURRENT", name: str | None = None
    ) -> int:
        """Store a new version (base64 ``content``), LATEST and CURRENT (or PENDING); returns
        its number. The secret's etag is not changed (callers that answer a write do that)."""
        with self._lock:
            versions = self.secret_versions.setdefault(secret_id, [])
            number = max((v["versionNumber"] for v in versions), default=0) + 1
            for v in versions:
                v["stages"] = [s for s in v["stages"] if s != "LATEST"] or ["DEPRECATED"]
            version: dict[str, Any] = {
                "secretId": secret_id,
                "versionNumber": number,
                "stages": ["LATEST"] if stage == "CURRENT" else [stage, "LATEST"],
                "timeCreated": now_iso(),
                "contentType": "BASE64",
            }
            if name is not None:
                version["versionName"] = name
            versions.append(version)
            self.secret_contents[(secret_id, number)] = content
            if stage == "CURRENT":
                self.make_secret_version_current(secret_id, number)
            return number

    def make_secret_version_current(self, secret_id: str, number: int) -> None:
        """Version ``number`` becomes CURRENT, the old CURRENT PREVIOUS, an older PREVIOUS
        DEPRECATED (LATEST stays with the newest version)."""
        with self._lock:
            versions = self.secret_versions[secret_id]
            old = next((v for v in versions if "CURRENT" in v["stages"]), None)
            if old is not None and old["versionNumber"] == number:
                return
            for v in versions:
                latest = ["LATEST"] if "LATEST" in v["stages"] else []
                if v["versionNumber"] == number:
                    v["stages"] = ["CURRENT", *latest]
                elif v is old:
                    v["stages"] = ["PREVIOUS", *latest]
                elif "PREVIOUS" in v["stages"]:
                    v["stages"] = [*latest] or ["DEPRECATED"]
            self.resources[secret_id]["currentVersionNumber"] = number

    def _read_secret(self, secret_id: str) -> None:
        """A read of the secret advances its pending rotation."""
        with self._lock:
            rotation = self._rotations.get(secret_id)
            if rotation is not None:
                rotation.reads += 1
                if rotation.reads >= self.work_request_polls:
                    self._complete_rotation(secret_id)

    def _complete_rotation(self, secret_id: str) -> None:
        self._rotations.pop(secret_id)
        content = base64.b64encode(secrets.token_bytes(24)).decode()
        self.add_secret_version(secret_id, content)
        config = self.resources[secret_id].get("rotationConfig") or {}
        scheduled = config.get("isScheduledRotationEnabled")
        self.update(
            secret_id,
            rotationStatus="SCHEDULED" if scheduled else "NOT_ENABLED",
            lastRotationTime=now_iso(),
        )

    # -- work requests ---------------------------------------------------------------------
    def fail_next_work_request(self, message: str, *, code: str = "InternalServerError") -> None:
        """Make the next Container Engine work request end FAILED with this error, its change
        not applied."""
        with self._lock:
            self._next_failure = (code, message)

    def finish_work_requests(self) -> list[str]:
        """End every pending work request now (as its last poll would); returns their ids."""
        with self._lock:
            pending = list(self._work)
            for wr_id in pending:
                self._finish_work(wr_id)
            return pending

    def _busy(self, ocid: str) -> bool:
        return any(w.resource_id == ocid for w in self._work.values())

    def _start_work(
        self, operation: str, ocid: str, apply: Callable[[], str | None], *, wr_id: str = ""
    ) -> str:
        """Accept a work request on a cluster or node pool (which turns UPDATING)."""
        kind = self.kinds[ocid]
        wr_id = wr_id or self.new_ocid("clustersworkrequest")
        self.work_requests[wr_id] = {
            "id": wr_id,
            "operationType": operation,
            "status": "ACCEPTED",
            "compartmentId": self.resources[ocid].get("compartmentId"),
            "resources": [
                {
                    "entityType": kind.lower(),
                    "actionType": "IN_PROGRESS",
                    "identifier": ocid,
                    "entityUri": f"/{kind}s/{ocid}",
                }
            ],
            "timeAccepted": now_iso(),
            "timeStarted": None,
            "timeFinished": None,
        }
        self.work_request_errors[wr_id] = []
        self._work[wr_id] = _Work(ocid, apply, self._next_failure)
        self._next_failure = None
        self.update(ocid, lifecycleState="UPDATING")
        if self.work_request_polls <= 0:
            self._finish_work(wr_id)
        return wr_id

    def _poll_work(self, wr_id: str) -> None:
        work = self._work.get(wr_id)
        if work is None:
            return
        work.polls += 1
        if work.polls >= self.work_request_polls:
            self._finish_work(wr_id)
        else:
            request = self.work_requests[wr_id]
            request["status"] = "IN_PROGRESS"
            request["timeStarted"] = request["timeStarted"] or now_iso()

    def _finish_work(self, wr_id: str) -> None:
        work = self._work.pop(wr_id)
        request = self.work_requests[wr_id]
        failure = work.failure
        if failure is None:
            problem = work.apply()
            if problem is not None:
                failure = ("InvalidParameter", problem)
        at = now_iso()
        if failure is not None:
            code, message = failure
            self.work_request_errors[wr_id].append(
                {"code": code, "message": message, "timestamp": at}
            )
        if work.resource_id in self.resources:
            self.update(work.resource_id, lifecycleState="ACTIVE")
        request["status"] = "FAILED" if failure else "SUCCEEDED"
        request["timeStarted"] = request["timeStarted"] or at
        request["timeFinished"] = at
        for resource in request["resources"]:
            resource["actionType"] = "FAILED" if failure else "UPDATED"

    # -- retry tokens ----------------------------------------------------------------------
    def _replay(self, token: str | None, fingerprint: str, method: str) -> _Reply | None:
        """The first answer to a retried request; None when the token is new."""
        if token is None or token not in self._retry_tokens:
            return None
        first, reply, subject = self._retry_tokens[token]
        if first != fingerprint:
            return _fail(
                409, "InvalidatedRetryToken", "The retry token was used for a different request."
            )
        if method != "DELETE" and subject not in self.resources:
            return _fail(
                409, "InvalidatedRetryToken", "The retry token's resource has since been deleted."
            )
        return reply

    # -- faults and recording --------------------------------------------------------------
    def fail(
        self,
        pattern: str,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        times: int | None = None,
        after_apply: bool = False,
        method: str | None = None,
    ) -> None:
        """Answer requests whose path matches the glob ``pattern`` (and whose method is
        ``method``, when given) with ``status`` (``times`` times, or until cleared). 403 and 404
        carry ``NotAuthorizedOrNotFound``. With ``after_apply`` a successful write is made first
        and only its answer is lost."""
        with self._lock:
            self.faults.append(_Fault(pattern, status, code, message, times, after_apply, method))

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

    def _take_fault(self, path: str, method: str, *, after_apply: bool = False) -> _Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method not in (None, method):
                    continue
                if fault.after_apply == after_apply and fnmatch.fnmatchcase(path, fault.pattern):
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


# -- write operations: (api, OCID from the path or "", JSON body) -> answer --------------------
# They run under the fake's lock, after the resource's kind and ``if-match`` were checked.
_MAX_RULES_PER_CALL = 25  # AddSecurityRules refuses more in one request
_MAX_RULES_PER_NSG = 120


def _stale(api: FakeOciApi, ocid: str, if_match: str | None) -> _Reply | None:
    if if_match is not None and if_match != api.etags[ocid]:
        return _fail(412, message=f"The If-Match header {if_match!r} does not match the etag.")
    return None


def _busy(api: FakeOciApi, ocid: str) -> _Reply | None:
    if api._busy(ocid) or ocid in api._rotations:
        return _fail(409, "IncorrectState", f"{ocid} has a work request in progress.")
    return None


def _create_nsg(api: FakeOciApi, _: str, body: dict[str, Any]) -> _Reply:
    for key in ("compartmentId", "vcnId"):
        if not body.get(key):
            return _fail(400, "MissingParameter", f"{key} is required.")
    if api.kinds.get(body["vcnId"]) != "vcn":
        return _fail(400, "RelatedResourceNotAuthorizedOrNotFound", "The VCN was not found.")
    at = now_iso()
    display = body.get("displayName") or f"nsg{at[:19].replace('-', '').replace(':', '')}"
    doc = {
        "compartmentId": body["compartmentId"],
        "vcnId": body["vcnId"],
        "displayName": display,
        "definedTags": body.get("definedTags") or {},
        "freeformTags": body.get("freeformTags") or {},
        "systemTags": {},
        "lifecycleState": "AVAILABLE",
        "timeCreated": at,
    }
    ocid = api.add("networkSecurityGroup", doc)
    api.nsg_rules[ocid] = []
    return _Reply(200, copy.deepcopy(api.resources[ocid]), {"etag": api.etags[ocid]})


def _delete_nsg(api: FakeOciApi, ocid: str, _: dict[str, Any]) -> _Reply:
    users = [
        o
        for o, doc in api.resources.items()
        if ocid in (doc.get("endpointConfig") or {}).get("nsgIds", [])
        or ocid in (doc.get("nodeConfigDetails") or {}).get("nsgIds", [])
        or ocid
        in ((doc.get("nodeConfigDetails") or {}).get("nodePoolPodNetworkOptionDetails") or {}).get(
            "podNsgIds", []
        )
    ]
    if users:
        return _fail(409, "Conflict", f"The network security group has VNICs (used by {users}).")
    api.remove(ocid)
    api.nsg_rules.pop(ocid, None)
    return _Reply(204)


def _rule_problem(rule: Any) -> str | None:
    if not isinstance(rule, dict):
        return "a security rule must be an object"
    direction = rule.get("direction")
    if direction not in ("INGRESS", "EGRESS"):
        return f"direction must be INGRESS or EGRESS, not {direction!r}"
    if not rule.get("protocol"):
        return "protocol is required"
    peer = "source" if direction == "INGRESS" else "destination"
    if not rule.get(peer):
        return f"{peer} is required for an {direction} rule"
    return None


def _stored_rule(api: FakeOciApi, rule: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """A rule as the NSG keeps it: with id, types defaulted, validity of an NSG peer."""
    peer = "source" if rule["direction"] == "INGRESS" else "destination"
    stored = {k: v for k, v in copy.deepcopy(rule).items() if k not in ("id", "isValid")}
    stored.setdefault(f"{peer}Type", "CIDR_BLOCK")
    stored.setdefault("isStateless", False)
    valid = stored[f"{peer}Type"] != "NETWORK_SECURITY_GROUP" or (
        api.kinds.get(stored[peer]) == "networkSecurityGroup"
    )
    stored.setdefault("timeCreated", now_iso())
    return {**stored, "id": rule_id, "isValid": valid}


def _add_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    rules = body.get("securityRules")
    if not isinstance(rules, list) or not rules:
        return _fail(400, "MissingParameter", "securityRules is required.")
    if len(rules) > _MAX_RULES_PER_CALL:
        message = f"At most {_MAX_RULES_PER_CALL} security rules can be added in one request."
        return _fail(400, "InvalidParameter", message)
    existing = api.nsg_rules.setdefault(ocid, [])
    if len(existing) + len(rules) > _MAX_RULES_PER_NSG:
        return _fail(400, "LimitExceeded", f"An NSG holds at most {_MAX_RULES_PER_NSG} rules.")
    for problem in map(_rule_problem, rules):
        if problem is not None:
            return _fail(400, "InvalidParameter", problem)
    added = [_stored_rule(api, r, f"{next(api._counter):06X}") for r in rules]
    existing.extend(copy.deepcopy(added))
    api._touch(ocid)
    return _Reply(200, {"securityRules": added})


def _remove_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    ids = body.get("securityRuleIds")
    if not isinstance(ids, list) or not ids:
        return _fail(400, "MissingParameter", "securityRuleIds is required.")
    existing = api.nsg_rules.setdefault(ocid, [])
    unknown = set(ids) - {r["id"] for r in existing}
    if unknown:
        return _fail(400, "InvalidParameter", f"Unknown security rule ids: {sorted(unknown)}")
    api.nsg_rules[ocid] = [r for r in existing if r["id"] not in ids]
    api._touch(ocid)
    return _Reply(204)


def _update_rules(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    rules = body.get("securityRules")
    if not isinstance(rules, list) or not rules:
        return _fail(400, "MissingParameter", "securityRules is required.")
    existing = {r["id"]: i for i, r in enumerate(api.nsg_rules.setdefault(ocid, []))}
    for rule in rules:
        problem = _rule_problem(rule)
        if problem is None and rule.get("id") not in existing:
            problem = f"Unknown security rule id: {rule.get('id')!r}"
        if problem is not None:
            return _fail(400, "InvalidParameter", problem)
    updated = [_stored_rule(api, r, r["id"]) for r in rules]
    for rule in updated:
        api.nsg_rules[ocid][existing[rule["id"]]] = copy.deepcopy(rule)
    api._touch(ocid)
    return _Reply(200, {"securityRules": updated})


def _missing_nsgs(api: FakeOciApi, nsg_ids: Any) -> str | None:
    missing = [n for n in nsg_ids or [] if api.kinds.get(n) != "networkSecurityGroup"]
    return f"Network security groups not found: {missing}" if missing else None


def _accepted(wr_id: str) -> _Reply:
    return _Reply(202, None, {"opc-work-request-id": wr_id})


def _update_endpoint_config(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = copy.deepcopy(body)

    def apply() -> str | None:
        if (problem := _missing_nsgs(api, changes.get("nsgIds"))) is not None:
            return problem
        endpoint = {**(api.resources[ocid].get("endpointConfig") or {}), **changes}
        api.update(ocid, endpointConfig=endpoint)
        return None

    return _accepted(api._start_work("CLUSTER_UPDATE", ocid, apply))


def _update_cluster(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = {k: v for k, v in copy.deepcopy(body).items() if k != "id"}

    def apply() -> str | None:
        if "options" in changes:  # UpdateClusterOptionsDetails: only the keys sent change
            changes["options"] = {
                **(api.resources[ocid].get("options") or {}),
                **changes["options"],
            }
        api.update(ocid, **changes)
        return None

    return _accepted(api._start_work("CLUSTER_UPDATE", ocid, apply))


def _new_nodes(api: FakeOciApi, pool: dict[str, Any], count: int) -> list[dict[str, Any]]:
    placements = (pool.get("nodeConfigDetails") or {}).get("placementConfigs") or [{}]
    nodes = []
    for _ in range(count):
        n = next(api._counter)
        nodes.append(
            {
                "id": f"ocid1.instance.oc1.{REGION}.fakenode{n:06d}",
                "name": f"oke-{pool.get('name', 'pool')}-{n}",
                "privateIp": f"10.0.{200 + n // 250 % 50}.{n % 250 + 2}",
                "publicIp": None,
                "lifecycleState": "ACTIVE",
                "nodePoolId": pool["id"],
                "subnetId": placements[0].get("subnetId"),
                "kubernetesVersion": pool.get("kubernetesVersion"),
            }
        )
    return nodes


def _update_node_pool(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if (busy := _busy(api, ocid)) is not None:
        return busy
    changes = {k: v for k, v in copy.deepcopy(body).items() if k != "id"}
    cycling = (changes.get("nodePoolCyclingDetails") or {}).get("isNodeCyclingEnabled") is True
    wr_id = ""

    def apply() -> str | None:
        pool = api.resources[ocid]
        config = {**(pool.get("nodeConfigDetails") or {}), **changes.get("nodeConfigDetails", {})}
        if (problem := _missing_nsgs(api, config.get("nsgIds"))) is not None:
            return problem
        if "nodeConfigDetails" in changes:  # merged key by key, as the service does
            changes["nodeConfigDetails"] = config
        source = changes.get("nodeSourceDetails") or {}
        if source.get("imageId"):
            changes["nodeImageId"] = source["imageId"]
            changes["nodeSource"] = {**(pool.get("nodeSource") or {}), **source}
        api.update(ocid, **changes)
        pool = api.resources[ocid]
        nodes: list[dict[str, Any]] = list(pool.get("nodes") or [])
        size = int(config.get("size", len(nodes)))
        if cycling:
            new = _new_nodes(api, pool, size)
            cycle = NodeCycle(
                ocid, wr_id, tuple(x["id"] for x in nodes), tuple(x["id"] for x in new)
            )
            api.node_cycles.append(cycle)
            nodes = new
        else:
            nodes = nodes[:size] + _new_nodes(api, pool, size - len(nodes))
        api.update(ocid, nodes=nodes)
        return None

    wr_id = api.new_ocid("clustersworkrequest")
    operation = "NODEPOOL_CYCLING" if cycling else "NODEPOOL_UPDATE"
    return _accepted(api._start_work(operation, ocid, apply, wr_id=wr_id))


def _update_secret(api: FakeOciApi, ocid: str, body: dict[str, Any]) -> _Reply:
    if ocid in api._rotations:
        return _fail(409, "IncorrectState", "The secret is being rotated.")
    content = body.get("secretContent")
    number = body.get("currentVersionNumber")
    if content is not None and number is not None:
        message = "secretContent and currentVersionNumber cannot be changed together."
        return _fail(400, "InvalidParameter", message)
    if content is not None:
        if content.get("contentType") != "BASE64":
            return _fail(400, "InvalidParameter", "secretContent.contentType must be BASE64.")
        try:
            base64.b64decode(content.get("content") or "", validate=True)
        except binascii.Error:
            return _fail(400, "InvalidParameter", "secretContent.content is not base64.")
        stage = content.get("stage") or "CURRENT"
        if stage not in ("CURRENT", "PENDING"):
            return _fail(400, "InvalidParameter", "secretContent.stage must be CURRENT or PENDING.")
        api.add_secret_version(
            ocid, content.get("content") or "", stage=stage, name=content.get("name")
        )
    elif number is not None:
        if number not in {v["versionNumber"] for v in api.secret_versions.get(ocid, [])}:
            return _fail(400, "InvalidParameter", f"The secret has no version {number}.")
        api.make_secret_version_current(ocid, number)
    rest = {
        k: v for k, v in body.items() if k not in ("secretContent", "currentVersionNumber", "id")
    }
    api.update(ocid, **rest)  # a new etag even when only the version changed
    return _Reply(200, copy.deepcopy(api.resources[ocid]), {"etag": api.etags[ocid]})


def _rotate_secret(api: FakeOciApi, ocid: str, _: dict[str, Any]) -> _Reply:
    config = api.resources[ocid].get("rotationConfig") or {}
    if not config.get("targetSystemDetails"):
        message = "The secret has no rotation configuration (rotationConfig.targetSystemDetails)."
        return _fail(400, "InvalidParameter", message)
    if ocid in api._rotations:
        return _fail(409, "IncorrectState", "The secret is already being rotated.")
    wr_id = api.new_ocid("secretworkrequest")
    api._rotations[ocid] = _Rotation(wr_id)
    api.update(ocid, rotationStatus="IN_PROGRESS")
    if api.work_request_polls <= 0:
        api._complete_rotation(ocid)
    return _accepted(wr_id)


_V, _N, _NSG = "/20160918", "networkSecurityGroup", rf"/20160918/networkSecurityGroups/{_ID}"
_WRITES: list[tuple[str, re.Pattern[str], str | None, Callable[..., _Reply]]] = [
    ("POST", re.compile(f"{_V}/networkSecurityGroups"), None, _create_nsg),
    ("DELETE", re.compile(_NSG), _N, _delete_nsg),
    ("POST", re.compile(f"{_NSG}/actions/addSecurityRules"), _N, _add_rules),
    ("POST", re.compile(f"{_NSG}/actions/removeSecurityRules"), _N, _remove_rules),
    ("POST", re.compile(f"{_NSG}/actions/updateSecurityRules"), _N, _update_rules),
    (
        "POST",
        re.compile(rf"/20180222/clusters/{_ID}/actions/updateEndpointConfig"),
        "cluster",
        _update_endpoint_config,
    ),
    ("PUT", re.compile(rf"/20180222/clusters/{_ID}"), "cluster", _update_cluster),
    ("PUT", re.compile(rf"/20180222/nodePools/{_ID}"), "nodePool", _update_node_pool),
    ("PUT", re.compile(rf"/20180608/secrets/{_ID}"), "secret", _update_secret),
    ("POST", re.compile(rf"/20180608/secrets/{_ID}/actions/rotate"), "secret", _rotate_secret),
]


@contextmanager
def running_fake_oci_api(**kwargs: Any) -> Iterator[FakeOciApi]:
    """Start a fake OCI API; stop it on exit."""
    api = FakeOciApi(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()
