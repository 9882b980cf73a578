"""What the Slack bot's end-to-end tests share: the bot's configuration, the people and channels
of the story, and message helpers (the ``cluster`` and ``slack`` fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from okeguard.config import Config

if TYPE_CHECKING:
    from okeguard.bot.cli_serve import RunningBot
    from tests.fakes.slack_api import FakeSlackApi

CHANNEL = "C0FINDINGS"
APPROVALS = "C0APPROVALS"
ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
APPROVERS_GROUP = "S0APPROVERS"  # Alice and Bob


def bot_config(tmp_path: Path) -> Config:
    """The bot's configuration for ``cluster`` (named ``prod``)."""
    return Config.model_validate(
        {
            "clusters": [
                {"name": "prod", "context": "fake", "kubeconfig": str(tmp_path / "kubeconfig")}
            ],
            "remediation": {"poll_interval_seconds": 0.02, "rollout_timeout_seconds": 10},
            "slack": {
                "channel": CHANNEL,
                "approvals_channel": APPROVALS,
                "approvers": {"groups": [APPROVERS_GROUP]},
                "post_interval_seconds": 0,
            },
        }
    )


def buttons(message: Any) -> dict[str, list[str]]:
    """The buttons of a posted message: action id -> values."""
    found: dict[str, list[str]] = {}
    for block in message.blocks or ():
        for element in block.get("elements") or ():
            if element.get("type") == "button":
                found.setdefault(element["action_id"], []).append(element["value"])
    return found


@contextmanager
def http_bot(
    tmp_path: Path,
    slack: FakeSlackApi,
    signing_secret: str,
    *,
    config: Config | None = None,
    database_url: str | None = None,
) -> Iterator[RunningBot]:
    """The bot in HTTP mode (Events API on a free port) against ``slack``, stopped on exit
    (``bot_config`` and a SQLite file unless ``config`` / ``database_url`` are given)."""
    from okeguard.bot.cli_serve import start_bot

    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "OKEGUARD_SLACK_API_URL": slack.base_url,
    }
    running = start_bot(
        config or bot_config(tmp_path),
        database_url=database_url or f"sqlite:///{tmp_path / 'bot.db'}",
        env=env,
        http_port=0,
        health_port=0,
        host="127.0.0.1",
    )
    try:
        yield running
    finally:
        running.stop()
