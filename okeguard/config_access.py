"""Who may do what, as configured: Slack people and approver scopes, command-line identities,
and the limits on exceptions. Part of ``okeguard.yaml`` (``okeguard.config`` holds the rest).

The rules that read these settings live in ``okeguard.approval_policy``; the cross-checks that
need the whole file (a scope naming a cluster that is not configured) in ``check_access``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_GROUP = re.compile(r"S[A-Z0-9]{2,}")
CLI_NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class People(_Strict):
    """Slack users and user groups (a group's members are resolved when checked, and cached)."""

    users: tuple[str, ...] = Field((), description="Slack user IDs (U… or W…).")
    groups: tuple[str, ...] = Field((), description="Slack user group IDs (S…).")

    @model_validator(mode="after")
    def _ids(self) -> People:
        for user in self.users:
            if not SLACK_USER.fullmatch(user):
                raise ValueError(f"'{user}' is not a Slack user ID (U… or W…, not a name)")
        for group in self.groups:
            if not SLACK_GROUP.fullmatch(group):
                raise ValueError(f"'{group}' is not a Slack user group ID (S…, not a handle)")
        return self

    @property
    def anyone(self) -> bool:
        return not self.users and not self.groups


class ScopedApprovers(People):
    """The approvers of one cluster or one remediation: they must also be approvers at all."""

    cli: tuple[str, ...] = Field(
        (), description="Command-line approvers by their `cli.approvers` name."
    )

    @property
    def nobody(self) -> bool:
        return self.anyone and not self.cli


class SlackConfig(_Strict):
    """Where the bot posts and who may do what. Tokens come from the environment only."""

    channel: str | None = Field(
        None, description="Channel ID (C…) where scheduled scans post new findings."
    )
    approvals_channel: str | None = Field(
        None, description="Channel ID for approval requests (default: channel)."
    )
    requesters: People = Field(
        default_factory=People,
        description="Who may request fixes, snooze and accept risks (empty: anyone).",
    )
    approvers: People = Field(
        default_factory=People, description="Who may approve fixes (empty: nobody can)."
    )
    approvers_by_cluster: dict[str, ScopedApprovers] = Field(
        default_factory=dict,
        description="Cluster name -> who may approve there (narrows the approvers, never widens).",
    )
    approvers_by_remediation: dict[str, ScopedApprovers] = Field(
        default_factory=dict,
        description="Remediation id -> who may approve it (narrows the approvers, never widens).",
    )
    post_interval_seconds: float = Field(
        1.0, ge=0, description="Least time between two posts to one channel (Slack allows ~1/s)."
    )
    group_cache_seconds: int = Field(
        300, ge=0, description="How long a user group's members are cached."
    )

    @model_validator(mode="after")
    def _channels(self) -> SlackConfig:
        for name in ("channel", "approvals_channel"):
            value = getattr(self, name)
            if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
                raise ValueError(f"{name}: '{value}' is not a channel ID (C…; not #name)")
        for key, scopes in self.scopes():
            for name, scope in scopes.items():
                if scope.nobody:
                    raise ValueError(f"{key}.{name} names nobody: give users, groups or cli")
        return self

    def scopes(self) -> tuple[tuple[str, Mapping[str, ScopedApprovers]], ...]:
        """The scoped approver tables with their keys, for messages."""
        return (
            ("slack.approvers_by_cluster", self.approvers_by_cluster),
            ("slack.approvers_by_remediation", self.approvers_by_remediation),
        )


class CliApprover(_Strict):
    """One person who may approve on the command line, known by their OS user id."""

    uid: int = Field(..., ge=0, le=2**32 - 1, description="OS user id (`id -u`), not the name.")
    name: str = Field(..., description="Short name; the audit actor is `cli:<name>`.")
    slack_user: str | None = Field(
        None, description="The same person's Slack user ID (U…), for requester ≠ approver."
    )

    @model_validator(mode="after")
    def _valid(self) -> CliApprover:
        if not CLI_NAME.fullmatch(self.name):
            raise ValueError(f"name '{self.name}' is not a short lower-case name like 'alice'")
        if self.slack_user is not None and not SLACK_USER.fullmatch(self.slack_user):
            raise ValueError(f"slack_user '{self.slack_user}' is not a Slack user ID (U… or W…)")
        return self


class CliConfig(_Strict):
    """Who the command line's user is: the OS uid, never ``$USER``, which anyone can set."""

    approvers: tuple[CliApprover, ...] = Field(
        (),
        description="OS users who may approve on the command line (empty: nobody; and while "
        "slack.approvers is set, approvals go through Slack).",
    )

    @field_validator("approvers")
    @classmethod
    def _unique(cls, approvers: tuple[CliApprover, ...]) -> tuple[CliApprover, ...]:
        uids = [a.uid for a in approvers]
        names = [a.name for a in approvers]
        for approver in approvers:
            if uids.count(approver.uid) > 1:
                raise ValueError(f"uid {approver.uid} is listed twice")
            if names.count(approver.name) > 1:
                raise ValueError(f"name '{approver.name}' is listed twice")
        return approvers

    def by_uid(self, uid: int) -> CliApprover | None:
        return next((a for a in self.approvers if a.uid == uid), None)


class ExceptionsConfig(_Strict):
    """Limits on exceptions (waivers and accepted risks), from every front door."""

    max_days: int = Field(
        90, ge=1, le=3650, description="Longest an exception may last; every one must expire."
    )


def check_access(
    slack: SlackConfig, cli: CliConfig, clusters: Collection[str], remediations: Collection[str]
) -> None:
    """Cross-checks of the access settings against the rest of the file; raises ValueError."""
    for key, scopes, known, what in (
        ("slack.approvers_by_cluster", slack.approvers_by_cluster, clusters, "configured cluster"),
        (
            "slack.approvers_by_remediation",
            slack.approvers_by_remediation,
            remediations,
            "remediation id",
        ),
    ):
        for name, scope in scopes.items():
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"{key}: '{name}' is not a {what}{hint}")
            names = {a.name for a in cli.approvers}
            for cli_name in scope.cli:
                if cli_name not in names:
                    raise ValueError(f"{key}.{name}.cli: '{cli_name}' is not in cli.approvers")
    scoped = bool(slack.approvers_by_cluster or slack.approvers_by_remediation)
    if scoped and slack.approvers.anyone and not cli.approvers:
        raise ValueError(
            "slack.approvers_by_cluster and _by_remediation narrow slack.approvers and "
            "cli.approvers, which are empty: nobody could approve"
        )
