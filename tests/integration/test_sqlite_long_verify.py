"""SQLite under a long audit (issue 13, part 6): ``okeguard audit verify`` over a long chain
must not hold up the bot's appends. The database is in WAL mode and verify reads in a read-only
transaction, which takes no write lock: appends go on, each well under a second, while it reads.

A real SQLite file with 200,000 correctly chained events, ``okeguard audit verify`` run as the
console script in its own process, and single appends (as the bot makes them) from this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from okeguard.audit import schema
from okeguard.audit.chain import append_event, append_events, check_chain
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.keys import NO_KEYS
from tests.integration.database import Database

EVENTS = 200_000
BATCH = 20_000
SHORT = 1_000
MAX_WRITE_SECONDS = 1.0


def _chain(tmp_path: Path, events: int) -> Iterator[Database]:
    """A SQLite file holding ``events`` chained events (bulk appends, as a recorded scan makes)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    for start in range(0, events, BATCH):
        with sessions.begin() as session:
            append_events(
                session,
                [
                    ("okeguard-bot", "finding.opened", ("finding", n), {"check": "k8s.x", "n": n})
                    for n in range(start, min(events, start + BATCH))
                ],
                keys=NO_KEYS,
            )
    try:
        yield Database(url, engine, sessions)
    finally:
        engine.dispose()


@pytest.fixture
def short_chain(tmp_path: Path) -> Iterator[Database]:
    yield from _chain(tmp_path, SHORT)


@pytest.fixture
def long_chain(tmp_path: Path) -> Iterator[Database]:
    yield from _chain(tmp_path, EVENTS)


def _okeguard() -> str:
    script = Path(sys.executable).with_name("okeguard")
    assert script.exists(), "the okeguard console script is not installed"
    return str(script)


def test_the_database_is_in_wal_mode_with_normal_sync(short_chain: Database) -> None:
    with short_chain.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_a_read_only_session_leaves_the_write_lock_free(short_chain: Database) -> None:
    reader = session_factory(short_chain.engine, read_only=True)
    with reader() as session:
        assert session.execute(text("SELECT count(*) FROM audit_events")).scalar() == SHORT
        started = time.monotonic()  # the read transaction is open: a writer still gets in
        with short_chain.sessions.begin() as writer:
            append_event(writer, "okeguard-bot", "test.append", ("test", 1), {}, keys=NO_KEYS)
        assert time.monotonic() - started < MAX_WRITE_SECONDS
        # ...and the reader keeps its snapshot: the new row is not in it
        assert session.execute(text("SELECT count(*) FROM audit_events")).scalar() == SHORT


@pytest.mark.slow
def test_audit_verify_over_a_long_chain_does_not_hold_up_the_bots_writes(
    long_chain: Database, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "OKEGUARD_DATABASE_URL": long_chain.url,
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
    }
    for name in ("OKEGUARD_AUDIT_KEY", "OKEGUARD_AUDIT_KEY_FILE"):
        env.pop(name, None)
    verify = subprocess.Popen(
        [_okeguard(), "audit", "verify"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    latencies: list[float] = []
    n = 0
    while verify.poll() is None:  # the bot's appends, one event per transaction
        n += 1
        started = time.monotonic()
        with long_chain.sessions.begin() as session:
            append_event(session, "okeguard-bot", "test.append", ("test", n), {}, keys=NO_KEYS)
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    out, err = verify.communicate()
    assert verify.returncode == 0, err
    verified = int(out.split("audit chain intact (")[1].split(" ")[0].replace(",", ""))
    assert EVENTS <= verified < EVENTS + n  # a snapshot taken while the appends went on
    # Appends kept going all through verify: many of them, and none waited a second.
    assert n >= 10, f"verify finished too fast to tell ({n} appends)"
    assert max(latencies) < MAX_WRITE_SECONDS, f"slowest append {max(latencies):.2f} s"
    with long_chain.sessions() as session:
        report = check_chain(session, NO_KEYS)
    assert report.ok and report.length == EVENTS + n
