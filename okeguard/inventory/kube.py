"""Reading a live cluster through the Kubernetes API.

Each supported kind is read with ONE paginated, cluster-wide LIST (``limit=500``, following
``continue``), so the number of requests grows with the number of objects, never with the number
of namespaces. Kinds are listed concurrently over one ``ApiClient``. Response bodies are parsed
with orjson instead of the client's model classes, which are far too slow for 10,000+ objects.

A kind the credentials may not list (403), that the server does not serve (404) or that keeps
failing (5xx) becomes a :class:`Gap`, so checks over it report ``unknown``. Rejected credentials,
an unreachable server, a bad context or a failing exec credential plugin raise
:class:`ClusterAccessError` with one line that names the context and says what to do.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import orjson

from okeguard.errors import ClusterAccessError
from okeguard.inventory.kubeconfig import Kubeconfig, resolve_context
from okeguard.inventory.model import (
    CLUSTER_SCOPED_KINDS,
    SUPPORTED_KINDS,
    Gap,
    Inventory,
    K8sObject,
    SourceInfo,
    build_inventory,
)
from okeguard.inventory.normalize import NotAnObject, to_object

log = logging.getLogger(__name__)

PAGE_SIZE = 500
LIST_WORKERS = 8
IN_CLUSTER = "in-cluster"

# apiVersion -> the kubernetes.client API class that serves it
_API_CLASSES: Mapping[str, str] = {
    "v1": "CoreV1Api",
    "apps/v1": "AppsV1Api",
    "batch/v1": "BatchV1Api",
    "rbac.authorization.k8s.io/v1": "RbacAuthorizationV1Api",
    "networking.k8s.io/v1": "NetworkingV1Api",
}


def _lister(kind: str) -> tuple[str, str]:
    """(API class, cluster-wide list method): ``list_node``, ``list_pod_for_all_namespaces``…"""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
    suffix = "" if kind in CLUSTER_SCOPED_KINDS else "_for_all_namespaces"
    return _API_CLASSES[SUPPORTED_KINDS[kind]], f"list_{snake}{suffix}"


LISTERS: Mapping[str, tuple[str, str]] = {kind: _lister(kind) for kind in SUPPORTED_KINDS}

_OKE_REFRESH = (
    "for OKE check that `oci ce cluster generate-token --cluster-id <cluster OCID>` works "
    "(renew an expired session with `oci session authenticate`) or re-create the kubeconfig "
    "with `oci ce cluster create-kubeconfig`"
)


@dataclass(frozen=True)
class _Target:
    """The cluster being read: for messages only, never credentials."""

    context: str
    server: str
    kubeconfig: str | None = None
    exec_command: str | None = None

    @property
    def label(self) -> str:
        return (
            "in-cluster ServiceAccount"
            if self.context == IN_CLUSTER
            else f"context '{self.context}'"
        )


def _one_line(text: object, limit: int = 240) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _ClientLogCapture(logging.Filter):
    """Keeps the client's log noise off the user's terminal while it runs.

    The config loader ``logging.error``s a failing exec plugin and carries on without
    credentials: those messages are kept to report the failure as one line. urllib3 warns on
    every retry: those become debug messages, since the outcome is reported anyway.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and "kubernetes" in record.pathname:
            self.messages.append(_one_line(record.getMessage()))
            return False
        if record.name == "urllib3.connectionpool" and record.levelno == logging.WARNING:
            log.debug("urllib3: %s", record.getMessage())
            return False
        return True


@contextmanager
def _client_logs_captured() -> Iterator[_ClientLogCapture]:
    capture = _ClientLogCapture()
    loggers = (logging.getLogger(), logging.getLogger("urllib3.connectionpool"))
    for logger in loggers:
        logger.addFilter(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeFilter(capture)


def _configuration(pool_size: int) -> Any:
    import urllib3
    from kubernetes import client

    cfg = client.Configuration()
    cfg.connection_pool_maxsize = pool_size
    # 5xx and 429 are retried with backoff before a kind becomes a gap; a refused connection is
    # retried once; read timeouts and TLS failures are not (they would only multiply the wait).
    cfg.retries = urllib3.Retry(
        total=4,
        connect=1,
        read=0,
        other=0,
        status=3,
        backoff_factor=0.2,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    return cfg


def _has_credentials(cfg: Any) -> bool:
    api_key = cfg.api_key or {}
    return bool(api_key.get("BearerToken") or api_key.get("authorization") or cfg.cert_file)


def _kubeconfig_client(config: Kubeconfig, context: str, pool_size: int) -> tuple[Any, _Target]:
    from kubernetes import config as loaders

    kube_config: Any = loaders  # partly typed upstream; we only need two calls

    cluster_name, user_name = config.contexts[context]
    user = config.user(user_name)
    exec_command = user.exec_command if user is not None and "exec" in user.auth else None
    target = _Target(context, config.servers.get(cluster_name, ""), config.label, exec_command)
    cfg = _configuration(pool_size)
    with _client_logs_captured() as capture:
        try:
            api_client = kube_config.new_client_from_config(
                config_file=config.label,
                context=context,
                persist_config=False,
                client_configuration=cfg,
            )
        except (kube_config.ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
            raise ClusterAccessError(
                f"{target.label}: cannot use kubeconfig {config.label}: {_one_line(exc)}"
            ) from None
    target = _Target(context, cfg.host or target.server, config.label, exec_command)
    if exec_command is not None and not _has_credentials(cfg):
        api_client.close()
        raise _exec_failed(target, capture.messages)
    return api_client, target


def _exec_failed(target: _Target, messages: list[str]) -> ClusterAccessError:
    command = target.exec_command or "exec plugin"
    detail = messages[-1] if messages else "it returned no credentials"
    if f"No such file or directory: '{command}'" in detail:  # Popen could not start it
        detail = f"'{command}' was not found on PATH"
    if os.path.basename(command) == "oci":
        fix = (
            "check that the OCI CLI is installed and configured and that "
            "`oci ce cluster generate-token --cluster-id <cluster OCID>` works "
            "(renew an expired session with `oci session authenticate`)"
        )
    else:
        fix = f"run `{command}` yourself to see why"
    return ClusterAccessError(
        f"{target.label}: the credential plugin '{command}' failed ({_one_line(detail, 160)}); {fix}"
    )


def _in_cluster_client(pool_size: int) -> tuple[Any, _Target]:
    from kubernetes import client
    from kubernetes import config as loaders

    kube_config: Any = loaders
    cfg = _configuration(pool_size)
    try:
        kube_config.load_incluster_config(client_configuration=cfg)
    except (kube_config.ConfigException, OSError) as exc:
        raise ClusterAccessError(
            f"in-cluster: cannot load the pod's ServiceAccount credentials: {_one_line(exc)}"
        ) from None
    return client.ApiClient(configuration=cfg), _Target(IN_CLUSTER, str(cfg.host))


def _unauthorized(target: _Target) -> ClusterAccessError:
    if target.context == IN_CLUSTER:
        fix = "check that the pod's ServiceAccount token is mounted and not expired"
    else:
        fix = f"refresh them and retry; {_OKE_REFRESH}"
    return ClusterAccessError(
        f"{target.label}: the API server {target.server} rejected the credentials "
        f"(401 Unauthorized); {fix}"
    )


def _unreachable(target: _Target, exc: BaseException, timeout: float) -> ClusterAccessError:
    from urllib3 import exceptions as u3

    reason: object = exc.reason if isinstance(exc, u3.MaxRetryError) else exc
    if isinstance(reason, u3.NameResolutionError):
        why = "DNS lookup of the host failed"
    elif isinstance(reason, u3.NewConnectionError):
        text = str(reason)
        why = (
            "connection refused"
            if "refused" in text.lower()
            else _one_line(text.split(": ", 1)[-1])
        )
    elif isinstance(reason, u3.ConnectTimeoutError):
        why = "connection timed out"
    elif isinstance(reason, u3.ReadTimeoutError | TimeoutError):
        why = f"no response within {timeout:g}s"
    elif isinstance(reason, u3.SSLError):
        why = f"TLS error: {_one_line(reason, 160)}"
    elif isinstance(reason, u3.ProxyError):
        why = "the proxy failed"
    else:
        why = _one_line(reason or type(exc).__name__, 160)
    return ClusterAccessError(
        f"{target.label}: cannot reach the API server at {target.server}: {why}"
    )


def _status_reason(exc: Any) -> str:
    """``403 Forbidden: <message of the Status body>`` for an ApiException."""
    code = int(exc.status or 0)
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = str(exc.reason or "error")
    message = None
    try:
        body = orjson.loads(exc.body or b"")
        if isinstance(body, dict) and body.get("message"):
            message = _one_line(body["message"])
    except (orjson.JSONDecodeError, TypeError):
        pass
    return f"{code} {phrase}: {message}" if message else f"{code} {phrase}"


def _get(target: _Target, timeout: float, call: Callable[..., Any], **kwargs: Any) -> bytes:
    """Body of one GET; ``ApiException`` for a non-2xx status other than 401."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        response = call(_preload_content=False, _request_timeout=timeout, **kwargs)
        try:
            return bytes(response.data)
        finally:
            response.release_conn()
    except ApiException as exc:
        if exc.status == 401:
            raise _unauthorized(target) from None
        if not exc.status:  # the REST layer reports TLS failures as status 0
            raise ClusterAccessError(
                f"{target.label}: cannot reach the API server at {target.server}: "
                f"{_one_line(exc.reason, 160)}"
            ) from None
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _unreachable(target, exc, timeout) from None


def _server_version(api_client: Any, target: _Target, timeout: float) -> str | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        body = orjson.loads(_get(target, timeout, client.VersionApi(api_client).get_code))
    except (ApiException, orjson.JSONDecodeError):
        return None  # /version forbidden or odd: not fatal, the lists will tell
    version = body.get("gitVersion") if isinstance(body, dict) else None
    return str(version) if version else None


def _list_kind(
    api_client: Any, target: _Target, kind: str, timeout: float
) -> tuple[list[K8sObject], Gap | None]:
    """Every object of ``kind`` via one paginated cluster-wide LIST, or a gap saying why not."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api_name, method = LISTERS[kind]
    lister = getattr(getattr(client, api_name)(api_client), method)
    api_version = SUPPORTED_KINDS[kind]
    for attempt in range(2):  # an expired continue token (410) restarts the list once
        objects: list[K8sObject] = []
        token: str | None = None
        seen: set[str] = set()
        try:
            while True:
                body = orjson.loads(_get(target, timeout, lister, limit=PAGE_SIZE, _continue=token))
                for item in body.get("items") or ():
                    if not isinstance(item, dict):
                        continue
                    item["kind"] = kind  # list items carry neither kind nor apiVersion
                    item["apiVersion"] = api_version
                    try:
                        obj = to_object(item)
                    except NotAnObject:
                        continue
                    if obj is not None:
                        objects.append(obj)
                token = (body.get("metadata") or {}).get("continue") or None
                if token is None:
                    log.debug("listed %d %s objects in %d pages", len(objects), kind, len(seen) + 1)
                    return objects, None
                if token in seen:
                    return [], Gap("kubernetes", kind, "the server repeated a continue token")
                seen.add(token)
        except ApiException as exc:
            if exc.status == 410 and attempt == 0:
                continue
            return [], Gap("kubernetes", kind, _status_reason(exc))
        except (orjson.JSONDecodeError, AttributeError):
            return [], Gap("kubernetes", kind, "the server sent an invalid list response")
    return [], Gap("kubernetes", kind, "410 Gone: the list kept expiring")  # pragma: no cover


def _list_all(
    api_client: Any, target: _Target, timeout: float
) -> tuple[list[K8sObject], list[Gap]]:
    objects: list[K8sObject] = []
    gaps: list[Gap] = []
    pool = ThreadPoolExecutor(max_workers=LIST_WORKERS, thread_name_prefix="okeguard-list")
    try:
        futures: dict[str, Future[tuple[list[K8sObject], Gap | None]]] = {
            kind: pool.submit(_list_kind, api_client, target, kind, timeout)
            for kind in SUPPORTED_KINDS
        }
        for kind in SUPPORTED_KINDS:  # collect in a fixed order so inventories are reproducible
            kind_objects, gap = futures[kind].result()
            objects += kind_objects
            if gap is not None:
                gaps.append(gap)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return objects, gaps


def collect_live(
    context: str | None = None,
    *,
    kubeconfig: str | None = None,
    in_cluster: bool = False,
    cluster_name: str | None = None,
    request_timeout: float = 30.0,
) -> tuple[Inventory, dict[str, Any]]:
    """Read the whole cluster behind ``context`` (or the current context, or in-cluster config).

    Returns the inventory (secret values redacted, unreadable kinds recorded as gaps) and the
    ``cluster_info`` to store in a snapshot: context, server URL and Kubernetes version.
    Raises :class:`ClusterAccessError` when the cluster cannot be used at all.
    """
    captured_at = datetime.now(UTC)
    pool_size = LIST_WORKERS + 2
    if in_cluster:
        api_client, target = _in_cluster_client(pool_size)
        users = None
    else:
        config, name = resolve_context(kubeconfig, context)
        api_client, target = _kubeconfig_client(config, name, pool_size)
        users = list(config.users)
    try:
        with _client_logs_captured():  # an exec token refreshed mid-run logs its failures too
            version = _server_version(api_client, target, request_timeout)
            objects, gaps = _list_all(api_client, target, request_timeout)
    finally:
        api_client.close()
    cluster_info: dict[str, Any] = {
        "context": target.context,
        "server": target.server,
        "kubernetes_version": version,
    }
    inventory = build_inventory(
        objects,
        cluster=cluster_name or target.context,
        source=SourceInfo("live", {**cluster_info, "kubeconfig": target.kubeconfig}),
        whole_cluster=True,
        captured_at=captured_at,
        kubeconfig_users=users,
        gaps=gaps,
    )
    return inventory, cluster_info


def open_api_client(
    context: str | None = None,
    *,
    kubeconfig: str | None = None,
    in_cluster: bool = False,
    pool_size: int = 4,
) -> tuple[Any, str]:
    """A ``kubernetes`` ApiClient for the context (or in-cluster), and a label naming it.

    The writers of ``okeguard.remediations`` use this; reading goes through :func:`collect_live`.
    """
    if in_cluster:
        api_client, target = _in_cluster_client(pool_size)
    else:
        config, name = resolve_context(kubeconfig, context)
        api_client, target = _kubeconfig_client(config, name, pool_size)
    return api_client, target.label
