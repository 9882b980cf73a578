"""Who may request and who may approve: Slack user IDs and user groups from the configuration.

A group's members are read with ``usergroups.users.list`` and cached for
``slack.group_cache_seconds``. When Slack cannot be asked, the answer is "no" (fail closed):
a refusal names the reason, and nothing is approved on a guess.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from okeguard.approval_policy import ApprovalRules, approval_refusal, slack_person
from okeguard.config import Config, People, SlackConfig

SLACK_ACTOR_PREFIX = "slack:"


def actor_of(user_id: str) -> str:
    """The audit actor of a Slack user: ``slack:U012ABC``."""
    return f"{SLACK_ACTOR_PREFIX}{user_id}"


class Authorizer:
    """Answers "may this Slack user request / approve?" from the configuration."""

    def __init__(
        self, client: Any, settings: SlackConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        """The user IDs of a user group (cached); raises on a Slack error."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(group)
            if cached is not None and now - cached[0] < self.settings.group_cache_seconds:
                return cached[1]
        response = self.client.usergroups_users_list(usergroup=group)
        users = frozenset(response.get("users") or ())
        with self._lock:
            self._cache[group] = (now, users)
        return users

    def _in(self, people: People, user_id: str) -> bool:
        if user_id in people.users:
            return True
        return any(user_id in self.members(group) for group in people.groups)

    def may_request(self, user_id: str) -> bool:
        """Requesters: anyone when none are configured; approvers too."""
        requesters = self.settings.requesters
        if requesters.anyone or self._in(requesters, user_id):
            return True
        return self._in(self.settings.approvers, user_id)

    def may_approve(
        self,
        user_id: str,
        *,
        cluster: str | None = None,
        remediation: str | None = None,
        requester: str | None = None,
        config: Config | None = None,
    ) -> bool:
        """Approvers (nobody when none are configured), narrowed by the scopes of ``cluster``
        and ``remediation``: see :func:`okeguard.approval_policy.approval_refusal`."""
        problem = self.approval_refusal(
            user_id, cluster=cluster, remediation=remediation, requester=requester, config=config
        )
        return problem is None

    def approval_refusal(
        self,
        user_id: str,
        *,
        cluster: str | None = None,
        remediation: str | None = None,
        requester: str | None = None,
        config: Config | None = None,
    ) -> str | None:
        """Why ``user_id`` may not approve (None: they may). ``config``, when given, adds the
        command line's names of the same people (``cli.approvers``) and
        ``remediation.allow_self_approval``; without it only ``slack`` settings count."""
        rules = ApprovalRules.of(config) if config is not None else ApprovalRules(self.settings)
        return approval_refusal(
            slack_person(user_id, rules.cli),
            rules,
            cluster=cluster,
            remediation=remediation,
            requester=requester,
            members=self.members,
        )

    def describe_approvers(self) -> str:
        """The approvers as Slack mentions, for messages."""
        parts = [f"<@{u}>" for u in self.settings.approvers.users]
        parts += [f"<!subteam^{g}>" for g in self.settings.approvers.groups]
        return ", ".join(parts) or "nobody (configure slack.approvers)"
