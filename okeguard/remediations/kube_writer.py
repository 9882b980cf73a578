"""Writing to the Kubernetes API through the real ``kubernetes`` client.

One generic writer for every kind: JSON Patch (RFC 6902) and merge patches, creates and deletes,
each optionally as a server-side dry run (``dryRun=All``), always with field manager
``okeguard``. Refusals (a failed ``test`` op: 422; a conflict: 409) become :class:`StepFailed`
with ``wrote_nothing``; a timeout or a 5xx leaves the outcome unknown (``wrote_nothing=False``).
A 429, and a 5xx, timeout or reset of a read or a dry run, is first retried (``retrying.py``).
Request bodies are never put into messages: a Secret patch would carry its data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from okeguard.inventory.model import CLUSTER_SCOPED_KINDS, SUPPORTED_KINDS
from okeguard.remediations.engine import StepFailed
from okeguard.remediations.retrying import Retrier, RetryNote, parse_retry_after, transient

FIELD_MANAGER = "okeguard"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

# Kinds outside the scanned set that remediations touch.
EXTRA_KINDS: Mapping[str, tuple[str, str]] = {
    "ExternalSecret": ("external-secrets.io/v1beta1", "externalsecrets"),
}


def plural(kind: str) -> str:
    """The resource name of a kind: ``NetworkPolicy`` -> ``networkpolicies``."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def resource_path(kind: str, namespace: str | None, name: str | None = None) -> str:
    """The REST path of a kind's collection (``name`` None) or of one object."""
    if kind in EXTRA_KINDS:
        api_version, resource = EXTRA_KINDS[kind]
    elif kind in SUPPORTED_KINDS:
        api_version, resource = SUPPORTED_KINDS[kind], plural(kind)
    else:
        raise StepFailed(f"okeguard does not write {kind} objects")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = prefix
    if namespace is not None and kind not in CLUSTER_SCOPED_KINDS:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{resource}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


def _ref(kind: str, namespace: str | None, name: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


class _TransportError(Exception):
    """No answer: a timeout, a reset, a refused connection (``name`` is the error's type).
    ``sent`` is False when no connection was made: the request never left."""

    def __init__(self, name: str, sent: bool) -> None:
        super().__init__(name)
        self.name = name
        self.sent = sent


def _reason(status: int | None, data: Any) -> str:
    why = data.get("reason") if isinstance(data, dict) else None
    return f"{status} {why}" if why else str(status)


class KubeWriter:
    """Reads and writes single objects of one cluster (``label`` names it in messages)."""

    def __init__(
        self, api_client: Any, label: str, timeout: float = 30.0, retrier: Retrier | None = None
    ) -> None:
        self.api_client = api_client
        self.label = label
        self.timeout = timeout
        self.retrier = retrier or Retrier()

    def close(self) -> None:
        self.api_client.close()

    # -- the wire --------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body) of one request, retried while it fails transiently."""
        dry_run = ("dryRun", "All") in query  # a dry run stores nothing: safe to resend
        retrier, started, attempt = self.retrier, self.retrier.clock(), 0
        while True:
            attempt += 1
            status: int | None
            error: str | None = None
            unsent = False
            try:
                status, data, retry_after = self._send(method, path, query, body, content_type)
            except _TransportError as exc:
                status, data, retry_after, error, unsent = None, None, None, exc.name, not exc.sent
            retryable = transient(method, status, idempotent=dry_run or unsent)
            if status is not None and (status < 400 or not retryable):
                return status, data
            pause = retrier.wait(attempt, started, retry_after) if retryable else None
            if pause is None:
                if status is not None:
                    return status, data
                raise StepFailed(  # the outcome of a write is unknown, unless it was not sent
                    f"{self.label}: {method} {path} failed: {error}",
                    wrote_nothing=method == "GET" or dry_run or unsent,
                )
            reason = error or _reason(status, data)
            note = RetryNote(
                f"{method} {path}", status, reason, attempt, pause, retry_after is not None
            )
            retrier.pause(note)

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str | None,
    ) -> tuple[int, Any, float | None]:
        """One request: (status, parsed JSON body, Retry-After seconds or None)."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            _, url, header_params, body_params, _ = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api_client.call_api(
                method,
                url,
                header_params=header_params,
                body=body_params,
                _request_timeout=self.timeout,
            )
            raw = response.read()
        except Exception as exc:  # urllib3 errors, timeouts: the outcome is unknown
            from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError's base too

            sent = not isinstance(exc, ConnectTimeoutError)
            raise _TransportError(type(exc).__name__, sent) from None
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        retry_after = parse_retry_after((response.headers or {}).get("Retry-After"))
        return int(response.status), data, retry_after

    def _fail(self, what: str, status: int, data: Any, *, write: bool) -> StepFailed:
        message = data.get("message") if isinstance(data, dict) else None
        detail = f"{status} {message}" if message else str(status)
        refused = status in (400, 401, 403, 404, 409, 410, 412, 415, 422)
        return StepFailed(
            f"{self.label}: {what} was refused ({detail})", wrote_nothing=refused or not write
        )

    # -- reads -----------------------------------------------------------------------------
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        status, data = self._call("GET", resource_path(kind, namespace, name))
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise self._fail(f"reading {_ref(kind, namespace, name)}", status, data, write=False)
        return data

    def list_objects(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` matching ``label_selector``."""
        query = [("labelSelector", label_selector)] if label_selector else []
        status, data = self._call("GET", resource_path(kind, namespace), query=query)
        if status != 200 or not isinstance(data, dict):
            raise self._fail(f"listing {kind} in {namespace}", status, data, write=False)
        return list(data.get("items") or [])

    # -- writes ----------------------------------------------------------------------------
    def _write_query(self, dry_run: bool) -> list[tuple[str, str]]:
        query = [("fieldManager", FIELD_MANAGER)]
        if dry_run:
            query.append(("dryRun", "All"))
        return query

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = JSON_PATCH,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Apply a JSON Patch (a list of ops) or a merge patch (a dict); return the result."""
        status, data = self._call(
            "PATCH",
            resource_path(kind, namespace, name),
            query=self._write_query(dry_run),
            body=patch,
            content_type=content_type,
        )
        if status != 200 or not isinstance(data, dict):
            what = ("dry run of " if dry_run else "") + f"patching {_ref(kind, namespace, name)}"
            raise self._fail(what, status, data, write=not dry_run)
        return data

    def create(
        self, kind: str, namespace: str | None, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Create an object; return it as stored (or as it would be, for a dry run)."""
        name = (body.get("metadata") or {}).get("name")
        status, data = self._call(
            "POST",
            resource_path(kind, namespace),
            query=self._write_query(dry_run),
            body=dict(body),
            content_type="application/json",
        )
        if status not in (200, 201) or not isinstance(data, dict):
            what = ("dry run of " if dry_run else "") + f"creating {_ref(kind, namespace, name)}"
            raise self._fail(what, status, data, write=not dry_run)
        return data

    def delete(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        dry_run: bool = False,
    ) -> bool:
        """Delete an object guarded by its uid/resourceVersion; False when it was already gone."""
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions:
            body["preconditions"] = preconditions
        query = [("dryRun", "All")] if dry_run else []
        status, data = self._call(
            "DELETE",
            resource_path(kind, namespace, name),
            query=query,
            body=body,
            content_type="application/json",
        )
        if status == 404:
            return False
        if status not in (200, 202):
            raise self._fail(f"deleting {_ref(kind, namespace, name)}", status, data, write=True)
        return True


def open_kube_writer(
    context: str | None, *, kubeconfig: str | None = None, in_cluster: bool = False
) -> KubeWriter:
    """A :class:`KubeWriter` for a kubeconfig context or the pod's ServiceAccount."""
    from okeguard.inventory.kube import open_api_client

    api_client, label = open_api_client(context, kubeconfig=kubeconfig, in_cluster=in_cluster)
    # The client's own retries (urllib3's, set up for the collector: 5xx and 429 of GETs) would
    # hide a retry from the audit trail and multiply the tries: the writer retries by itself.
    api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return KubeWriter(api_client, label)
