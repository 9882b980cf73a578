"""Record scans of the synthetic 10,000-workload snapshot on SQLite and PostgreSQL.

Usage: python benchmarks/record_scale.py [SCANS] [--postgres URL]
Scans the snapshot once, then records that report SCANS times (default 5) into a fresh SQLite
file and a fresh PostgreSQL schema, printing the time of each recording and the database size.
The snapshot is the one ``benchmarks/scan_scale.py`` writes (regenerate it with that script).
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from okeguard.audit import schema
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.recording import record_scan
from okeguard.config import Config
from okeguard.inventory.snapshot import load_snapshot
from okeguard.service import scan_inventory

OUT = Path(__file__).parent / "out" / "w10000-seed20261127"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def bench(url: str, report, scans: int) -> list[float]:  # type: ignore[no-untyped-def]
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    times = []
    now = datetime.now(UTC)
    for n in range(scans):
        started = time.perf_counter()
        with sessions.begin() as session:
            record_scan(
                session, report, actor="bench", started_by="bench", now=now + timedelta(hours=n)
            )
        times.append(time.perf_counter() - started)
    engine.dispose()
    return times


def main() -> None:
    scans = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    snapshot = OUT / "snapshot.jsonl"
    if not snapshot.exists():
        snapshot = Path(__file__).parent / "out" / "snapshot.jsonl"
    report = scan_inventory(load_snapshot(str(snapshot)), Config(), now=datetime.now(UTC))
    print(f"{len(report.findings)} findings in the report")
    db = Path("/tmp") / f"record-{uuid.uuid4().hex[:8]}.db"
    times = bench(f"sqlite:///{db}", report, scans)
    print(
        f"sqlite: first {times[0]:.2f}s, then {[round(t, 2) for t in times[1:]]}; "
        f"{db.stat().st_size / 1e6:.1f} MB"
    )
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        times = bench(f"{PG}?options=-csearch_path%3D{name}", report, scans)
        with admin.connect() as conn:
            size = conn.execute(
                text(
                    "SELECT sum(pg_total_relation_size(quote_ident(schemaname)||'.'||quote_ident(tablename)))"
                    " FROM pg_tables WHERE schemaname = :s"
                ),
                {"s": name},
            ).scalar()
        print(
            f"postgresql: first {times[0]:.2f}s, then {[round(t, 2) for t in times[1:]]}; "
            f"{float(size or 0) / 1e6:.1f} MB"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
