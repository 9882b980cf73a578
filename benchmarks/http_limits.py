"""Limits of the bot's HTTP mode: memory under huge bodies, threads under half-open connections.

Starts ``okeguard serve --http 0`` in its own process (from this checkout, or from ``--tree
DIR``, e.g. an export of an older commit: ``git archive HEAD | tar -x -C /tmp/before``) against
the fake Slack Web API and a SQLite file, and reads the process's ``/proc/PID/status``:

1. ``bodies``: ``--bodies`` clients (8) at once each POST an unsigned ``--body-mb`` (100 MB)
   body to ``/slack/events``: the serve process's RSS before, at its peak (sampled every 20 ms)
   and after, and per client how long until it was answered or cut, and how much it sent.
2. ``half_open``: ``--connections`` (300) connections each send half a request line and stop:
   the process's threads before, while they hang, and after ``--wait`` seconds; meanwhile a
   valid signed ``/okeguard help`` must still be answered 200 (its latency is reported).

Examples:
  /work/venv/bin/python benchmarks/http_limits.py
  git archive HEAD~3 | (mkdir -p /tmp/before && tar -x -C /tmp/before)
  /work/venv/bin/python benchmarks/http_limits.py --tree /tmp/before --json before.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.slack_api import running_fake_slack_api, sign_request  # noqa: E402
from tests.fakes.slack_api import slash_command_body as command_body  # noqa: E402

SECRET = "bench-signing-secret-0123456789"
EVENTS_PATH = "/slack/events"
MIB = 1024 * 1024


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (MiB) and Threads of a process, from /proc/PID/status."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) // 1024
        elif key == "Threads":
            found[key] = int(value)
    return found


@contextlib.contextmanager
def serve(tree: Path, folder: Path, slack_url: str, bot_token: str) -> Iterator[tuple[int, int]]:
    """``okeguard serve --http 0`` from ``tree``; yields (pid, Events API port)."""
    config = folder / "okeguard.yaml"
    config.write_text("slack:\n  channel: C0FINDINGS\n  post_interval_seconds: 0\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "SLACK_BOT_TOKEN": bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "OKEGUARD_SLACK_API_URL": slack_url,
        "OKEGUARD_DATABASE_URL": f"sqlite:///{folder / 'bot.db'}",
    }
    command = [sys.executable, "-c", "from okeguard.bot.cli import main; main()", "serve"]
    command += ["--config", str(config), "--http", "0", "--health-port", "0"]
    command += ["--host", "127.0.0.1"]
    bot = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=folder)
    assert bot.stderr is not None
    port = 0
    for line in bot.stderr:
        if "serving the Events API at" in line:
            port = int(line.rsplit(":", 1)[1].split("/")[0])
            break
    else:
        raise RuntimeError(f"okeguard serve exited ({bot.wait()})")
    log: list[str] = []
    drain = threading.Thread(target=lambda: log.extend(bot.stderr or ()), daemon=True)
    drain.start()
    try:
        yield bot.pid, port
    finally:
        bot.terminate()
        bot.wait(30)
        drain.join(5)
        tracebacks = sum("Traceback" in line for line in log)
        print(json.dumps({"log_lines": len(log), "tracebacks": tracebacks}), file=sys.stderr)


def huge_post(port: int, size: int) -> dict[str, Any]:
    """POST ``size`` bytes (unsigned, 1 MiB at a time, stopping when an answer comes first);
    what came back, how long, bytes sent."""
    started = time.perf_counter()
    sent = 0
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = (
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: bench\r\nContent-Length: {size}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nX-Slack-Request-Timestamp: 1\r\n"
        "X-Slack-Signature: v0=00\r\n\r\n"
    )
    chunk = b"a" * MIB
    outcome = "sent"
    try:
        sock.sendall(head.encode())
        while sent < size:
            if select.select([sock], [], [], 0)[0]:  # answered early: stop, as curl does
                outcome = "answered while sending"
                break
            sock.sendall(chunk[: size - sent])
            sent += min(MIB, size - sent)
    except OSError as exc:
        outcome = f"cut while sending ({type(exc).__name__})"
    status = ""
    try:
        status = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        status = type(exc).__name__
    sock.close()
    return {
        "status": status,
        "outcome": outcome,
        "sent_mb": round(sent / MIB, 1),
        "seconds": round(time.perf_counter() - started, 3),
    }


def signed_help(port: int) -> dict[str, Any]:
    """A valid signed ``/okeguard help``: status and seconds."""
    import urllib.error
    import urllib.request

    body = command_body(text="help", trigger_id=f"t-{time.monotonic_ns()}")
    headers = sign_request(body, SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{EVENTS_PATH}", data=body, headers=headers, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            status: int | str = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        status = type(exc).__name__
    return {"status": status, "seconds": round(time.perf_counter() - started, 3)}


def bodies(pid: int, port: int, count: int, size: int) -> dict[str, Any]:
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                samples.append(proc_status(pid)["VmRSS"])
            time.sleep(0.02)

    before = proc_status(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        clients = list(pool.map(lambda _: huge_post(port, size), range(count)))
    wall = time.perf_counter() - started
    time.sleep(1)
    done.set()
    sampler.join()
    after = proc_status(pid)
    return {
        "clients": count,
        "body_mb": size // MIB,
        "rss_before_mb": before["VmRSS"],
        "rss_peak_mb": max(samples, default=0),
        "rss_after_mb": after["VmRSS"],
        "hwm_mb": after["VmHWM"],
        "wall_s": round(wall, 3),
        "per_client": clients,
        "valid_request_after": signed_help(port),
    }


def half_open(pid: int, port: int, count: int, wait: float) -> dict[str, Any]:
    before = proc_status(pid)["Threads"]
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /slack/ev")
            socks.append(sock)
        except OSError:
            refused += 1
    time.sleep(1.0)
    during = proc_status(pid)["Threads"]
    valid = signed_help(port)
    time.sleep(max(0.0, wait - 1.0))
    later = proc_status(pid)["Threads"]
    for sock in socks:
        sock.close()
    time.sleep(1.0)
    return {
        "connections": count,
        "refused_at_connect": refused,
        "threads_before": before,
        "threads_during": during,
        f"threads_after_{wait:g}s": later,
        "threads_after_close": proc_status(pid)["Threads"],
        "valid_request_during": valid,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="Source tree of okeguard to run.")
    parser.add_argument("--bodies", type=int, default=8)
    parser.add_argument("--body-mb", type=int, default=100)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--wait", type=float, default=12.0, help="Seconds to hold them open.")
    parser.add_argument("--json", help="Write the results to this file.")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "tree": str(args.tree),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    with (
        running_fake_slack_api() as slack,
        tempfile.TemporaryDirectory() as tmp,
        serve(args.tree, Path(tmp), slack.base_url, slack.bot_token) as (pid, port),
    ):
        time.sleep(1.0)
        results["idle"] = {**proc_status(pid), "valid_request": signed_help(port)}
        results["bodies"] = bodies(pid, port, args.bodies, args.body_mb * MIB)
        print(json.dumps(results["bodies"]), file=sys.stderr)
        results["half_open"] = half_open(pid, port, args.connections, args.wait)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
