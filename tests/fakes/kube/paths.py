"""REST paths of the fake Kubernetes API: list and object paths, routing a path to (kind,
namespace, name), and the opaque ``continue`` tokens of paged lists."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping

from okeguard.inventory.model import CLUSTER_SCOPED_KINDS, SUPPORTED_KINDS


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


def _prefix(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


# (api prefix, resource) -> kind, for routing
_ROUTES: dict[tuple[str, str], str] = {
    (_prefix(v), plural(k)): k for k, v in SUPPORTED_KINDS.items()
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
