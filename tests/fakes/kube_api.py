"""A fake Kubernetes API server: a real HTTP server on 127.0.0.1 speaking the Kubernetes REST API.

Reads. It serves ``GET /version``, the cluster-wide list path of every kind in ``SUPPORTED_KINDS``
(``/api/v1/pods``, ``/apis/apps/v1/deployments``…), the namespaced list paths
(``/api/v1/namespaces/{ns}/pods``) and single-object GETs. Lists are ``<Kind>List`` bodies that
honour ``limit`` and ``continue`` (opaque base64 tokens; an invalid or expired one gets a
``410 Gone`` Status) and ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
``k in (a,b)``, ``k notin (a,b)``; a malformed one gets 400). Items are stored without
``kind``/``apiVersion``, as a real server lists them. Custom resources registered with
:meth:`FakeKubeApi.add_custom` are served the same way under ``/apis/{group}/{version}/…``.

Writes, on the same paths (built-in kinds and custom resources):

* ``POST`` to a collection creates (201): uid, ``resourceVersion``, ``creationTimestamp`` and
  ``generation: 1`` are assigned, ``generateName`` honoured; an existing name gets 409
  ``AlreadyExists``, a body namespace differing from the path's 400 ``BadRequest``.
* ``PUT`` on an object replaces it (200); a ``metadata.resourceVersion`` differing from the stored
  one gets 409 ``Conflict``; an unknown object 404 ``NotFound``.
* ``PATCH`` on an object (200) with ``application/json-patch+json`` (RFC 6902: add, remove,
  replace, move, copy, test), ``application/merge-patch+json`` (RFC 7386) or
  ``application/strategic-merge-patch+json`` (treated as RFC 7386; custom resources refuse it
  with 415 like the real server). A failed ``test`` op or a missing path gets 422 ``Invalid``
  naming the path and stores nothing; a patch that changes ``metadata.resourceVersion`` to a
  stale value gets 409; any other content type 415 ``UnsupportedMediaType``.
* ``DELETE`` of an object returns a ``Status`` with ``status: Success`` (200); a body
  ``{"preconditions": {"resourceVersion"|"uid": …}}`` that does not match gets 409 ``Conflict``.
* ``dryRun=All`` validates and returns the result but stores nothing (no resourceVersion bump);
  another ``dryRun`` value gets 400. ``fieldManager`` is accepted (and recorded in the query).
* Every stored change bumps the global resourceVersion and the object's; a no-op update stores
  nothing, as etcd would not be written. For workloads (Deployment, StatefulSet, DaemonSet,
  ReplicaSet, Job, CronJob) a change of ``spec`` bumps ``metadata.generation``; for custom
  resources a change outside ``metadata``/``status`` does. ``status`` is a subresource for
  workloads, Pods, Services, Namespaces, Nodes and Ingresses: writes to the object keep it.
* ``POST`` on an object path, or ``PUT``/``PATCH``/``DELETE`` on a collection path, gets 405
  ``MethodNotAllowed``; a body that is not JSON, or of another kind/apiVersion than the path,
  400 ``BadRequest``. Not served: subresources (``/status``, ``/scale``: 404), deletecollection
  (405), server-side apply (415) and watches (``watch`` is ignored, as is ``fieldSelector``).

Controllers, simulated as the client sees them:

* Rollouts (Deployment, StatefulSet, DaemonSet; see :meth:`FakeKubeApi.set_rollout`): when a
  write changes the generation (or creates the object), ``status`` converges on the ``after``+1-th
  subsequent read of that object (single GET or inclusion in a list), by behaviour ``healthy``,
  ``crashloop``, ``image-pull`` or ``stuck``; a status change bumps the resourceVersion. Pods of a
  simulated workload (one written to, created, or named in ``set_rollout``) are synthesized from
  its templates (labels from ``spec.selector.matchLabels`` and the template, ``ownerReferences``
  to the ReplicaSet ``{name}-{hash}`` / the StatefulSet / the DaemonSet) and are listable and
  GET-able at the Pod paths. Reading Pods does not advance a rollout.
* Token controller: a Secret of type ``kubernetes.io/service-account-token`` with the annotation
  ``kubernetes.io/service-account.name`` created by ``POST`` gets ``data.token``, ``data.ca.crt``
  and ``data.namespace`` before the next read returns it (the POST reply has none).

A bearer token is required. Every request is recorded (method, path, query, parsed JSON body and
Content-Type); faults can be switched on per path, per path and method (403/404/500… with a
proper ``Status`` body), globally (e.g. 401), and a delay added: all apply to every method.
The fake is deterministic (seeded random, hashed names) apart from timestamps, and one lock
guards every change to its store.

Point the real ``kubernetes`` client at it with :meth:`FakeKubeApi.write_kubeconfig`; read the
store directly with :meth:`FakeKubeApi.get_object`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from okeguard.inventory.model import CLUSTER_SCOPED_KINDS, SUPPORTED_KINDS
from tests.fakes.serving import ServesHttp

DEFAULT_TOKEN = "fake-kube-token-0123456789abcdef"
ROLLOUT_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
ROLLOUT_BEHAVIOURS = ("healthy", "crashloop", "image-pull", "stuck")
GENERATION_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
)
STATUS_SUBRESOURCE_KINDS = GENERATION_KINDS | {"Pod", "Service", "Namespace", "Node", "Ingress"}
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
FAKE_CA_CRT = "-----BEGIN CERTIFICATE-----\nMIIBfakeKubeRootCA\n-----END CERTIFICATE-----\n"
_SAFE_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of generated Kubernetes names
_UID_NAMESPACE = uuid.UUID("6f6b6567-7561-7264-2d66-616b652d6b75")


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


def object_path(kind: str, name: str, namespace: str | None = None) -> str:
    """The path of one object of a built-in ``kind`` (``namespace`` None: cluster-scoped)."""
    return f"{list_path(kind, namespace)}/{name}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) closes its socket before the reply: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _prefix(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


# (api prefix, resource) -> kind, for routing
_ROUTES: dict[tuple[str, str], str] = {
    (_prefix(v), plural(k)): k for k, v in SUPPORTED_KINDS.items()
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received (the Authorization header is not kept).

    ``body`` is the request body parsed as JSON (the raw text when it is not JSON, None when
    empty); ``content_type`` the Content-Type without parameters.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    authorized: bool
    body: Any = None
    content_type: str | None = None

    @property
    def field_manager(self) -> str | None:
        """The ``fieldManager`` query parameter, if any."""
        values = self.query.get("fieldManager")
        return values[0] if values else None

    @property
    def dry_run(self) -> bool:
        """Whether the request asked for ``dryRun=All``."""
        return "All" in self.query.get("dryRun", ())


@dataclass
class _Fault:
    status: int
    message: str | None
    remaining: int | None  # None: forever


@dataclass
class _Rollout:
    """What the simulated controller knows about one workload."""

    behaviour: str = "healthy"
    after: int = 0
    pending: bool = False  # a generation change not yet fully reflected in status
    reads: int = 0  # reads since the generation changed
    outcome: str | None = None  # the behaviour of the last observed rollout
    stable_template: dict[str, Any] | None = None  # what the running, healthy pods run
    failing_template: dict[str, Any] | None = None  # the new template that does not come up


@dataclass
class _Result:
    """What a write handler answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


class PatchError(ValueError):
    """A JSON Patch that cannot be applied (the API server answers 422); ``path`` is where."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class FakeKubeApi(ServesHttp):
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

    # -- rollouts --------------------------------------------------------------------------
    def set_rollout(
        self, kind: str, namespace: str, name: str, behaviour: str = "healthy", after: int = 0
    ) -> None:
        """Decide how the next rollouts of a Deployment, StatefulSet or DaemonSet go.

        ``behaviour``: ``healthy`` (every replica updated and ready), ``crashloop`` or
        ``image-pull`` (one replica of the new template waits in CrashLoopBackOff /
        ImagePullBackOff, the rest keep the old template), ``stuck`` (like those, the new pod
        Pending Unschedulable; a Deployment's Progressing condition turns False with
        ProgressDeadlineExceeded). ``after``: the reads of the object that still show the old
        status (for ``stuck``: the reads before the deadline passes). The workload's pods are
        synthesized from now on.
        """
        if kind not in ROLLOUT_KINDS:
            raise ValueError(f"rollouts are simulated for {sorted(ROLLOUT_KINDS)}, not {kind}")
        if behaviour not in ROLLOUT_BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {ROLLOUT_BEHAVIOURS}, not {behaviour!r}")
        with self._lock:
            state = self.rollouts.setdefault((kind, namespace, name), _Rollout())
            state.behaviour, state.after = behaviour, after
            index = self._find(kind, namespace, name)
            if index is not None and state.stable_template is None:
                state.stable_template = _template(self.objects[kind][index])

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

    def _observe(self, kind: str, item: dict[str, Any]) -> None:
        """Let the simulated controllers act on an object about to be read."""
        meta = item["metadata"]
        key = (meta.get("namespace"), meta.get("name"))
        if kind == "Secret" and key in self._pending_tokens:
            self._pending_tokens.discard(key)
            token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ." + "".join(
                self._rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                for _ in range(64)
            )
            data = item.get("data") or {}
            data["token"] = _b64(token)
            data["ca.crt"] = _b64(FAKE_CA_CRT)
            data["namespace"] = _b64(str(meta.get("namespace")))
            item["data"] = data
            meta["resourceVersion"] = self._next_version()
        if kind in ROLLOUT_KINDS:
            self._advance_rollout(kind, item)

    # -- writes ----------------------------------------------------------------------------
    def _write(
        self,
        method: str,
        route: tuple[str, str | None, str | None],
        query: Mapping[str, list[str]],
        body: Any,
        content_type: str | None,
    ) -> _Result:
        kind, namespace, name = route
        dry = query.get("dryRun")
        if dry and dry != ["All"]:
            raise _ApiError(
                400,
                status_body(400, f"Invalid dry run option: {', '.join(dry)}", "BadRequest"),
            )
        dry_run = bool(dry)
        with self._lock:
            if name is None:
                if method != "POST":
                    raise _method_not_allowed()
                return self._create(kind, namespace, body, dry_run)
            if method == "POST":
                raise _method_not_allowed()
            index = self._find(kind, namespace, name)
            if index is None:
                raise self._not_found(kind, name)
            if method == "DELETE":
                return self._delete(kind, index, body, dry_run)
            old = self.objects[kind][index]
            if method == "PUT":
                new = self._replacement(kind, old, body)
            else:
                new = self._patched(kind, old, body, content_type)
            return self._commit(kind, index, new, dry_run)

    def _create(self, kind: str, namespace: str | None, body: Any, dry_run: bool) -> _Result:
        if namespace is None and not self._cluster_scoped(kind):
            raise _method_not_allowed()
        item = self._body_object(kind, body)
        meta = item["metadata"]
        if meta.get("namespace") not in (None, "", namespace) and namespace is not None:
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        name = meta.get("name") or (
            meta["generateName"] + self._random_name() if meta.get("generateName") else None
        )
        if not name:
            message = f'{kind} "" is invalid: metadata.name: Required value: name or generateName is required'
            raise _ApiError(422, status_body(422, message, "Invalid", {"kind": kind}))
        if self._find(kind, namespace, name) is not None:
            message = f'{self.resource(kind)} "{name}" already exists'
            raise _ApiError(
                409, status_body(409, message, "AlreadyExists", self._details(kind, name))
            )
        meta["name"] = name
        if namespace is None:
            meta.pop("namespace", None)
        else:
            meta["namespace"] = namespace
        for server_field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if kind in STATUS_SUBRESOURCE_KINDS:
            item.pop("status", None)
            if kind == "Pod":
                item["status"] = {"phase": "Pending"}
        if dry_run:
            return _Result(201, self._wire(kind, item))
        meta["resourceVersion"] = self._next_version()
        self.objects.setdefault(kind, []).append(item)
        annotations = meta.get("annotations") or {}
        if (
            kind == "Secret"
            and item.get("type") == SA_TOKEN_TYPE
            and SA_NAME_ANNOTATION in annotations
        ):
            self._pending_tokens.add((namespace, name))
        if kind in ROLLOUT_KINDS:
            self._start_rollout(kind, item, None)
        return _Result(201, self._wire(kind, item))

    def _replacement(self, kind: str, old: dict[str, Any], body: Any) -> dict[str, Any]:
        new = self._body_object(kind, body)
        self._check_identity(kind, old, new)
        version = new["metadata"].get("resourceVersion")
        if version and version != old["metadata"].get("resourceVersion"):
            raise self._modified(kind, old["metadata"]["name"])
        return new

    def _patched(
        self, kind: str, old: dict[str, Any], patch: Any, content_type: str | None
    ) -> dict[str, Any]:
        name = old["metadata"]["name"]
        doc = self._wire(kind, old)
        if content_type == JSON_PATCH:
            if not isinstance(patch, list) or not all(isinstance(op, dict) for op in patch):
                message = "json: cannot unmarshal into Go value of type jsonpatch.Patch"
                raise _ApiError(400, status_body(400, message, "BadRequest"))
            try:
                result = apply_json_patch(doc, patch)
            except PatchError as err:
                raise self._invalid(kind, name, err) from None
        elif content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if content_type == STRATEGIC_MERGE_PATCH and kind in self._custom_kinds:
                raise _unsupported_media_type(content_type)
            if not isinstance(patch, dict):
                raise _ApiError(
                    400, status_body(400, "the patch is not a JSON object", "BadRequest")
                )
            result = merge_patch(doc, patch)
        else:
            raise _unsupported_media_type(content_type)
        if not isinstance(result, dict) or not isinstance(result.get("metadata"), dict):
            raise self._invalid(kind, name, PatchError("the patched object has no metadata", ""))
        new = self._body_object(kind, result)
        self._check_identity(kind, old, new)
        version = new["metadata"].get("resourceVersion")
        if version is not None and version != old["metadata"].get("resourceVersion"):
            raise self._modified(kind, name)
        return new

    def _commit(self, kind: str, index: int, new: dict[str, Any], dry_run: bool) -> _Result:
        """Store ``new`` in place of the object at ``index``, as the server's update does."""
        old = self.objects[kind][index]
        meta, old_meta = new["metadata"], old["metadata"]
        for server_field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if server_field in old_meta:
                meta[server_field] = old_meta[server_field]
            else:
                meta.pop(server_field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if kind in STATUS_SUBRESOURCE_KINDS:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        generation_changed = self._generation_changes(kind, old, new)
        if generation_changed:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == old or dry_run:  # a no-op update is not written, so keeps its version
            return _Result(200, self._wire(kind, new))
        meta["resourceVersion"] = self._next_version()
        self.objects[kind][index] = new
        if generation_changed and kind in ROLLOUT_KINDS:
            self._start_rollout(kind, new, old)
        return _Result(200, self._wire(kind, new))

    def _delete(self, kind: str, index: int, body: Any, dry_run: bool) -> _Result:
        item = self.objects[kind][index]
        meta = item["metadata"]
        name = meta["name"]
        preconditions = body.get("preconditions") if isinstance(body, dict) else None
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = (preconditions or {}).get(key)
            if wanted is not None and wanted != meta.get(key):
                message = (
                    f'Operation cannot be fulfilled on {self.resource(kind)} "{name}": '
                    f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {meta.get(key)}"
                )
                raise _ApiError(
                    409, status_body(409, message, "Conflict", self._details(kind, name))
                )
        done = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**self._details(kind, name), "uid": meta.get("uid")},
        }
        if dry_run:
            return _Result(200, done)
        del self.objects[kind][index]
        self._next_version()
        self._pending_tokens.discard((meta.get("namespace"), name))
        state = self.rollouts.get((kind, meta.get("namespace"), name))
        if state is not None:  # a new object of that name starts afresh, with the behaviour kept
            self.rollouts[(kind, meta.get("namespace"), name)] = _Rollout(
                state.behaviour, state.after
            )
        return _Result(200, done)

    def _body_object(self, kind: str, body: Any) -> dict[str, Any]:
        """A write's object without kind/apiVersion; 400 when it is not an object of ``kind``."""
        if not isinstance(body, dict):
            message = "the body of the request was in an unknown format - accepted media types include: application/json"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        item = copy.deepcopy(body)
        body_kind, body_version = item.pop("kind", None), item.pop("apiVersion", None)
        if body_kind not in (None, kind) or body_version not in (None, self.api_version(kind)):
            message = (
                f"the API version in the data ({body_version}) does not match the expected "
                f"API version ({self.api_version(kind)})"
                if body_kind in (None, kind)
                else f"the kind in the data ({body_kind}) does not match the expected kind ({kind})"
            )
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        if not isinstance(item.get("metadata"), dict):
            item["metadata"] = {}
        return item

    def _check_identity(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> None:
        name, meta = old["metadata"]["name"], new["metadata"]
        if meta.get("name") not in (None, name):
            message = f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            raise _ApiError(400, status_body(400, message, "BadRequest"))
        if meta.get("namespace") not in (None, old["metadata"].get("namespace")):
            message = "the namespace of the provided object does not match the namespace sent on the request"
            raise _ApiError(400, status_body(400, message, "BadRequest"))

    def _generation_changes(self, kind: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        if kind in GENERATION_KINDS:
            return bool(old.get("spec") != new.get("spec"))
        if kind in self._custom_kinds:
            ignored = ("metadata", "status")
            return {k: v for k, v in old.items() if k not in ignored} != {
                k: v for k, v in new.items() if k not in ignored
            }
        return False

    # -- errors ----------------------------------------------------------------------------
    def _details(self, kind: str, name: str) -> dict[str, Any]:
        group = self.api_version(kind).rpartition("/")[0]
        return {"name": name, "group": group, "kind": self.resource(kind).split(".")[0]}

    def _not_found(self, kind: str, name: str) -> _ApiError:
        message = f'{self.resource(kind)} "{name}" not found'
        return _ApiError(404, status_body(404, message, "NotFound", self._details(kind, name)))

    def _modified(self, kind: str, name: str) -> _ApiError:
        message = (
            f'Operation cannot be fulfilled on {self.resource(kind)} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again"
        )
        return _ApiError(409, status_body(409, message, "Conflict", self._details(kind, name)))

    def _invalid(self, kind: str, name: str, err: PatchError) -> _ApiError:
        details = {
            **self._details(kind, name),
            "causes": [{"reason": "FieldValueInvalid", "message": str(err), "field": err.path}],
        }
        message = f'{kind} "{name}" is invalid: {err}'
        return _ApiError(422, status_body(422, message, "Invalid", details))

    # -- rollout simulation ----------------------------------------------------------------
    def _start_rollout(self, kind: str, item: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = item["metadata"]
        state = self.rollouts.setdefault((kind, meta.get("namespace"), meta["name"]), _Rollout())
        if state.stable_template is None and old is not None:
            state.stable_template = _template(old)
        state.pending, state.reads = True, 0

    def _advance_rollout(self, kind: str, item: dict[str, Any]) -> None:
        """Count a read of a workload; move its status on once the rollout is due."""
        meta = item["metadata"]
        state = self.rollouts.get((kind, meta.get("namespace"), meta["name"]))
        if state is None or not state.pending:
            return
        state.reads += 1
        due = state.reads > state.after
        if state.behaviour != "stuck" and not due:
            return  # the controller has not got round to it yet
        # a stuck rollout is observed at once; only its deadline waits for ``after`` reads
        state.outcome = state.behaviour
        if state.behaviour == "healthy":
            state.stable_template, state.failing_template = _template(item), None
        else:
            state.failing_template = _template(item)
        status = self._rollout_status(kind, item, state, deadline_exceeded=due)
        if item.get("status") != status:
            item["status"] = status
            meta["resourceVersion"] = self._next_version()
        state.pending = not due

    def _replicas(self, kind: str, item: Mapping[str, Any]) -> int:
        if kind == "DaemonSet":
            return self.daemonset_nodes
        replicas = (item.get("spec") or {}).get("replicas", 1)
        return int(replicas) if replicas is not None else 1

    def _rollout_status(
        self, kind: str, item: dict[str, Any], state: _Rollout, deadline_exceeded: bool
    ) -> dict[str, Any]:
        """The status the controller reports for the rollout of ``item``."""
        meta = item["metadata"]
        name, generation = meta["name"], meta.get("generation", 1)
        total = self._replicas(kind, item)
        healthy = state.outcome == "healthy"
        updated = total if healthy else min(1, total)
        ready = total if healthy else max(total - 1, 0)
        new_hash = _hash(_template(item))
        old_hash = _hash(state.stable_template) if state.stable_template is not None else new_hash
        if kind == "DaemonSet":
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "desiredNumberScheduled": total,
                "currentNumberScheduled": total,
                "updatedNumberScheduled": updated,
                "numberReady": ready,
                "numberAvailable": ready,
                "numberMisscheduled": 0,
            }
            if total > ready:
                status["numberUnavailable"] = total - ready
            return status
        if kind == "StatefulSet":
            return {
                "observedGeneration": generation,
                "replicas": total,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": total if healthy else ready,
                "updatedReplicas": updated,
                "currentRevision": f"{name}-{new_hash if healthy else old_hash}",
                "updateRevision": f"{name}-{new_hash}",
                "collisionCount": 0,
            }
        status = {
            "observedGeneration": generation,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if total > ready:
            status["unavailableReplicas"] = total - ready
        replica_set = f"{name}-{new_hash}"
        if healthy:
            progressing = ("True", "NewReplicaSetAvailable", "has successfully progressed.")
        elif state.outcome == "stuck" and deadline_exceeded:
            progressing = ("False", "ProgressDeadlineExceeded", "has timed out progressing.")
        else:
            progressing = ("True", "ReplicaSetUpdated", "is progressing.")
        minimum = total - total * 25 // 100  # maxUnavailable defaults to 25%, rounded down
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= minimum
            else (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        )
        previous = {c.get("type"): c for c in (item.get("status") or {}).get("conditions") or ()}
        status["conditions"] = [
            _condition(previous.get("Available"), "Available", *available),
            _condition(
                previous.get("Progressing"),
                "Progressing",
                progressing[0],
                progressing[1],
                f'ReplicaSet "{replica_set}" {progressing[2]}',
            ),
        ]
        return status

    def _synthesized_pods(self, namespace: str | None) -> list[dict[str, Any]]:
        """The pods the simulated workloads (in ``namespace``, or all) run now."""
        pods: list[dict[str, Any]] = []
        for (kind, ns, name), state in self.rollouts.items():
            if namespace is not None and ns != namespace:
                continue
            index = self._find(kind, ns, name)
            if index is not None:
                pods += self._workload_pods(kind, self.objects[kind][index], state)
        return pods

    def _workload_pods(
        self, kind: str, workload: dict[str, Any], state: _Rollout
    ) -> list[dict[str, Any]]:
        total = self._replicas(kind, workload)
        plan: list[tuple[dict[str, Any], str]] = []
        if state.outcome not in (None, "healthy") and state.failing_template is not None:
            if state.stable_template is not None:
                plan = [(state.stable_template, "running")] * max(total - 1, 0)
            plan.append((state.failing_template, state.outcome or "running"))
        elif state.stable_template is not None:
            plan = [(state.stable_template, "running")] * total
        return [self._pod(kind, workload, t, i, how) for i, (t, how) in enumerate(plan)]

    def _pod(
        self, kind: str, workload: dict[str, Any], template: dict[str, Any], index: int, how: str
    ) -> dict[str, Any]:
        """One pod of ``workload`` run from ``template``; ``how``: running or a behaviour."""
        meta = workload["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        template_meta = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        template_hash = _hash(template)
        selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = {**selector, **(template_meta.get("labels") or {})}
        owner_kind, owner_name, owner_uid = kind, name, meta.get("uid")
        if kind == "Deployment":
            owner_kind, owner_name = "ReplicaSet", f"{name}-{template_hash}"
            owner_uid = self._uid("ReplicaSet", namespace, owner_name)
            pod_name = f"{owner_name}-{_hash([owner_name, index], 5)}"
            labels["pod-template-hash"] = template_hash
        elif kind == "StatefulSet":
            pod_name = f"{name}-{index}"
            labels["controller-revision-hash"] = f"{name}-{template_hash}"
            labels["statefulset.kubernetes.io/pod-name"] = pod_name
        else:
            pod_name = f"{name}-{_hash([name, template_hash, index], 5)}"
            labels["controller-revision-hash"] = template_hash
        started = meta.get("creationTimestamp", "2026-01-01T00:00:00Z")
        pod_meta: dict[str, Any] = {
            "name": pod_name,
            "namespace": namespace,
            "uid": self._uid("Pod", namespace, pod_name, template_hash),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": started,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner_kind,
                    "name": owner_name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if template_meta.get("annotations"):
            pod_meta["annotations"] = dict(template_meta["annotations"])
        if how != "stuck":
            spec["nodeName"] = f"node-{index % max(self.daemonset_nodes, 1)}"
        return {
            "metadata": pod_meta,
            "spec": spec,
            "status": _pod_status(spec, pod_name, how, started),
        }


class _ApiError(Exception):
    """An error the handler answers with ``status`` and a ``Status`` body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status, self.body = status, body


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


def _method_not_allowed() -> _ApiError:
    message = "the server does not allow this method on the requested resource"
    return _ApiError(405, status_body(405, message, "MethodNotAllowed"))


def _unsupported_media_type(content_type: str | None) -> _ApiError:
    message = (
        f"the body of the request was in an unknown format ({content_type}) - accepted media "
        f"types include: {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}"
    )
    return _ApiError(415, status_body(415, message, "UnsupportedMediaType"))


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _hash(value: Any, length: int = 10) -> str:
    """A stable name suffix for ``value``, in the alphabet Kubernetes uses for generated names."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return "".join(_SAFE_CHARS[b % len(_SAFE_CHARS)] for b in digest[:length])


def _template(workload: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(((workload.get("spec") or {}).get("template")) or {})


def _condition(
    previous: Mapping[str, Any] | None, kind: str, status: str, reason: str, message: str
) -> dict[str, Any]:
    """A Deployment condition; times are kept while status (and reason) stay the same."""
    now = _now()
    previous = previous or {}
    same_status = previous.get("status") == status
    same_reason = same_status and previous.get("reason") == reason
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": previous.get("lastUpdateTime", now) if same_reason else now,
        "lastTransitionTime": previous.get("lastTransitionTime", now) if same_status else now,
        "reason": reason,
        "message": message,
    }


def _pod_status(spec: Mapping[str, Any], pod_name: str, how: str, started: str) -> dict[str, Any]:
    """The status of a synthesized pod: ``how`` is running, crashloop, image-pull or stuck."""
    if how == "stuck":
        return {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu.",
                    "lastTransitionTime": started,
                }
            ],
        }
    statuses = [
        {
            "name": c.get("name"),
            "image": c.get("image"),
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }
        for c in spec.get("containers") or ()
    ]
    if how != "running" and statuses:
        first = statuses[0]
        first.update(ready=False, started=False)
        if how == "crashloop":
            message = f"back-off 1m20s restarting failed container={first['name']} pod={pod_name}"
            first["restartCount"] = 4
            first["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            first["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": started,
                    "finishedAt": started,
                }
            }
        else:
            message = f'Back-off pulling image "{first["image"]}"'
            first["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
    ready = "True" if how == "running" else "False"
    conditions = [
        {"type": t, "status": s, "lastTransitionTime": started}
        for t, s in (
            ("Initialized", "True"),
            ("Ready", ready),
            ("ContainersReady", ready),
            ("PodScheduled", "True"),
        )
    ]
    for condition in conditions[1:3]:
        if condition["status"] == "False":
            condition["reason"] = "ContainersNotReady"
    return {
        "phase": "Pending" if how == "image-pull" else "Running",
        "qosClass": "BestEffort",
        "startTime": started,
        "conditions": conditions,
        "containerStatuses": statuses,
    }


# -- patches and selectors ----------------------------------------------------------------
def _pointer(path: Any) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer."""
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}", str(path))
    if not path:
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, path: str, *, end_ok: bool = False) -> int:
    if end_ok and token == "-":
        return length
    if not re.fullmatch(r"0|[1-9][0-9]*", token) or int(token) > (length if end_ok else length - 1):
        raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return int(token)


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), path)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(tokens[-1], len(parent), path, end_ok=True), value)
    else:
        raise PatchError(f'doc is missing path: "{path}": missing value', path)
    return doc


def _remove(doc: Any, path: str) -> Any:
    """Remove the value at ``path`` (which must exist) and return it."""
    tokens = _pointer(path)
    if not tokens:
        raise PatchError(f'unable to remove the whole document at "{path}"', path)
    parent = _resolve(doc, tokens[:-1], path)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_index(tokens[-1], len(parent), path))
    raise PatchError(f'doc is missing path: "{path}": missing value', path)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's, ``true`` is not ``1`` and ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def apply_json_patch(doc: Any, operations: Iterable[Any]) -> Any:
    """``doc`` after the RFC 6902 ``operations`` (``doc`` itself is not changed).

    Raises PatchError naming the path of the first operation that cannot be applied.
    """
    result = copy.deepcopy(doc)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"invalid JSON patch operation: {operation!r}", "")
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str):
            raise PatchError(f"invalid JSON patch operation: {operation!r}", str(path))
        _pointer(path)
        needs = {
            "add": "value",
            "replace": "value",
            "test": "value",
            "move": "from",
            "copy": "from",
        }
        if op in needs and needs[op] not in operation:
            raise PatchError(f'{op} operation at "{path}" has no "{needs[op]}"', path)
        if op == "add":
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(result, path)
        elif op == "replace":
            tokens = _pointer(path)
            _resolve(result, tokens, path)  # must exist
            if tokens:
                _remove(result, path)
            result = _add(result, path, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = operation["from"]
            if not isinstance(source, str):
                raise PatchError(f'invalid "from" of the {op} operation at "{path}"', path)
            _pointer(source)
            if op == "move" and path.startswith(source + "/"):
                raise PatchError(f'cannot move "{source}" into its child "{path}"', path)
            if op == "move" and source == path:
                _resolve(result, _pointer(source), source)
                continue
            value = (
                _remove(result, source)
                if op == "move"
                else _resolve(result, _pointer(source), source)
            )
            result = _add(result, path, copy.deepcopy(value))
        elif op == "test":
            if not _json_equal(_resolve(result, _pointer(path), path), operation["value"]):
                raise PatchError(f"testing value {path} failed: test failed", path)
        else:
            raise PatchError(f'Unexpected kind: {op!r} at "{path}"', path)
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` after the RFC 7386 merge ``patch`` (neither is changed)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_LABEL_KEY = r"(?:[a-z0-9A-Z.\-]+/)?[a-zA-Z0-9](?:[\w.\-]*[a-zA-Z0-9])?"
_SET_TERM = re.compile(rf"\s*({_LABEL_KEY})\s+(in|notin)\s+\(([^()]*)\)\s*")
_EQUALITY_TERM = re.compile(rf"\s*({_LABEL_KEY})\s*(==|!=|=)\s*([\w.\-]*)\s*")
_EXISTS_TERM = re.compile(rf"\s*(!?)\s*({_LABEL_KEY})\s*")


def parse_label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A predicate on labels for a Kubernetes label selector; ValueError when malformed."""
    terms: list[str] = []
    depth, start = 0, 0
    for position, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:position])
            start = position + 1
    terms.append(text[start:])
    # each requirement: (key, operator, values) with operator in, notin, exists or !exists
    requirements: list[tuple[str, str, frozenset[str]]] = []
    for term in terms:
        if not term.strip() and len(terms) == 1:
            break
        if match := _SET_TERM.fullmatch(term):
            values = frozenset(v.strip() for v in match[3].split(","))
            requirements.append((match[1], match[2], values))
        elif match := _EQUALITY_TERM.fullmatch(term):
            operator = "notin" if match[2] == "!=" else "in"  # k!=v matches labels without k
            requirements.append((match[1], operator, frozenset({match[3]})))
        elif match := _EXISTS_TERM.fullmatch(term):
            requirements.append((match[2], "!exists" if match[1] else "exists", frozenset()))
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r} in {text!r}")

    def matches(labels: Mapping[str, str]) -> bool:
        return all(_satisfies(labels, *requirement) for requirement in requirements)

    return matches


def _satisfies(labels: Mapping[str, str], key: str, operator: str, values: frozenset[str]) -> bool:
    if operator == "exists":
        return key in labels
    if operator == "!exists":
        return key not in labels
    if operator == "in":
        return labels.get(key) in values
    return labels.get(key) not in values


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


def _route(
    path: str,
    routes: Mapping[tuple[str, str], str] = _ROUTES,
    cluster_scoped: Callable[[str], bool] = CLUSTER_SCOPED_KINDS.__contains__,
) -> tuple[str, str | None, str | None] | None:
    """(kind, namespace, name) for a list or object path, or None when the path is not served."""
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
        return "Namespace", None, rest[1]  # /api/v1/namespaces/{name}
    if not rest or len(rest) > 2:
        return None
    kind = routes.get((prefix, rest[0]))
    if kind is None or (namespace is not None and cluster_scoped(kind)):
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
