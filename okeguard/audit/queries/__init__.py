"""The audit database's reads, named: what the Slack bot and the command line ask of it.

Both front doors call these instead of building SQL themselves (``okeguard/bot`` holds no
``select``); changes with their audit events are in ``okeguard.audit.stores`` and
``okeguard.audit.recording``. Each function takes the caller's session and only reads.

- ``refs``: finding ids as people type them (:func:`resolve_finding`, one rule everywhere).
- ``findings``: recorded and open findings (worst first: :func:`severity_rank`), the state of
  given fingerprints, the findings on one resource, newest scores, the last scan.
- ``history``: the audit events about findings and their requests, the events of a period.
- ``requests``: requests waiting for approval, requests by state, their approval messages.
- ``exceptions``: exceptions listed and expiring, and what one covers in words.
- ``digest``: the reads behind a digest, one query per table.
"""

from okeguard.audit.queries.digest import (
    digest_findings,
    digest_requests,
    digest_sent_since,
    posture_rows,
    previous_digest,
    scan_sources,
)
from okeguard.audit.queries.exceptions import (
    exception_count,
    exception_pairs,
    exception_scope,
    expiring_exceptions,
    listed_exceptions,
)
from okeguard.audit.queries.findings import (
    SEVERITY_ORDER,
    FindingState,
    finding_states,
    findings_on_resource,
    last_scan,
    latest_scores,
    open_findings,
    recorded_findings,
    severity_rank,
)
from okeguard.audit.queries.history import audit_events, finding_history
from okeguard.audit.queries.refs import (
    MIN_PREFIX,
    FindingAmbiguous,
    FindingNotFound,
    FindingRef,
    FindingRefError,
    findings_by_ref,
    parse_finding_ref,
    resolve_finding,
)
from okeguard.audit.queries.requests import (
    approval_messages,
    pending_request_count,
    pending_requests,
    remediation_requests,
    waiting_for_approval,
)

__all__ = [
    "MIN_PREFIX",
    "SEVERITY_ORDER",
    "FindingAmbiguous",
    "FindingNotFound",
    "FindingRef",
    "FindingRefError",
    "FindingState",
    "approval_messages",
    "audit_events",
    "digest_findings",
    "digest_requests",
    "digest_sent_since",
    "exception_count",
    "exception_pairs",
    "exception_scope",
    "expiring_exceptions",
    "finding_history",
    "finding_states",
    "findings_by_ref",
    "findings_on_resource",
    "last_scan",
    "latest_scores",
    "listed_exceptions",
    "open_findings",
    "parse_finding_ref",
    "pending_request_count",
    "pending_requests",
    "posture_rows",
    "previous_digest",
    "recorded_findings",
    "remediation_requests",
    "resolve_finding",
    "scan_sources",
    "severity_rank",
    "waiting_for_approval",
]
