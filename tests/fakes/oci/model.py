"""Shared pieces of the fake OCI API: constants, the recorded request, replies, faults, pending
work, and OCI error bodies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


_ID = r"([^/]+)"
