"""Slack acknowledgement latency while a scan runs: the bot in HTTP mode against the fakes.

Starts ``okeguard serve --http 0`` in its own process with the fake Slack Web API and a fake Kubernetes API holding ``--deployments`` unhardened
Deployments, so that one scan takes a while. A first ``/okeguard scan`` records the findings
(their fingerprints are the buttons' values). Then, per run, it sends ``/okeguard scan`` and,
while that scan runs, ``--clicks`` signed block-action clicks (``okeguard.snooze`` by default)
at once from a thread pool, timing each HTTP acknowledgement (request sent → response read).
Slack gives up after 3 s; the goal is a p99 well under 300 ms. A baseline of the same clicks
with no scan running is measured first, and 20 clicks one at a time (the cost of one).

Examples:
  /work/venv/bin/python benchmarks/slack_ack.py
  /work/venv/bin/python benchmarks/slack_ack.py --deployments 2000 --runs 5 --json out.json
  /work/venv/bin/python benchmarks/slack_ack.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from okeguard.bot.cli_serve import EVENTS_PATH  # noqa: E402
from tests.fakes.kube_api import FakeKubeApi, running_fake_kube_api  # noqa: E402
from tests.fakes.slack_api import (  # noqa: E402
    FakeSlackApi,
    block_action_body,
    running_fake_slack_api,
    sign_request,
    slash_command_body,
)
from tests.unit.factories import bare_container, namespace, workload  # noqa: E402

SECRET = "bench-signing-secret-0123456789"
CHANNEL = "C0FINDINGS"
USER = "U0ALICE"


def cluster_docs(deployments: int, per_namespace: int = 50) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for i in range(deployments):
        ns = f"team-{i // per_namespace:03d}"
        if i % per_namespace == 0:
            docs.append(namespace(ns))
        docs.append(
            workload(
                name=f"svc-{i:05d}",
                namespace=ns,
                containers=[bare_container("app", image=f"fra.ocir.io/{ns}/svc-{i}:1")],
            )
        )
    return docs


def deliver(port: int, body: bytes) -> tuple[int, float]:
    """POST a signed request; returns (HTTP status, seconds from send to response read)."""
    headers = sign_request(body, SECRET, timestamp=int(time.time()))
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{EVENTS_PATH}", data=body, headers=headers, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - started


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"timed out waiting for {what}")


def button_values(slack: FakeSlackApi, action_id: str) -> list[str]:
    values = []
    for message in slack.messages(CHANNEL):
        for block in message.blocks or ():
            for element in block.get("elements") or ():
                if element.get("type") == "button" and element.get("action_id") == action_id:
                    values.append(element["value"])
    return values


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:  # nearest rank
        return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": pct(50) * 1000,
        "p95_ms": pct(95) * 1000,
        "p99_ms": pct(99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def clicks(port: int, action: str, values: list[str], count: int) -> tuple[list[float], int]:
    """``count`` clicks sent at once (a barrier releases the threads together): the latencies
    of the acknowledged ones, and how many failed (connection reset, or not 200)."""
    barrier = threading.Barrier(count)

    def one(i: int) -> float | None:
        body = block_action_body(
            action,
            values[i % len(values)],
            user_id=USER,
            channel_id=CHANNEL,
            message_ts="1732700000.000100",
            trigger_id=f"trigger-{uuid.uuid4().hex}",
        )
        barrier.wait()
        try:
            status, seconds = deliver(port, body)
        except OSError:  # reset: the listen backlog overflowed
            return None
        return seconds if status == 200 else None

    with ThreadPoolExecutor(max_workers=count) as pool:
        answered = list(pool.map(one, range(count)))
    ok = [seconds for seconds in answered if seconds is not None]
    return ok, len(answered) - len(ok)


@contextlib.contextmanager
def running_bot(
    kube: FakeKubeApi, slack: FakeSlackApi, folder: Path, database: str | None
) -> Iterator[int]:
    """``okeguard serve --http 0`` in its own process (as in production: the load generator
    and the fakes here must not share the bot's GIL); yields its Events API port."""
    import subprocess

    import yaml

    config = {
        "clusters": [{"name": "prod", "context": "fake", "kubeconfig": str(folder / "kubeconfig")}],
        "slack": {"channel": CHANNEL, "post_interval_seconds": 0},
    }
    (folder / "okeguard.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "OKEGUARD_SLACK_API_URL": slack.base_url,
        "OKEGUARD_DATABASE_URL": database or f"sqlite:///{folder / 'bot.db'}",
    }
    okeguard = str(Path(sys.executable).with_name("okeguard"))
    command = [okeguard, "serve", "--config", str(folder / "okeguard.yaml"), "--http", "0"]
    command += ["--health-port", "0", "--host", "127.0.0.1"]
    bot = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert bot.stderr is not None
        for line in bot.stderr:
            if "serving the Events API at" in line:
                port = int(line.rsplit(":", 1)[1].split("/")[0])
                break
        else:
            raise RuntimeError(f"okeguard serve exited ({bot.wait()})")
        yield port
    finally:
        bot.terminate()
        bot.wait(30)


def scan(port: int, slack: FakeSlackApi, tag: str) -> tuple[float, threading.Event]:
    """Send ``/okeguard scan`` and return (time sent, an event set when its summary is posted)."""
    before = len(slack.messages(CHANNEL))
    done = threading.Event()
    sent = time.perf_counter()
    status, _ = deliver(
        port, slash_command_body(text="scan prod", user_id=USER, channel_id=CHANNEL, trigger_id=tag)
    )
    if status != 200:
        raise RuntimeError(f"/okeguard scan answered {status}")

    def watch() -> None:
        wait_for("the scan summary", lambda: len(slack.messages(CHANNEL)) > before)
        done.set()

    threading.Thread(target=watch, daemon=True).start()
    return sent, done


@contextlib.contextmanager
def postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server (as the tests' fixture makes one), dropped after."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"okeguard_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{server}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "deployments": args.deployments,
        "clicks": args.clicks,
        "action": args.action,
        "database": "postgresql" if args.postgres else "sqlite",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "runs": [],
    }
    with (
        postgres_schema(args.postgres) if args.postgres else contextlib.nullcontext() as pg_url,
        tempfile.TemporaryDirectory() as tmp,
        running_fake_kube_api(cluster_docs(args.deployments)) as kube,
        running_fake_slack_api() as slack,
    ):
        folder = Path(tmp)
        kube.write_kubeconfig(folder / "kubeconfig", context="fake")
        with running_bot(kube, slack, folder, pg_url) as port:
            started, done = scan(port, slack, "t-warm-up")
            done.wait(600)
            results["first_scan_s"] = time.perf_counter() - started
            values = button_values(slack, args.action) or ["0" * 64]
            serial = []
            for _ in range(20):
                serial += clicks(port, args.action, values, 1)[0]
                time.sleep(0.05)
            results["serial"] = percentiles(serial)
            time.sleep(0.5)
            latencies, failed = clicks(port, args.action, values, args.clicks)
            results["baseline"] = {**percentiles(latencies), "failed": failed}
            print(json.dumps({k: results[k] for k in ("serial", "baseline")}), file=sys.stderr)
            time.sleep(0.5)
            for i in range(args.runs):
                started, done = scan(port, slack, f"t-scan-{i}-{uuid.uuid4().hex}")
                time.sleep(args.click_after)
                scan_running = not done.is_set()
                latencies, failed = clicks(port, args.action, values, args.clicks)
                clicked_at = time.perf_counter()
                scan_running = scan_running and not done.is_set()
                done.wait(600)
                run_result = {**percentiles(latencies), "failed": failed}
                run_result["scan_s"] = time.perf_counter() - started
                run_result["scan_outlasted_clicks"] = scan_running
                run_result["scan_left_after_clicks_s"] = time.perf_counter() - clicked_at
                results["runs"].append(run_result)
                print(json.dumps({"run": i + 1, **run_result}), file=sys.stderr)
                time.sleep(0.5)  # the lazy listeners finish
        all_latencies = [r for r in results["runs"]]
        results["summary"] = {
            key: statistics.median(r[key] for r in all_latencies)
            for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "scan_s")
        }
        results["ephemerals"] = len(slack.ephemerals(CHANNEL))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1500)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--action",
        default="okeguard.snooze",
        choices=["okeguard.snooze", "okeguard.preview", "okeguard.accept"],
    )
    parser.add_argument(
        "--click-after", type=float, default=0.3, help="Seconds after the scan command."
    )
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        help="Use a fresh schema on this PostgreSQL server (default: a SQLite file), e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--json", help="Write the results to this file.")
    args = parser.parse_args()
    results = run(args)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
