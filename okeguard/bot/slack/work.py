"""What the bot does, as functions of a :class:`BotContext`: scan and record, find a finding
live, plan it. Slack listeners (``commands``, ``actions``) and the scheduler call these; nothing
here talks to Slack."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from okeguard.audit import queries
from okeguard.audit.models import FindingRecord, FindingStatus
from okeguard.audit.types import utcnow
from okeguard.errors import OkeguardError
from okeguard.logs import current_request_id, request_context

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from okeguard.bot.slack.metrics import Metrics
    from okeguard.bot.slack.people import Authorizer
    from okeguard.bot.slack.posting import Pacer
    from okeguard.checks.model import Finding
    from okeguard.config import Config
    from okeguard.inventory.model import Inventory
    from okeguard.remediations.live import LiveCluster
    from okeguard.remediations.plan import Plan
    from okeguard.scanning import ScanReport


log = logging.getLogger(__name__)


class BotError(OkeguardError):
    """Something the bot cannot do for this user (an unknown cluster or finding…)."""


@dataclass
class BotContext:
    """Everything the listeners and jobs need; built once by ``okeguard serve`` (or a test)."""

    config: Config
    sessions: sessionmaker[Session]
    client: Any  # slack_sdk.WebClient
    authorizer: Authorizer
    pacer: Pacer
    metrics: Metrics
    live_for: Callable[[str], LiveCluster]
    scan: Callable[[Sequence[str], Sequence[str]], ScanReport]
    now: Callable[[], datetime] = utcnow
    bot_user: str = "okeguard-bot"

    def __deepcopy__(self, memo: dict[int, Any]) -> BotContext:
        # Bolt deep-copies a request's context for its lazy listeners; the bot's context (the
        # database, the Slack client, locks) is shared by every listener, never copied.
        return self


BOLT_KEY = "okeguard"  # where the app's middleware puts the BotContext in Bolt's ``context``


def bot_context(context: Mapping[str, Any]) -> BotContext:
    """The :class:`BotContext` of a listener, from its Bolt ``context`` argument."""
    ctx = context[BOLT_KEY]
    if not isinstance(ctx, BotContext):
        raise TypeError(f"context[{BOLT_KEY!r}] is a {type(ctx).__name__}, not a BotContext")
    return ctx


@dataclass
class ClusterScan:
    """One cluster's part of a recorded scan, split the way the Slack post shows it."""

    report: ScanReport
    new: list[Finding] = field(default_factory=list)
    changed: list[Finding] = field(default_factory=list)
    unchanged: int = 0
    score: int = 100
    score_change: int | None = None


def summary_message(part: ClusterScan) -> Any:
    """The Slack post of one cluster's scan (``blocks.scan_summary``)."""
    from okeguard.bot.slack import blocks

    return blocks.scan_summary(
        part.report,
        new=part.new,
        changed=part.changed,
        unchanged_count=part.unchanged,
        score=part.score,
        score_change=part.score_change,
        cluster_label=part.report.cluster,
    )


def scan_and_record(
    ctx: BotContext, clusters: Sequence[str], namespaces: Sequence[str], actor: str
) -> list[ClusterScan]:
    """Scan the clusters, record the report, and split each cluster's open findings into new
    (never seen, or seen resolved), changed (severity or message) and unchanged."""
    # one request id per scan: the Slack interaction's when there is one, else a new one
    with request_context(current_request_id()):
        started = time.monotonic()
        out = _scan_and_record(ctx, clusters, namespaces, actor)
        for scan in out:
            counts = scan.report.count_by_severity()
            log.info(
                "scan of %s by %s: %d open findings (%d new, %d changed), score %d, %.1fs",
                scan.report.cluster,
                actor,
                sum(counts.values()),
                len(scan.new),
                len(scan.changed),
                scan.score,
                time.monotonic() - started,
                extra={
                    "cluster": scan.report.cluster,
                    "complete": scan.report.complete,
                    "findings": dict(counts),
                    "score": scan.score,
                    "duration_seconds": round(time.monotonic() - started, 3),
                },
            )
        return out


def _scan_and_record(
    ctx: BotContext, clusters: Sequence[str], namespaces: Sequence[str], actor: str
) -> list[ClusterScan]:
    from okeguard.audit.recording import record_scan

    report = ctx.scan(clusters, namespaces)
    fingerprints = [f.fingerprint for f in report.findings]
    with ctx.sessions.begin() as session:
        before = queries.finding_states(session, fingerprints)
        record_scan(session, report, actor=actor, started_by=actor, now=ctx.now())
        after = queries.finding_states(session, fingerprints)
        scores = queries.latest_scores(session, [p.cluster for p in (report.parts or (report,))])
    out = []
    for part in report.parts or (report,):
        scan = ClusterScan(part)
        scan.score, scan.score_change = scores.get(part.cluster, (100, None))
        for finding in part.open_findings:
            now_row = after.get(finding.fingerprint)
            if now_row is None or now_row.status != FindingStatus.OPEN.value:
                continue  # exempt, snoozed or accepted in the database
            old = before.get(finding.fingerprint)
            if old is None or old.status == FindingStatus.RESOLVED.value:
                scan.new.append(finding)
            elif old.severity != finding.severity.value or old.message != finding.message:
                scan.changed.append(finding)
            else:
                scan.unchanged += 1
        ctx.metrics.scans.labels(part.cluster, "complete" if part.complete else "incomplete").inc()
        ctx.metrics.posture.labels(part.cluster).set(scan.score)
        for severity, count in part.count_by_severity().items():
            ctx.metrics.open_findings.labels(part.cluster, severity).set(count)
        out.append(scan)
    return out


def finding_record(ctx: BotContext, finding_id: str) -> FindingRecord:
    """The recorded finding that ``finding_id`` names (a fingerprint prefix of at least 6
    characters, or CHECK:NAMESPACE/NAME: ``queries.resolve_finding``); BotError otherwise."""
    with ctx.sessions() as session:
        try:
            record = queries.resolve_finding(session, finding_id)
        except queries.FindingNotFound as exc:
            raise BotError(f"{exc} (see `/okeguard findings`)") from None
        except OkeguardError as exc:
            raise BotError(str(exc)) from None
        session.expunge(record)
        return record


def locate_live(ctx: BotContext, fingerprint: str) -> tuple[Finding, Inventory, LiveCluster]:
    """The finding as the live cluster shows it now (BotError when it is gone)."""
    record = finding_record(ctx, fingerprint)
    live = ctx.live_for(record.cluster)
    inventory = live.read()
    for finding in live.findings(inventory, (record.check_id,)):
        if finding.fingerprint == record.fingerprint:
            return finding, inventory, live
    raise BotError(
        f"finding {record.fingerprint[:12]} ({record.check_id}) is no longer present on "
        f"{record.cluster}: nothing to fix"
    )


def plan_live(
    ctx: BotContext, fingerprint: str, variant: str = "default"
) -> tuple[Plan, LiveCluster]:
    """The plan fixing the finding, made from the live cluster now."""
    from okeguard.remediations.planners import plan_finding

    finding, inventory, live = locate_live(ctx, fingerprint)
    return plan_finding(finding, inventory, live.effective_config.remediation, variant), live
