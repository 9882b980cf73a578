"""Writing to OCI through the real ``oci`` SDK: etags, retry tokens, work requests, refusals.

:class:`OciWriter` wraps the SDK clients of :func:`okeguard.inventory.oci_clients.make_clients`
(``writer.clients["virtual_network"]``, ``["container_engine"]``, ``["vaults"]``,
``["secrets"]``…) and adds what every remediation needs:

- :meth:`OciWriter.read` returns a resource with its etag, so an update can carry ``if_match``;
- :meth:`OciWriter.call` runs one SDK call and turns an ``oci.exceptions.ServiceError`` into a
  :class:`StepFailed` with a one-line message naming the resource: a refusal (400, 404, 409, 412)
  wrote nothing, a 5xx or a timeout may have written something (``wrote_nothing=False``);
- :meth:`OciWriter.wait_for_work_request` polls a Container Engine work request until it
  succeeds; FAILED/CANCELED become :class:`StepFailed` with the service's errors.

Every SDK client of the writer carries :class:`TransientRetryStrategy`: a 429 of any call, and a
5xx, timeout or reset of a read, is retried with backoff (``retrying.py``) and reported to the
run's audit trail; a write answered 5xx is not sent again (it may have landed), nor is a 409 or a
412. Creates carry the step's ``opc-retry-token`` besides.

Security rules travel in plans as plain dicts (:func:`rule_to_dict`) and become SDK models here
(:func:`nsg_rule_details`, :func:`security_list_rule`). Request bodies are never logged nor put
into messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from okeguard.config import ClusterConfig, OciAuthConfig
from okeguard.inventory.oci_clients import Clients, make_clients
from okeguard.inventory.oci_model import IcmpMatch, PortRange, SecurityRule
from okeguard.remediations.engine import Backends, StepFailed
from okeguard.remediations.plan import PlanError
from okeguard.remediations.retrying import (
    READ_METHODS,
    Retrier,
    RetryNote,
    parse_retry_after,
    transient,
)

REFUSALS = frozenset({400, 401, 403, 404, 409, 412})
WORK_DONE = "SUCCEEDED"
WORK_FAILED = frozenset({"FAILED", "CANCELED"})


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OciWriter:
    """Reads and writes the OCI resources of one cluster (``label`` names it in messages)."""

    def __init__(self, clients: Clients, label: str, retrier: Retrier | None = None) -> None:
        self.clients = clients
        self.label = label
        # What the clients' TransientRetryStrategy asks (open_oci_writer shares it with them).
        self.retrier = retrier or Retrier()
        # retry token -> OCID of the NSG a plan step created: saves replaying the create in this
        # process; a crash loses it, and the replay (or the tag search) finds the NSG again.
        self.created: dict[str, str] = {}

    def __getitem__(self, kind: str) -> Any:
        return self.clients[kind]

    # -- the wire --------------------------------------------------------------------------
    def call(
        self, what: str, method: Callable[..., Any], *args: Any, write: bool = True, **kw: Any
    ) -> Any:
        """``method(*args, **kw)``; a ServiceError or a transport error becomes StepFailed."""
        import oci

        try:
            return method(*args, **kw)
        except oci.exceptions.ServiceError as exc:
            status = int(exc.status)
            detail = f"{status} {exc.code}: {_one_line(exc.message)}"
            refused = status in REFUSALS or not write
            raise StepFailed(
                f"{self.label}: {what} was refused ({detail})", wrote_nothing=refused
            ) from None
        except Exception as exc:  # timeouts, resets: the outcome of a write is unknown
            raise StepFailed(
                f"{self.label}: {what} failed: {type(exc).__name__}", wrote_nothing=not write
            ) from None

    def read(self, what: str, method: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
        """(model, etag) of one resource."""
        response = self.call(f"reading {what}", method, *args, write=False)
        return response.data, response.headers.get("etag")

    # -- work requests ---------------------------------------------------------------------
    def wait_for_work_request(self, backends: Backends, work_request_id: str, what: str) -> str:
        """Poll a Container Engine work request until SUCCEEDED; returns its id.

        FAILED or CANCELED raise StepFailed naming the service's errors (``wrote_nothing`` is
        False: a half-done update is possible, so a rollback looks at the live state); so does
        running past ``work_request_timeout_seconds``.
        """
        engine = self.clients["container_engine"]
        timeout = backends.settings.work_request_timeout_seconds
        deadline = backends.clock() + timeout
        while True:
            request, _ = self.read(
                f"work request {work_request_id}", engine.get_work_request, work_request_id
            )
            status = str(request.status)
            if status == WORK_DONE:
                return work_request_id
            if status in WORK_FAILED:
                errors = self.call(
                    f"reading the errors of work request {work_request_id}",
                    engine.list_work_request_errors,
                    request.compartment_id,
                    work_request_id,
                    write=False,
                ).data
                text = "; ".join(_one_line(f"{e.code}: {e.message}") for e in errors or [])
                raise StepFailed(
                    f"{self.label}: {what}: work request {work_request_id} {status}"
                    + (f" ({text})" if text else ""),
                    wrote_nothing=False,
                )
            if backends.clock() >= deadline:
                raise StepFailed(
                    f"{self.label}: {what}: work request {work_request_id} still {status} "
                    f"after {timeout} s",
                    wrote_nothing=False,
                )
            backends.sleep(backends.settings.poll_interval_seconds)

    def write_and_wait(
        self, backends: Backends, what: str, method: Callable[..., Any], *args: Any, **kw: Any
    ) -> str:
        """A Container Engine update answered 202: send it, then wait for its work request."""
        response = self.call(what, method, *args, **kw)
        work_request_id = response.headers.get("opc-work-request-id")
        if not work_request_id:
            return ""
        return self.wait_for_work_request(backends, str(work_request_id), what)


def open_oci_writer(
    cluster: ClusterConfig, auth: OciAuthConfig, service_endpoints: Mapping[str, str] | None
) -> OciWriter:
    """An :class:`OciWriter` for the cluster's region (from the config, else its OCID)."""
    region = cluster.region
    if not region and cluster.cluster_id:
        parts = cluster.cluster_id.split(".")
        region = parts[3] if len(parts) > 4 and parts[3] else None
    if not region:
        raise StepFailed(f"cluster {cluster.name}: set its OCI region to write to OCI")
    # Writes are retried on 429 only: an update whose answer was lost (a 5xx, a timeout), sent
    # again with the same if-match, would come back 412 and look refused although it landed. Such
    # a call is reported with wrote_nothing=False instead, and the rollback reads the live state.
    retrier = Retrier()
    clients = make_clients(
        auth,
        region,
        service_endpoints=service_endpoints,
        retry_strategy=TransientRetryStrategy(retrier),
    )
    return OciWriter(clients, f"cluster {cluster.name}", retrier)


class TransientRetryStrategy:
    """An ``oci`` SDK retry strategy (client- or operation-level ``retry_strategy``) that retries
    what ``retrying.transient`` allows, as ``retrier`` decides and reports.

    Which failures are transient for a read is the SDK's own
    ``TimeoutConnectionAndServiceErrorRetryChecker`` (timeouts, resets, 429, 5xx), configured
    without its default 409 ``IncorrectState``; a write is retried on 429 only. The loop is
    ours, not ``oci.retry``'s: the SDK's strategies neither honour ``Retry-After``, nor tell a
    read from a write, nor report a retry.
    """

    def __init__(self, retrier: Retrier) -> None:
        from oci.retry.retry_checkers import TimeoutConnectionAndServiceErrorRetryChecker

        self.retrier = retrier
        self._reads = TimeoutConnectionAndServiceErrorRetryChecker(
            service_error_retry_config={429: []}, retry_any_5xx=True
        )

    def add_circuit_breaker_callback(self, callback: Any) -> None:
        """Called by every SDK operation; okeguard's clients have no circuit breaker."""

    def make_retrying_call(self, func_ref: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func_ref(*args, **kwargs)`` (the SDK's ``call_api``), retried while transient."""
        method = str(kwargs.get("method") or "GET").upper()
        call = f"OCI {kwargs.get('operation_name') or getattr(func_ref, '__name__', 'call')}"
        started, attempt = self.retrier.clock(), 0
        while True:
            attempt += 1
            try:
                return func_ref(*args, **kwargs)
            except Exception as exc:
                status = getattr(exc, "status", None)
                status = status if isinstance(status, int) else None
                read = method in READ_METHODS
                if not (self._reads.should_retry(exc) if read else transient(method, status)):
                    raise
                headers = getattr(exc, "headers", None) or {}
                retry_after = parse_retry_after(headers.get("retry-after"))
                pause = self.retrier.wait(attempt, started, retry_after)
                if pause is None:
                    raise
                code = getattr(exc, "code", None)
                reason = (
                    f"{status} {code}" if status and code else str(status or type(exc).__name__)
                )
                note = RetryNote(call, status, reason, attempt, pause, retry_after is not None)
                self.retrier.pause(note)


# -- security rules: plan form <-> okeguard model <-> SDK models -------------------------------


def _pair(span: PortRange | None) -> list[int] | None:
    return [span.min, span.max] if span else None


def rule_to_dict(rule: SecurityRule) -> dict[str, Any]:
    """The plan's (JSON) form of a rule: every field that makes it the rule it is."""
    if rule.inexact:
        raise PlanError(
            f"{rule.direction} rule {rule.peer}: {rule.inexact}: cannot be moved exactly"
        )
    return {
        "direction": rule.direction,
        "protocol": rule.protocol,
        "peer": rule.peer,
        "peer_type": rule.peer_type,
        "stateless": rule.stateless,
        "ports": _pair(rule.ports),
        "source_ports": _pair(rule.source_ports),
        "icmp": {"type": rule.icmp.type, "code": rule.icmp.code} if rule.icmp else None,
        "description": rule.description,
    }


def _span(pair: Any) -> PortRange | None:
    return PortRange(int(pair[0]), int(pair[1])) if pair else None


def rule_from_dict(data: Mapping[str, Any]) -> SecurityRule:
    icmp = data.get("icmp")
    code = icmp.get("code") if icmp else None
    return SecurityRule(
        direction="egress" if data["direction"] == "egress" else "ingress",
        protocol=str(data["protocol"]),
        peer=str(data["peer"]),
        peer_type=str(data.get("peer_type") or "CIDR_BLOCK"),
        stateless=bool(data.get("stateless")),
        ports=_span(data.get("ports")),
        description=data.get("description"),
        source_ports=_span(data.get("source_ports")),
        icmp=IcmpMatch(int(icmp["type"]), None if code is None else int(code)) if icmp else None,
    )


def _options(rule: SecurityRule) -> dict[str, Any]:
    """The SDK option models of a rule: TCP/UDP destination and source port ranges, ICMP type
    and code. A rule whose fields do not fit its protocol is refused, never written wider."""
    import oci

    core = oci.core.models
    ports = rule.ports is not None or rule.source_ports is not None
    what = f"{rule.direction} rule {rule.peer}"
    if rule.inexact:
        raise StepFailed(f"{what}: {rule.inexact}: okeguard cannot write it exactly")
    if ports and rule.protocol not in ("6", "17"):
        raise StepFailed(f"{what}: port ranges on protocol {rule.protocol}")
    if rule.icmp is not None and rule.protocol not in ("1", "58"):
        raise StepFailed(f"{what}: ICMP options on protocol {rule.protocol}")
    if rule.icmp is not None:
        return {"icmp_options": core.IcmpOptions(type=rule.icmp.type, code=rule.icmp.code)}
    if not ports:
        return {}

    def span(value: PortRange | None) -> Any:
        return None if value is None else core.PortRange(min=value.min, max=value.max)

    ranges = {
        "destination_port_range": span(rule.ports),
        "source_port_range": span(rule.source_ports),
    }
    if rule.protocol == "6":
        return {"tcp_options": core.TcpOptions(**ranges)}
    return {"udp_options": core.UdpOptions(**ranges)}


def nsg_rule_details(rule: SecurityRule) -> Any:
    """``AddSecurityRuleDetails`` for an NSG."""
    import oci

    ingress = rule.direction == "ingress"
    peer = (
        {"source": rule.peer, "source_type": rule.peer_type}
        if ingress
        else {
            "destination": rule.peer,
            "destination_type": rule.peer_type,
        }
    )
    return oci.core.models.AddSecurityRuleDetails(
        direction=rule.direction.upper(),
        protocol=rule.protocol,
        is_stateless=rule.stateless,
        description=rule.description,
        **peer,
        **_options(rule),
    )


def security_list_rule(rule: SecurityRule) -> Any:
    """``IngressSecurityRule`` / ``EgressSecurityRule`` for a security list."""
    import oci

    core = oci.core.models
    common = {"protocol": rule.protocol, "is_stateless": rule.stateless}
    common.update(description=rule.description, **_options(rule))
    if rule.direction == "ingress":
        return core.IngressSecurityRule(source=rule.peer, source_type=rule.peer_type, **common)
    return core.EgressSecurityRule(destination=rule.peer, destination_type=rule.peer_type, **common)
