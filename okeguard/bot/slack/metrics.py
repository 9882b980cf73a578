"""Prometheus metrics of the bot (served at ``/metrics`` on the health port)."""

from __future__ import annotations

from typing import Any


class Metrics:
    """The bot's counters and gauges, in their own registry (no process-global state)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.scans = Counter(
            "okeguard_scans", "Scans run by the bot.", ["cluster", "result"], registry=self.registry
        )
        self.open_findings = Gauge(
            "okeguard_open_findings",
            "Open findings of the last recorded scan.",
            ["cluster", "severity"],
            registry=self.registry,
        )
        self.posture = Gauge(
            "okeguard_posture_score", "Posture score (0-100).", ["cluster"], registry=self.registry
        )
        self.remediations = Counter(
            "okeguard_remediations", "Remediation outcomes.", ["state"], registry=self.registry
        )
        self.refusals = Counter(
            "okeguard_refusals", "Refused Slack actions.", ["action"], registry=self.registry
        )
        self.slack_errors = Counter(
            "okeguard_slack_errors", "Failed Slack API calls.", ["method"], registry=self.registry
        )

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        data: Any = generate_latest(self.registry)
        return bytes(data)
