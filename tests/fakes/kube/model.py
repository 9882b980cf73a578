"""Shared pieces of the fake Kubernetes API: constants, the recorded request, write results and
the ``Status`` errors the server answers with."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
class _Result:
    """What a write handler answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
