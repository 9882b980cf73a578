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

Security rules travel in plans as plain dicts (:func:`rule_to_dict`) and become SDK models here
(:func:`nsg_rule_details`, :func:`security_list_rule`). Request bodies are never logged nor put
into messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from okeguard.config import ClusterConfig, OciAuthConfig
from okeguard.inventory.oci_clients import Clients, make_clients
from okeguard.inventory.oci_model import PortRange, SecurityRule
from okeguard.remediations.engine import Backends, StepFailed

REFUSALS = frozenset({400, 401, 403, 404, 409, 412})
WORK_DONE = "SUCCEEDED"
WORK_FAILED = frozenset({"FAILED", "CANCELED"})


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OciWriter:
    """Reads and writes the OCI resources of one cluster (``label`` names it in messages)."""

    def __init__(self, clients: Clients, label: str) -> None:
        self.clients = clients
        self.label = label
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
    # No automatic retries: an update whose answer was lost, retried with the same if-match,
    # would come back 412 and look refused although it landed. A failed call is reported with
    # wrote_nothing=False instead, and the rollback reads the live state.
    clients = make_clients(auth, region, service_endpoints=service_endpoints, retry_attempts=1)
    return OciWriter(clients, f"cluster {cluster.name}")


# -- security rules: plan form <-> okeguard model <-> SDK models -------------------------------


def rule_to_dict(rule: SecurityRule) -> dict[str, Any]:
    """The plan's (JSON) form of a rule."""
    return {
        "direction": rule.direction,
        "protocol": rule.protocol,
        "peer": rule.peer,
        "peer_type": rule.peer_type,
        "stateless": rule.stateless,
        "ports": [rule.ports.min, rule.ports.max] if rule.ports else None,
        "description": rule.description,
    }


def rule_from_dict(data: Mapping[str, Any]) -> SecurityRule:
    ports = data.get("ports")
    return SecurityRule(
        direction="egress" if data["direction"] == "egress" else "ingress",
        protocol=str(data["protocol"]),
        peer=str(data["peer"]),
        peer_type=str(data.get("peer_type") or "CIDR_BLOCK"),
        stateless=bool(data.get("stateless")),
        ports=PortRange(int(ports[0]), int(ports[1])) if ports else None,
        description=data.get("description"),
    )


def _port_options(rule: SecurityRule) -> dict[str, Any]:
    import oci

    core = oci.core.models
    if rule.ports is None:
        return {}
    span = core.PortRange(min=rule.ports.min, max=rule.ports.max)
    if rule.protocol == "6":
        return {"tcp_options": core.TcpOptions(destination_port_range=span)}
    if rule.protocol == "17":
        return {"udp_options": core.UdpOptions(destination_port_range=span)}
    return {}


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
        **_port_options(rule),
    )


def security_list_rule(rule: SecurityRule) -> Any:
    """``IngressSecurityRule`` / ``EgressSecurityRule`` for a security list."""
    import oci

    core = oci.core.models
    common = {"protocol": rule.protocol, "is_stateless": rule.stateless}
    common.update(description=rule.description, **_port_options(rule))
    if rule.direction == "ingress":
        return core.IngressSecurityRule(source=rule.peer, source_type=rule.peer_type, **common)
    return core.EgressSecurityRule(destination=rule.peer, destination_type=rule.peer_type, **common)


def unmirrorable(sdk_rule: Any) -> bool:
    """Whether a live rule has options the plan's rule form cannot carry (ICMP type/code,
    source ports): mirroring it would widen it, so such a rule is never migrated."""
    if getattr(sdk_rule, "icmp_options", None) is not None:
        return True
    for options in (getattr(sdk_rule, "tcp_options", None), getattr(sdk_rule, "udp_options", None)):
        if options is not None and options.source_port_range is not None:
            return True
    return False
