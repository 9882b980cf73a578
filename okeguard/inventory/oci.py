"""Reading one OKE cluster's OCI side through the ``oci`` SDK into an :class:`OciState`.

Calls run concurrently on a thread pool as soon as what they depend on is known: the cluster
(then its endpoint and load-balancer subnets, node pools, log groups), each node pool (then its
subnets, NSGs and image), each subnet (then its security lists); the tenancy's audit
configuration and the Vault secrets of the configured compartments start at once. Workers never
wait on each other, so a slow endpoint delays only what depends on it.

Every call has a bounded retry (429, 5xx, timeouts) and a timeout. No failed call aborts the
collection: it becomes an :class:`OciGap` naming the area, the resource and, for
``NotAuthorizedOrNotFound``, the IAM policy statement that would grant the read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from okeguard.config import ClusterConfig, OciAuthConfig
from okeguard.inventory.oci_clients import Clients, make_clients, policy_statement
from okeguard.inventory.oci_convert import (
    CONTROL_PLANE_LOG_SERVICE,
    FLOW_LOG_SERVICE,
    image_created,
    to_cluster,
    to_flow_log,
    to_node_pool,
    to_nsg,
    to_security_list,
    to_subnet,
    to_vault_secret,
)
from okeguard.inventory.oci_model import (
    FlowLog,
    NodePool,
    Nsg,
    OciGap,
    OciState,
    OkeCluster,
    SecurityList,
    Subnet,
    VaultSecret,
)

log = logging.getLogger(__name__)

PAGE_LIMIT = 100
_GONE = {"DELETED", "DELETING", "PENDING_DELETION", "SCHEDULING_DELETION"}


class SharedReads:
    """Compartment-wide listings shared by the clusters of one fleet scan.

    Log groups, their logs and Vault secrets belong to compartments, not clusters: without
    sharing, a fleet of N clusters in one compartment would list every log group and secret N
    times (O(N^2) requests). Only
    successful reads are shared; a failed one is tried again by the next cluster, which then
    records its own gap, so no cluster ever passes on another's missing data.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._results: dict[tuple[str, str], list[Any]] = {}

    def get(self, key: tuple[str, str], load: Callable[[], list[Any] | None]) -> list[Any] | None:
        """The shared result of ``key``, loading it (once at a time) when not yet known."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key in self._results:
                return self._results[key]
            result = load()
            if result is not None:
                self._results[key] = result
            return result


def collect_oci(
    cluster: ClusterConfig,
    auth: OciAuthConfig,
    *,
    shared: SharedReads | None = None,
    service_endpoints: Mapping[str, str] | None = None,
    max_workers: int = 8,
    timeout: float = 30.0,
    retry_attempts: int = 3,
    retry_base_sleep: float = 0.5,
) -> OciState:
    """Read the OCI state of ``cluster`` (its ``cluster_id`` in its ``region``).

    ``service_endpoints`` maps a client kind (``container_engine``, ``virtual_network``,
    ``compute``, ``logging``, ``audit``, ``vaults``) to a URL replacing the regional endpoint.
    Returns the state with a gap for everything that could not be read; raises
    :class:`~okeguard.inventory.oci_clients.OciAuthError` only when no credentials load at all.
    """
    region = cluster.region or ""
    if cluster.cluster_id is None:
        gap = OciGap("cluster", f"no cluster_id configured for cluster {cluster.name}")
        return OciState(region=region, cluster=None, gaps=(gap,))
    clients = make_clients(
        auth,
        region,
        service_endpoints=service_endpoints,
        timeout=timeout,
        retry_attempts=retry_attempts,
        retry_base_sleep=retry_base_sleep,
    )
    run = _Collection(
        cluster, cluster.cluster_id, auth.mode, clients, timeout, shared or SharedReads()
    )
    return run.collect(max_workers)


class _Collection:
    """One collection: the task graph, its results and its gaps (guarded by one lock)."""

    def __init__(
        self,
        config: ClusterConfig,
        cluster_id: str,
        auth_mode: str,
        clients: Clients,
        timeout: float,
        shared: SharedReads,
    ) -> None:
        self.config = config
        self.shared = shared
        self.cluster_id = cluster_id
        self.auth_mode = auth_mode
        self.clients = clients
        self.timeout = timeout
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.pending = 0
        self.pool: ThreadPoolExecutor | None = None
        self.seen: set[tuple[str, str]] = set()
        self.cluster: OkeCluster | None = None
        self.compartment_id: str | None = None
        self.pool_order: list[str] = []
        self.node_pools: dict[str, NodePool] = {}
        self.images: dict[str, tuple[str | None, datetime | None]] = {}
        self.subnets: dict[str, Subnet] = {}
        self.security_lists: dict[str, SecurityList] = {}
        self.nsgs: dict[str, Nsg] = {}
        self.flow_logs: list[FlowLog] = []
        self.control_plane_logs: list[bool] = []
        self.audit_days: int | None = None
        self.secrets: list[VaultSecret] = []
        self.gaps: list[OciGap] = []

    # -- the task graph ----------------------------------------------------------------------
    def collect(self, max_workers: int) -> OciState:
        with ThreadPoolExecutor(max_workers, thread_name_prefix="okeguard-oci") as pool:
            self.pool = pool
            self.spawn(self.read_cluster)
            self.spawn(self.read_audit)
            for compartment in self.config.compartments:
                self.spawn(self.read_secrets, compartment)
            with self.idle:
                while self.pending:
                    self.idle.wait()
        return self.state()

    def spawn(self, task: Callable[..., None], *args: Any) -> None:
        assert self.pool is not None
        with self.lock:
            self.pending += 1
        self.pool.submit(self._run, task, args)

    def spawn_once(self, kind: str, ocid: str | None, task: Callable[[str], None]) -> None:
        """Run ``task(ocid)`` unless this resource was already asked for."""
        if not ocid:
            return
        with self.lock:
            if (kind, ocid) in self.seen:
                return
            self.seen.add((kind, ocid))
        self.spawn(task, ocid)

    def _run(self, task: Callable[..., None], args: tuple[Any, ...]) -> None:
        try:
            task(*args)
        except Exception as exc:  # a bug must not hang or abort the collection
            log.exception("OCI collection task %s failed", task.__name__)
            self.gap(task.__name__.removeprefix("read_"), f"internal error: {exc}", None)
        finally:
            with self.idle:
                self.pending -= 1
                self.idle.notify_all()

    # -- calls and gaps ------------------------------------------------------------------------
    def gap(self, area: str, reason: str, ocid: str | None, policy: str | None = None) -> None:
        log.debug("OCI gap in %s (%s): %s", area, ocid, reason)
        with self.lock:
            self.gaps.append(OciGap(area, reason, ocid, policy))

    def call(
        self,
        areas: Iterable[str],
        ocid: str | None,
        fn: Callable[..., Any],
        *args: Any,
        policy_area: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The SDK response of ``fn``, or None after recording a gap in every area."""
        import oci

        try:
            return fn(*args, **kwargs)
        except oci.exceptions.ServiceError as exc:
            reason = f"{exc.status} {exc.code}: {_one_line(exc.message)}"
            denied = exc.status in (403, 404) or exc.code == "NotAuthorizedOrNotFound"
            areas = list(areas)
            for area in areas:
                policy = (
                    policy_statement(
                        policy_area or area, self.auth_mode, self.compartment_id, self.cluster_id
                    )
                    if denied
                    else None
                )
                self.gap(
                    area, ("not authorized or not found: " if denied else "") + reason, ocid, policy
                )
        except Exception as exc:  # timeouts, resets, unreachable endpoints: SDK-wrapped
            text = f"{type(exc).__name__}: {_one_line(exc)}"
            if "timeout" in text.lower() or "timed out" in text.lower():
                text = f"timed out after {self.timeout:g}s ({type(exc).__name__})"
            for area in areas:
                self.gap(area, text, ocid)
        return None

    def list_all(
        self,
        areas: Iterable[str],
        ocid: str | None,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> list[Any] | None:
        import oci

        response = self.call(
            areas,
            ocid,
            oci.pagination.list_call_get_all_results,
            fn,
            *args,
            limit=PAGE_LIMIT,
            **kwargs,
        )
        return None if response is None else list(response.data)

    # -- tasks ---------------------------------------------------------------------------------
    def read_cluster(self) -> None:
        ce = self.clients["container_engine"]
        response = self.call(["cluster"], self.cluster_id, ce.get_cluster, self.cluster_id)
        if response is None:
            return
        cluster = to_cluster(response.data, response.headers.get("etag"))
        with self.lock:
            self.cluster = cluster
            self.compartment_id = cluster.compartment_id
        if cluster.endpoint is not None:
            self.spawn_once("subnet", cluster.endpoint.subnet_id, self.read_subnet)
            for nsg in cluster.endpoint.nsg_ids:
                self.spawn_once("nsg", nsg, self.read_nsg)
        for subnet in cluster.lb_subnet_ids:
            self.spawn_once("subnet", subnet, self.read_subnet)
        self.spawn(self.read_node_pools)
        for compartment in dict.fromkeys((cluster.compartment_id, *self.config.compartments)):
            self.spawn_once("log_groups", compartment, self.read_log_groups)
        if not self.config.compartments:
            self.spawn(self.read_secrets, cluster.compartment_id)

    def read_node_pools(self) -> None:
        ce = self.clients["container_engine"]
        summaries = self.list_all(
            ["node_pools"],
            None,
            ce.list_node_pools,
            self.compartment_id,
            cluster_id=self.cluster_id,
        )
        for summary in summaries or ():
            if summary.lifecycle_state in _GONE:
                continue
            with self.lock:
                self.pool_order.append(summary.id)
            self.spawn(self.read_node_pool, summary.id)

    def read_node_pool(self, pool_id: str) -> None:
        ce = self.clients["container_engine"]
        response = self.call(["node_pools"], pool_id, ce.get_node_pool, pool_id)
        if response is None:
            return
        pool = to_node_pool(response.data, response.headers.get("etag"))
        with self.lock:
            self.node_pools[pool_id] = pool
        for subnet in (*pool.subnet_ids, *pool.pod_subnet_ids):
            self.spawn_once("subnet", subnet, self.read_subnet)
        for nsg in (*pool.nsg_ids, *pool.pod_nsg_ids):
            self.spawn_once("nsg", nsg, self.read_nsg)
        self.spawn_once("image", pool.image_id, self.read_image)

    def read_image(self, image_id: str) -> None:
        compute = self.clients["compute"]
        response = self.call(
            ["node_pools"], image_id, compute.get_image, image_id, policy_area="node_image"
        )
        if response is not None:
            with self.lock:
                self.images[image_id] = (
                    response.data.display_name,
                    image_created(response.data.time_created),
                )

    def read_subnet(self, subnet_id: str) -> None:
        vn = self.clients["virtual_network"]
        response = self.call(["subnet"], subnet_id, vn.get_subnet, subnet_id)
        if response is None:
            return
        subnet = to_subnet(response.data, response.headers.get("etag"))
        with self.lock:
            self.subnets[subnet_id] = subnet
        for sl in subnet.security_list_ids:
            self.spawn_once("security_list", sl, self.read_security_list)

    def read_security_list(self, sl_id: str) -> None:
        vn = self.clients["virtual_network"]
        response = self.call(["security_list"], sl_id, vn.get_security_list, sl_id)
        if response is not None:
            sl = to_security_list(response.data, response.headers.get("etag"))
            with self.lock:
                self.security_lists[sl_id] = sl

    def read_nsg(self, nsg_id: str) -> None:
        vn = self.clients["virtual_network"]
        response = self.call(["nsg"], nsg_id, vn.get_network_security_group, nsg_id)
        if response is None:
            return
        rules = self.list_all(
            ["nsg"], nsg_id, vn.list_network_security_group_security_rules, nsg_id
        )
        if rules is not None:
            nsg = to_nsg(response.data, response.headers.get("etag"), rules)
            with self.lock:
                self.nsgs[nsg_id] = nsg

    def read_log_groups(self, compartment_id: str) -> None:
        logging_client = self.clients["logging"]
        groups = self.shared.get(
            ("log_groups", compartment_id),
            lambda: self.list_all(
                ["flow_logs", "control_plane_log"],
                compartment_id,
                logging_client.list_log_groups,
                compartment_id,
            ),
        )
        for group in groups or ():
            self.spawn(self.read_logs, group.id)

    def read_logs(self, group_id: str) -> None:
        logging_client = self.clients["logging"]
        logs = self.shared.get(
            ("logs", group_id),
            lambda: self.list_all(
                ["flow_logs", "control_plane_log"], group_id, logging_client.list_logs, group_id
            ),
        )
        for item in logs or ():
            source: Any = getattr(getattr(item, "configuration", None), "source", None)
            service = getattr(source, "service", None)
            if service == FLOW_LOG_SERVICE:
                flow = to_flow_log(item)
                with self.lock:
                    self.flow_logs.append(flow)
            elif service == CONTROL_PLANE_LOG_SERVICE and source.resource == self.cluster_id:
                enabled = bool(item.is_enabled) and item.lifecycle_state == "ACTIVE"
                with self.lock:
                    self.control_plane_logs.append(enabled)

    def read_audit(self) -> None:
        tenancy = self.clients.tenancy_id
        if tenancy is None:
            self.gap("audit", "the tenancy OCID is unknown for this auth mode", None)
            return
        audit = self.clients["audit"]
        response = self.call(["audit"], tenancy, audit.get_configuration, tenancy)
        if response is not None:
            with self.lock:
                self.audit_days = response.data.retention_period_days

    def read_secrets(self, compartment_id: str) -> None:
        vaults = self.clients["vaults"]
        summaries = self.shared.get(
            ("secrets", compartment_id),
            lambda: self.list_all(
                ["vault_secrets"], compartment_id, vaults.list_secrets, compartment_id
            ),
        )
        for summary in summaries or ():
            if summary.lifecycle_state not in _GONE:
                self.spawn(self.read_secret_versions, summary)

    def read_secret_versions(self, summary: Any) -> None:
        vaults = self.clients["vaults"]
        versions = self.shared.get(
            ("secret_versions", summary.id),
            lambda: self.list_all(
                ["vault_secrets"], summary.id, vaults.list_secret_versions, summary.id
            ),
        )
        current = next((v for v in versions or () if "CURRENT" in (v.stages or ())), None)
        secret = to_vault_secret(
            summary,
            current.time_created if current else None,
            current.version_number if current else None,
        )
        with self.lock:
            self.secrets.append(secret)

    # -- the result ----------------------------------------------------------------------------
    def state(self) -> OciState:
        pools = tuple(
            _with_image(self.node_pools[p], self.images)
            for p in self.pool_order
            if p in self.node_pools
        )
        covered = set(self.subnets) | ({self.cluster.vcn_id} if self.cluster else set())
        flow_logs = tuple(
            sorted((f for f in self.flow_logs if f.resource_id in covered), key=lambda f: f.id)
        )
        logging_gaps = any(g.area == "control_plane_log" for g in self.gaps)
        cp_enabled: bool | None
        if any(self.control_plane_logs):
            cp_enabled = True
        elif logging_gaps or self.cluster is None:
            cp_enabled = None
        else:
            cp_enabled = False
        return OciState(
            region=self.config.region or "",
            cluster=self.cluster,
            node_pools=pools,
            subnets=dict(sorted(self.subnets.items())),
            security_lists=dict(sorted(self.security_lists.items())),
            nsgs=dict(sorted(self.nsgs.items())),
            flow_logs=flow_logs,
            audit_retention_days=self.audit_days,
            control_plane_log_enabled=cp_enabled,
            vault_secrets=tuple(sorted(self.secrets, key=lambda s: s.id)),
            gaps=tuple(sorted(self.gaps, key=lambda g: (g.area, g.ocid or "", g.reason))),
        )


def _with_image(
    pool: NodePool, images: Mapping[str, tuple[str | None, datetime | None]]
) -> NodePool:
    import dataclasses

    if pool.image_id is None or pool.image_id not in images:
        return pool
    name, created = images[pool.image_id]
    return dataclasses.replace(pool, image_name=name or pool.image_name, image_created=created)


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
