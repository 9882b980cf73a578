"""What ``okeguard serve`` runs by itself (scheduled scans and digests) and the limits of its HTTP
mode. Part of ``okeguard.yaml`` (``okeguard.config`` holds the rest and re-exports these)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SlackChannel = str


class ScanSchedule(_Strict):
    """Scan a configured cluster (or every one, ``*``) every so many minutes."""

    cluster: str = Field("*", description="A configured cluster name, or * for all.")
    every_minutes: int = Field(60, ge=5, description="Minutes between two scans.")


class DigestSchedule(_Strict):
    """Post the daily digest to a channel at a local time."""

    channel: SlackChannel = Field(..., description="Channel ID (C…).")
    time: str = Field("09:00", description="Local time, HH:MM.")
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.")
    clusters: tuple[str, ...] = Field((), description="Clusters in the digest (default: all).")

    @model_validator(mode="after")
    def _valid(self) -> DigestSchedule:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", self.time):
            raise ValueError(f"time '{self.time}' is not HH:MM (24-hour)")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone '{self.timezone}' is not an IANA time zone") from None
        if not re.fullmatch(r"[CG][A-Z0-9]{2,}", self.channel):
            raise ValueError(f"channel '{self.channel}' is not a channel ID (C…; not #name)")
        return self


class ServeHttpConfig(_Strict):
    """Limits of ``okeguard serve --http``, enforced before a request's signature is checked.
    ``OKEGUARD_HTTP_<KEY>`` (e.g. ``OKEGUARD_HTTP_MAX_BODY_BYTES``) in the environment wins."""

    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body; larger ones get 413 unread."
    )
    read_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Time a client has to send a whole request (408 after)."
    )
    workers: int = Field(16, ge=1, le=256, description="Threads answering verified requests.")
    backlog: int = Field(
        64, ge=0, description="Verified requests waiting for a worker; more get 503 at once."
    )
    max_connections: int = Field(
        512, ge=1, description="Connections open at once; more get 503 at once."
    )


class ServeConfig(_Strict):
    """``okeguard serve`` itself."""

    http: ServeHttpConfig = Field(default_factory=ServeHttpConfig)


class ScheduleConfig(_Strict):
    """What ``okeguard serve`` runs by itself."""

    scans: tuple[ScanSchedule, ...] = Field((), description="Periodic scans.")
    digests: tuple[DigestSchedule, ...] = Field((), description="Daily digests.")
