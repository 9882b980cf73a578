"""The bot's Slack client: retries for rate limits and dropped connections, and pacing per
channel so a burst of posts never trips Slack's one-message-per-second-per-channel limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

RETRIES = 3


def make_client(token: str, *, base_url: str | None = None, timeout: int = 30) -> Any:
    """A ``WebClient`` with rate-limit (429, honouring Retry-After), connection and server-error
    retry handlers."""
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    kwargs: dict[str, Any] = {"token": token, "timeout": timeout}
    if base_url is not None:
        kwargs["base_url"] = base_url
    client = WebClient(**kwargs)
    client.retry_handlers.extend(
        [
            RateLimitErrorRetryHandler(max_retry_count=RETRIES),
            ConnectionErrorRetryHandler(max_retry_count=RETRIES),
            ServerErrorRetryHandler(max_retry_count=RETRIES),
        ]
    )
    return client


class Pacer:
    """Spaces posts to the same channel at least ``interval`` seconds apart (thread-safe)."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, channel: str) -> None:
        """Block until ``channel`` may take another post, and book the slot."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next.get(channel, now))
            self._next[channel] = slot + self.interval
        if slot > now:
            self.sleep(slot - now)
