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

from okeguard.config import People, SlackConfig

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
        """Requesters: anyone when none are configured."""
        requesters = self.settings.requesters
        return requesters.anyone or self._in(requesters, user_id) or self.may_approve(user_id)

    def may_approve(self, user_id: str) -> bool:
        """Approvers: nobody when none are configured."""
        return self._in(self.settings.approvers, user_id)

    def describe_approvers(self) -> str:
        """The approvers as Slack mentions, for messages."""
        parts = [f"<@{u}>" for u in self.settings.approvers.users]
        parts += [f"<!subteam^{g}>" for g in self.settings.approvers.groups]
        return ", ".join(parts) or "nobody (configure slack.approvers)"
