"""What a digest says, as plain data: computed from the database by ``digest.build_digest``,
rendered by ``blocks.digest_message`` and ``chart.trend_png``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from okeguard.audit.anchors import Anchor


@dataclass(frozen=True)
class FindingRow:
    """One finding as a digest lists it."""

    fingerprint: str
    check_id: str
    severity: str
    cluster: str
    resource: str  # e.g. "Deployment shop/web (container app)"
    message: str


@dataclass(frozen=True)
class RequestRow:
    """One remediation request as a digest lists it."""

    id: int
    remediation: str
    cluster: str
    check_id: str
    state: str
    requester: str
    approver: str | None
    at: datetime  # created (pending) or applied (applied)
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ExceptionRow:
    """One exception (waiver) that stops applying soon."""

    id: int
    check_id: str
    selector: str  # e.g. "cluster shop-prod, Deployment shop/web"
    author: str
    reason: str
    expires_at: datetime


@dataclass(frozen=True)
class ClusterDigest:
    """One cluster's posture now and since the last digest."""

    cluster: str
    score: int  # 0-100: the share of checks (weighted by severity) with no open finding
    score_change: int | None  # against the previous digest; None for the first
    by_severity: Mapping[str, int]  # open findings: critical, high, medium, low, info
    new: tuple[FindingRow, ...]
    resolved: tuple[FindingRow, ...]
    top_risks: tuple[FindingRow, ...]  # at most five, worst first
    incomplete: tuple[str, ...] = ()  # what the last scan could not read


@dataclass(frozen=True)
class Digest:
    """The daily digest of one channel."""

    generated_at: datetime
    since: datetime | None  # the previous digest of this channel; None for the first
    clusters: tuple[ClusterDigest, ...]
    pending_approvals: tuple[RequestRow, ...]
    expiring_exceptions: tuple[ExceptionRow, ...]  # expiring within 7 days
    remediations_applied: tuple[RequestRow, ...]  # since the previous digest
    # open findings by day and severity over the last 30 days, per cluster (the chart)
    trend: Mapping[str, Mapping[date, Mapping[str, int]]] = field(default_factory=dict)
    # the audit chain's head when the digest was built: an anchor kept outside the database
    audit_head: Anchor | None = None
