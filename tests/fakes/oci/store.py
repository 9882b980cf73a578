"""The fake OCI API's state: ``FakeOciApi`` (resources by OCID, secret versions, work
requests, retry tokens, faults and recorded requests) and ``running_fake_oci_api``."""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import itertools
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.oci.handler import _Handler, _Server
from tests.fakes.oci.model import (
    REGION,
    TENANCY,
    NodeCycle,
    RecordedRequest,
    _fail,
    _Fault,
    _Reply,
    _Rotation,
    _Work,
    now_iso,
)
from tests.fakes.serving import ServesHttp


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


@contextmanager
def running_fake_oci_api(**kwargs: Any) -> Iterator[FakeOciApi]:
    """Start a fake OCI API; stop it on exit."""
    api = FakeOciApi(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()
