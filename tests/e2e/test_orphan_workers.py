"""A killed bot leaves no orphaned scan workers (issue 13, part 5).

``okeguard serve`` (the console script, HTTP mode, the fake Slack Web API, a slow fake cluster)
is asked for a scan; while its worker process is busy reading the cluster the bot is SIGKILLed:
its worker, and every other child it had, must be gone within a few seconds.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from tests.e2e.conftest import okeguard_command
from tests.e2e.slack_support import ALICE, APPROVALS, APPROVERS_GROUP, CHANNEL
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlackApi, sign_request, slash_command_body
from tests.helpers import wait_for

SECRET = "fake-signing-secret-0123456789"
GONE_WITHIN_SECONDS = 5.0


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for a reaper has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "okeguard.yaml"
    config = {
        "clusters": [
            {"name": "prod", "context": "fake", "kubeconfig": str(tmp_path / "kubeconfig")}
        ],
        "slack": {
            "channel": CHANNEL,
            "approvals_channel": APPROVALS,
            "approvers": {"groups": [APPROVERS_GROUP]},
            "post_interval_seconds": 0,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _serve(tmp_path: Path, slack: FakeSlackApi) -> tuple[subprocess.Popen[str], int]:
    """Start ``okeguard serve --http 0``; return the process and its Events API port."""
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "OKEGUARD_SLACK_API_URL": slack.base_url,
        "OKEGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    env.pop("KUBECONFIG", None)
    args = ["serve", "--config", str(_config(tmp_path)), "--http", "0", "--health-port", "0"]
    bot = subprocess.Popen(
        [*okeguard_command(), *args, "--host", "127.0.0.1", "--log-format", "text"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # keep reading: a full pipe would block the bot
        assert bot.stderr is not None
        for line in bot.stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert bot.poll() is None, "okeguard serve exited during start-up"
            continue
        found = re.search(r"serving the Events API at http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return bot, int(found.group(1))
    bot.kill()
    raise AssertionError("okeguard serve did not start within 60 s")


def _scan(port: int) -> None:
    body = slash_command_body(text="scan prod", user_id=ALICE, channel_id=CHANNEL)
    headers = {**sign_request(body, SECRET), "Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_a_killed_bot_leaves_no_scan_worker_behind(
    tmp_path: Path, cluster: FakeKubeApi, slack: FakeSlackApi
) -> None:
    bot, port = _serve(tmp_path, slack)
    children: dict[int, str] = {}
    try:
        cluster.reset_requests()
        cluster.delay = 0.5  # every read of the cluster is slow: the scan is still running
        _scan(port)
        workers = wait_for(
            "a scan worker reading the cluster",
            lambda: (
                cluster.requests
                and {p: c for p, c in _children(bot.pid).items() if "spawn_main" in c}
            ),
            timeout=30,
        )
        children = _children(bot.pid)
        assert set(workers) <= set(children)
        os.kill(bot.pid, signal.SIGKILL)
        bot.wait(timeout=10)
        deadline = time.monotonic() + GONE_WITHIN_SECONDS
        while time.monotonic() < deadline and any(_alive(p) for p in children):
            time.sleep(0.05)
        left = {p: c for p, c in children.items() if _alive(p)}
        assert not left, f"still running {GONE_WITHIN_SECONDS} s after the bot died: {left}"
    finally:
        cluster.delay = 0.0
        if bot.poll() is None:
            bot.kill()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)  # do not leak them into the next tests
