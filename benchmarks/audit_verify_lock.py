"""Does ``audit verify`` over a long SQLite audit trail hold up the bot's writes?

Builds a SQLite file with EVENTS correctly chained audit events (bulk appends, 1,000,000 by
default), then, for each mode, verifies the whole trail in a separate process (what
``okeguard audit verify`` does: ``verify_trail``, chain and state tables) while this process
appends single events, one transaction each, every INTERVAL seconds (what the bot does), and
reports the verify time and the latency of those appends.

Modes:
  before          as okeguard was: rollback journal, and verify's transaction begins
                  ``BEGIN IMMEDIATE`` like every other, taking the write lock for its whole read
  wal-write-lock  WAL, but verify still in a write (``BEGIN IMMEDIATE``) transaction
  after           as okeguard is: WAL, ``synchronous=NORMAL``, verify in a read-only session
                  (deferred ``BEGIN``: a snapshot, no write lock)

Examples:
  /work/main/.venv/bin/python benchmarks/audit_verify_lock.py
  /work/main/.venv/bin/python benchmarks/audit_verify_lock.py --events 200000 --modes after
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError

from okeguard.audit import schema
from okeguard.audit.chain import append_event, append_events
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.keys import NO_KEYS
from okeguard.audit.trust import verify_trail

OUT = Path(__file__).parent / "out" / "audit-verify"
MODES = ("before", "wal-write-lock", "after")


def legacy_engine(url: str) -> Engine:
    """The engine ``make_engine`` made before WAL: every transaction ``BEGIN IMMEDIATE``."""
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def engine_for(mode: str, url: str) -> Engine:
    return legacy_engine(url) if mode == "before" else make_engine(url)


def build(path: Path, events: int) -> float:
    """A SQLite file of ``events`` chained events; returns the seconds it took."""
    url = f"sqlite:///{path}"
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, events, batch):
        specs = [
            ("okeguard-bot", "finding.opened", ("finding", n), {"check": "k8s.run-as-root", "n": n})
            for n in range(start, min(events, start + batch))
        ]
        with sessions.begin() as session:
            append_events(session, specs, keys=NO_KEYS)
    engine.dispose()
    return time.perf_counter() - started


def set_journal(path: Path, mode: str) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA journal_mode={'DELETE' if mode == 'before' else 'WAL'}")
    finally:
        connection.close()


def verify_worker(mode: str, url: str, result: Any) -> None:
    """In its own process: verify the whole trail as ``audit verify`` does, timed."""
    engine = engine_for(mode, url)
    sessions = session_factory(engine, read_only=mode == "after")
    started = time.perf_counter()
    with sessions() as session:
        report = verify_trail(session, keys=NO_KEYS)
    result.put({"verify_s": time.perf_counter() - started, "events": report.chain.length})
    engine.dispose()


def append_once(sessions: Any, n: int) -> tuple[float, bool]:
    """(seconds, ok) of one append in its own transaction, as the bot makes them."""
    started = time.perf_counter()
    try:
        with sessions.begin() as session:
            append_event(session, "okeguard-bot", "bench.append", ("bench", n), {}, keys=NO_KEYS)
    except OperationalError:  # "database is locked" after the busy timeout
        return time.perf_counter() - started, False
    return time.perf_counter() - started, True


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return {
        "appends": len(ordered),
        "max_s": max(ordered, default=0.0),
        "p99_s": p99,
        "median_s": statistics.median(ordered) if ordered else 0.0,
    }


def run(mode: str, path: Path, interval: float) -> dict[str, Any]:
    url = f"sqlite:///{path}"
    set_journal(path, mode)
    engine = engine_for(mode, url)
    sessions = session_factory(engine)
    idle = [append_once(sessions, n)[0] for n in range(50)]  # no verify running
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    worker = context.Process(target=verify_worker, args=(mode, url, result))
    worker.start()
    latencies, failed, n = [], 0, 0
    while worker.is_alive():
        n += 1
        seconds, ok = append_once(sessions, 1000 + n)
        latencies.append(seconds)
        failed += not ok
        time.sleep(interval)
    worker.join()
    engine.dispose()
    return {
        "mode": mode,
        **result.get(timeout=10),
        "idle": summary(idle),
        "during_verify": {**summary(latencies), "failed": failed},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--interval", type=float, default=0.05, help="Pause between appends.")
    parser.add_argument("--modes", default=",".join(MODES), help=f"Some of {', '.join(MODES)}.")
    parser.add_argument("--rebuild", action="store_true", help="Build the database afresh.")
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"audit-{args.events}.db"
    if args.rebuild or not path.exists():
        for stale in OUT.glob(f"{path.name}*"):
            stale.unlink()
        print(f"building {args.events:,} events: {build(path, args.events):.1f} s")
    results = []
    for mode in args.modes.split(","):
        outcome = run(mode, path, args.interval)
        results.append(outcome)
        during, idle = outcome["during_verify"], outcome["idle"]
        print(
            f"{mode:15} verify {outcome['verify_s']:6.1f} s ({outcome['events']:,} events) | "
            f"appends during verify: {during['appends']:4d}, failed {during['failed']}, "
            f"max {during['max_s']:.3f} s, p99 {during['p99_s']:.3f} s, "
            f"median {during['median_s']:.4f} s | idle: max {idle['max_s']:.4f} s, "
            f"median {idle['median_s']:.4f} s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
