"""What the Slack bot's end-to-end tests share: the bot's configuration, the people and channels
of the story, and message helpers (the ``cluster`` and ``slack`` fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


class ServeLog:
    """The stderr of a running ``okeguard serve``, read line by line in a thread."""

    def __init__(self) -> None:
        import threading

        self.lines: list[str] = []
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def since(self, mark: int) -> list[str]:
        """The lines logged after the first ``mark`` lines."""
        with self._lock:
            return self.lines[mark:]

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)


@dataclass
class ServeProcess:
    """``okeguard serve --http 0`` in a process of its own: its pid, Events API port and log."""

    pid: int
    port: int
    log: ServeLog

    def status(self) -> dict[str, int]:
        """``VmRSS``, ``VmHWM`` (KiB) and ``Threads`` of the process, from /proc/PID/status."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                found[key] = int(value.split()[0])
        return found


@contextmanager
def served(
    tmp_path: Path,
    slack: FakeSlackApi,
    signing_secret: str,
    *,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[ServeProcess]:
    """The real ``okeguard serve --http 0`` (JSON logs) against ``slack`` with ``bot_config``'s
    settings (a SQLite file unless ``database_url``); ``env`` adds variables. Terminated on exit."""
    import os
    import subprocess
    import sys
    import threading

    import yaml

    config = bot_config(tmp_path).model_dump(mode="json", exclude_defaults=True)
    (tmp_path / "okeguard.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    full_env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "OKEGUARD_SLACK_API_URL": slack.base_url,
        "OKEGUARD_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'bot.db'}",
        "HOME": str(tmp_path),
        **(env or {}),
    }
    command = [str(Path(sys.executable).with_name("okeguard")), "serve", "--http", "0"]
    command += ["--config", str(tmp_path / "okeguard.yaml"), "--health-port", "0"]
    command += ["--host", "127.0.0.1"]
    process = subprocess.Popen(command, env=full_env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    log = ServeLog()
    port = 0
    for line in process.stderr:
        log.add(line.rstrip("\n"))
        if "serving the Events API at" in line:
            port = int(line.rsplit(":", 1)[1].split("/")[0])
            break
    else:
        raise AssertionError(f"okeguard serve exited {process.wait()}: {log.lines}")
    stderr = process.stderr

    def read() -> None:
        for line in stderr:
            log.add(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield ServeProcess(process.pid, port, log)
    finally:
        process.terminate()
        process.wait(30)
        reader.join(5)
