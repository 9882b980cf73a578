"""Record scans of the synthetic 10,000-workload snapshot on SQLite and PostgreSQL.

Scans the snapshot once (33,735 findings), then records SCANS reports into a fresh SQLite file
and a fresh PostgreSQL schema. With ``--churn F`` each recorded report leaves out a different
slice of F of the findings (they resolve, and reopen when the slice moves on), so recordings
exercise every lifecycle path rather than an unchanged cluster. Prints the first recording's
time, the median and 95th percentile of the rest, the audit events written, and the database
size. The snapshot is the one ``benchmarks/scan_scale.py`` writes (run it first if missing).

With ``--cli`` it times the real command instead, each run a separate process: ``okeguard scan
--snapshot F --format json -o /dev/null`` beside the same with ``--record``, into a fresh SQLite
file or PostgreSQL schema (every finding new, the database created on first use) and into the
database of the previous run (every finding seen again), interleaved round-robin; it prints
best and median wall times and what ``--record`` adds to the scan.

Examples:
  /work/venv/bin/python benchmarks/record_scale.py --scans 100 --churn 0.01
  /work/venv/bin/python benchmarks/record_scale.py --scans 5 --no-postgres
  /work/venv/bin/python benchmarks/record_scale.py --cli --repeat 5 --okeguard /tmp/other-okeguard
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from okeguard.audit import schema
from okeguard.audit.chain import verify_chain
from okeguard.audit.db import make_engine, session_factory
from okeguard.audit.models import AuditEvent
from okeguard.audit.recording import record_scan
from okeguard.config import Config
from okeguard.inventory.snapshot import load_snapshot
from okeguard.scanning import ScanReport, scan_inventory

OUT = Path(__file__).parent / "out" / "w10000-seed20261127"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def churned(report: ScanReport, n: int, churn: float) -> ScanReport:
    """The report without the n-th slice of ``churn`` of its findings (none when churn is 0)."""
    if not churn or n == 0:
        return report
    size = max(1, int(len(report.findings) * churn))
    start = (n * size) % len(report.findings)
    kept = report.findings[:start] + report.findings[start + size :]
    return dataclasses.replace(report, findings=kept)


def bench(url: str, report: ScanReport, scans: int, churn: float) -> tuple[list[float], int]:
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    times = []
    now = datetime.now(UTC)
    for n in range(scans):
        current = churned(report, n, churn)
        started = time.perf_counter()
        with sessions.begin() as session:
            record_scan(
                session, current, actor="bench", started_by="bench", now=now + timedelta(hours=n)
            )
        times.append(time.perf_counter() - started)
    with sessions() as session:
        events = int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
        assert verify_chain(session) is None, "the audit chain does not verify"
    engine.dispose()
    return times, events


def line(name: str, times: list[float], events: int, size_mb: float) -> str:
    rest = sorted(times[1:]) or [times[0]]
    p95 = rest[min(len(rest) - 1, int(len(rest) * 0.95))]
    return (
        f"{name}: {len(times)} recordings; first {times[0]:.2f} s, then median {statistics.median(rest):.2f} s, "
        f"p95 {p95:.2f} s; {events} audit events; {size_mb:.1f} MB"
    )


def _schema(action: str, name: str) -> None:
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'{action} SCHEMA "{name}"' + (" CASCADE" if action == "DROP" else "")))
    admin.dispose()


def cli(okeguard: str, repeat: int, postgres: bool) -> None:
    """Time ``scan`` and ``scan --record`` as commands (see the module's docstring)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from measure import measure

    scan = [okeguard, "scan", "--snapshot", str(OUT / "snapshot.jsonl")]
    scan += ["--format", "json", "-o", os.devnull]
    tmp = Path("/tmp") / f"record-cli-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    databases = ["sqlite"] + (["postgresql"] if postgres else [])
    walls: dict[str, list[float]] = {}
    schemas: list[str] = []

    def timed(name: str, command: list[str], url: str | None) -> None:
        os.environ.pop("OKEGUARD_DATABASE_URL", None)
        if url:
            os.environ["OKEGUARD_DATABASE_URL"] = url
        run = measure(command, os.devnull, 600)
        if run.returncode not in (0, 1):
            raise SystemExit(f"{name}: exit {run.returncode}: {run.stderr_tail[-400:]}")
        walls.setdefault(name, []).append(run.wall_s)
        print(f"  {name}: {run.wall_s:.2f} s", flush=True)

    try:
        for round_index in range(repeat):
            timed("scan", scan, None)
            for database in databases:
                if database == "sqlite":
                    url = f"sqlite:///{tmp / f'round{round_index}.db'}"
                else:
                    name = f"bench_cli_{uuid.uuid4().hex[:8]}"
                    _schema("CREATE", name)
                    schemas.append(name)
                    url = f"{PG}?options=-csearch_path%3D{name}"
                timed(f"scan --record, {database}, new database", [*scan, "--record"], url)
                timed(f"scan --record, {database}, again", [*scan, "--record"], url)
    finally:
        os.environ.pop("OKEGUARD_DATABASE_URL", None)
        for name in schemas:
            _schema("DROP", name)
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()
    base = statistics.median(walls["scan"])
    print(f"\nbest / median of {repeat} runs (wall); + median minus the scan's median")
    for name, values in walls.items():
        extra = "" if name == "scan" else f"  (+{statistics.median(values) - base:.2f} s)"
        print(f"{name:45s} {min(values):.2f} / {statistics.median(values):.2f} s{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scans", type=int, default=100)
    parser.add_argument(
        "--churn", type=float, default=0.01, help="fraction of findings left out per scan"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--cli", action="store_true", help="time the real command instead")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of --cli (default 5)")
    parser.add_argument("--okeguard", default="okeguard", help="the command --cli runs")
    args = parser.parse_args()
    if args.cli:
        cli(args.okeguard, args.repeat, not args.no_postgres)
        return
    snapshot = OUT / "snapshot.jsonl"
    report = scan_inventory(load_snapshot(str(snapshot)), Config(), now=datetime.now(UTC))
    print(
        f"{len(report.findings)} findings in the report; churn {args.churn:.1%} per scan",
        flush=True,
    )
    db = Path("/tmp") / f"record-{uuid.uuid4().hex[:8]}.db"
    times, events = bench(f"sqlite:///{db}", report, args.scans, args.churn)
    print(line("sqlite", times, events, db.stat().st_size / 1e6), flush=True)
    db.unlink()
    if args.no_postgres:
        return
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        times, events = bench(
            f"{PG}?options=-csearch_path%3D{name}", report, args.scans, args.churn
        )
        with admin.connect() as conn:
            size = conn.execute(
                text(
                    "SELECT sum(pg_total_relation_size(quote_ident(schemaname)||'.'||quote_ident(tablename)))"
                    " FROM pg_tables WHERE schemaname = :s"
                ),
                {"s": name},
            ).scalar()
        print(line("postgresql", times, events, float(size or 0) / 1e6), flush=True)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
