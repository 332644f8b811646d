"""Stats and export at a million targets: the stats' counters (0007) against the full aggregate
they replace, and the export against PostgreSQL's own COPY TO of the same rows.

    .venv/bin/python bench/stats_bench.py --database postgresql --targets 1000000
    .venv/bin/python bench/stats_bench.py --database sqlite --targets 1000000

Fills one outdial with targets in one SQL statement (through the count triggers), makes some of
them done and `--waiting` of them wait out their retry interval, then times `outdial_stats` (the
database part of `GET …/stats`, in process) and, in the same run, the aggregate over the targets
that computed the same figures before, checking that both give the same figures. Then exports
the outdial (CSV and NDJSON, in process, every byte read) beside PostgreSQL's own
`COPY (SELECT * … ORDER BY tm_create, id) TO STDOUT` of the same rows, alternately.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from outdial.db import Database  # noqa: E402
from outdial.migrations import upgrade_database  # noqa: E402
from outdial.models import Campaign, Customer, Outdial, OutdialTarget, Outplan  # noqa: E402
from outdial.outdials.counts import Compactor  # noqa: E402
from outdial.outdials.export import export_targets  # noqa: E402
from outdial.outdials.stats import outdial_stats  # noqa: E402
from tests import databases  # noqa: E402

from import_bench import pg_copy_to  # noqa: E402 - the same COPY TO in both benches

NOW = dt.datetime(2026, 11, 27, 12)
# Addresses are stored as the API and imports store them: json.dumps of every field, with the
# forms they give them (bare targets: FORM_BARE, 3, in the slot's two bits of address_forms).
QUIET = ', "target_name": "", "name": "", "detail": ""}'

FILL_POSTGRES = """
INSERT INTO outdial_targets (id, customer_id, outdial_id, name, detail, data, status,
    destination_0, destination_1, try_count_0, try_count_1, try_count_2, try_count_3, try_count_4,
    tm_create, tm_update, address_forms)
SELECT gen_random_uuid(), :customer, :outdial, 'person ' || i, '', '', 'idle',
    CAST('{"type": "tel", "target": "+1555' || lpad(i::text, 7, '0') || '"' || :quiet AS json),
    CASE WHEN i % 3 = 0 THEN CAST('{"type": "email", "target": "p' || i || '@example.com"' || :quiet AS json) END,
    0, 0, 0, 0, 0, :now, :now, CASE WHEN i % 3 = 0 THEN 3 | 3 << 2 ELSE 3 END
FROM generate_series(1, :n) AS i
"""

FILL_SQLITE = """
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n)
INSERT INTO outdial_targets (id, customer_id, outdial_id, name, detail, data, status,
    destination_0, destination_1, try_count_0, try_count_1, try_count_2, try_count_3, try_count_4,
    tm_create, tm_update, address_forms)
SELECT lower(hex(randomblob(16))), :customer, :outdial, 'person ' || i, '', '', 'idle',
    '{"type": "tel", "target": "+1555' || substr('0000000' || i, -7) || '"' || :quiet,
    CASE WHEN i % 3 = 0 THEN '{"type": "email", "target": "p' || i || '@example.com"' || :quiet END,
    0, 0, 0, 0, 0, :now, :now, CASE WHEN i % 3 = 0 THEN 3 | 3 << 2 ELSE 3 END
FROM seq
"""


async def before_0007(database: Database, outdial_id: uuid.UUID, cutoff: dt.datetime) -> tuple:
    """The aggregate the stats ran before: every live target of the outdial, grouped."""
    tries_left = ("((destination_0 IS NOT NULL AND try_count_0 < 3) OR "
                  "(destination_1 IS NOT NULL AND try_count_1 < 3) OR "
                  "(destination_2 IS NOT NULL AND try_count_2 < 3))")
    async with database.sessions() as session:
        if not database.is_sqlite:  # a full scan may outlast the statement timeout here
            await session.execute(text("SET statement_timeout = 0"))
        rows = (await session.execute(text(f"""
            SELECT status, COUNT(*) AS n, SUM(try_count_0) AS a0,
                   SUM(CASE WHEN {tries_left} AND (tm_last_end IS NULL OR tm_last_end <= :cutoff)
                            THEN 1 ELSE 0 END) AS dialable,
                   SUM(CASE WHEN {tries_left} AND tm_last_end > :cutoff THEN 1 ELSE 0 END) AS waiting
            FROM outdial_targets WHERE outdial_id = :outdial AND tm_delete IS NULL GROUP BY status
        """), {"outdial": outdial_id if not database.is_sqlite else outdial_id.hex,
               "cutoff": cutoff.isoformat(sep=" ") if database.is_sqlite else cutoff})).all()
    idle = next(r for r in rows if r.status == "idle")
    return sum(r.n for r in rows), sum(r.a0 for r in rows), int(idle.dialable), int(idle.waiting)


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="outdial-stats-bench-"))
    url = (databases.create_postgres_database() if args.database == "postgresql"
           else f"sqlite+aiosqlite:///{work / 'bench.db'}")
    database = Database(url)
    try:
        await upgrade_database(database)
        customer, outdial_id = uuid.uuid4(), uuid.uuid4()
        async with database.transaction() as session:
            session.add(Customer(id=customer, name="c", detail="", tm_create=NOW))
            await session.flush()
            outplan = Outplan(id=uuid.uuid4(), customer_id=customer, try_interval=600_000,
                              max_try_count_0=3, max_try_count_1=3, max_try_count_2=3, tm_create=NOW)
            outdial = Outdial(id=outdial_id, customer_id=customer, tm_create=NOW)
            session.add_all([outplan, outdial])
            await session.flush()
            campaign = Campaign(id=uuid.uuid4(), customer_id=customer, outplan_id=outplan.id,
                                outdial_id=outdial_id, tm_create=NOW)
            session.add(campaign)
            await session.flush()
            outdial.campaign_id = campaign.id
        started = time.perf_counter()
        sqlite = database.is_sqlite
        async with database.transaction() as session:
            if not sqlite:  # one statement writes the million rows
                await session.execute(text("SET LOCAL statement_timeout = 0"))
            await session.execute(text(FILL_SQLITE if sqlite else FILL_POSTGRES), {
                "customer": customer.hex if sqlite else customer,
                "outdial": outdial_id.hex if sqlite else outdial_id,
                "now": NOW.isoformat(sep=" ") if sqlite else NOW, "n": args.targets, "quiet": QUIET})
        fill = time.perf_counter() - started
        # Some done after two tries, some waiting out their interval after a first try.
        table = OutdialTarget.__table__
        async with database.transaction() as session:
            if not sqlite:
                await session.execute(text("SET LOCAL statement_timeout = 0"))
            for status, tries, ended, count in (("done", 2, NOW - dt.timedelta(hours=1), args.targets // 10),
                                                ("idle", 1, NOW - dt.timedelta(minutes=1), args.waiting)):
                ids = (text("SELECT id FROM outdial_targets WHERE status = 'idle' AND try_count_0 = 0 "
                            "ORDER BY id LIMIT :count")
                       .bindparams(count=count).columns(table.c.id).subquery())
                await session.execute(update(table).where(table.c.id.in_(ids.select()))
                                      .values(status=status, try_count_0=tries, tm_last_end=ended))
        if not sqlite:
            await Compactor(database, _Clock()).round()
            async with database.engine.begin() as connection:
                await connection.execute(text("ANALYZE"))
        print(f"{args.database}: {args.targets:,} targets written in {fill:.1f} s (through the "
              f"count triggers); {args.targets // 10:,} done, {args.waiting:,} in their retry interval")

        async with database.sessions() as session:
            outdial = await session.get(Outdial, outdial_id)
        new = []
        for _ in range(args.times):
            async with database.sessions() as session:
                started = time.perf_counter()
                stats = await outdial_stats(session, outdial, NOW)
                new.append(time.perf_counter() - started)
        old = []
        for _ in range(args.old_times):
            started = time.perf_counter()
            expected = await before_0007(database, outdial_id, NOW - dt.timedelta(minutes=10))
            old.append(time.perf_counter() - started)
        got = (stats.targets, stats.attempts_0, stats.dialable_now, stats.waiting_retry)
        assert got == expected, (got, expected)
        print(f"stats from the counters: best {min(new) * 1000:.2f} ms, median "
              f"{statistics.median(new) * 1000:.2f} ms, worst {max(new) * 1000:.2f} ms ({args.times} reads)")
        print(f"the aggregate over the targets (before 0007), same figures: best {min(old) * 1000:.0f} ms, "
              f"median {statistics.median(old) * 1000:.0f} ms ({args.old_times} reads)")
        print(f"figures: targets {stats.targets:,}, idle {stats.idle:,}, done {stats.done:,}, "
              f"dialable_now {stats.dialable_now:,}, waiting_retry {stats.waiting_retry:,}")
        for round_ in range(args.export_rounds):  # alternated: the spread on a shared machine
            exports = {}
            for format in ("csv", "ndjson"):
                before = await backend_cpu(database)
                process = time.process_time()
                seconds, size = await timed(export_targets(database, outdial_id, format, dt.datetime.now(dt.UTC).replace(tzinfo=None)))
                process = time.process_time() - process
                backend = await backend_cpu(database) - before
                exports[format] = seconds
                print(f"export ({format}, round {round_ + 1}): {seconds:.2f} s, {size / 1e6:.0f} MB; "
                      f"CPU: PostgreSQL {backend:.2f} s, this process {process:.2f} s")
            if not sqlite:
                watch = asyncio.create_task(copy_backend_cpu(database))
                seconds, size = await pg_copy_to(url, outdial_id)
                watch.cancel()
                backend = await watch
                print(f"PostgreSQL's own COPY TO of the same rows (csv, export order): {seconds:.2f} s, "
                      f"{size / 1e6:.0f} MB; CPU: PostgreSQL {backend:.2f} s; export / COPY TO: csv {exports['csv'] / seconds:.2f}×, "
                      f"ndjson {exports['ndjson'] / seconds:.2f}×")
            print(f"load average: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")
    finally:
        await database.dispose()
        if args.database == "postgresql":
            databases.drop_postgres_database(url)


async def backend_cpu(database: Database) -> float:
    """CPU seconds used so far by the PostgreSQL backends of the bench database's connections
    (the pool keeps them across an export); 0 on SQLite, which runs in this process."""
    if database.is_sqlite:
        return 0.0
    async with database.sessions() as session:
        pids = (await session.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))).scalars().all()
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # a backend that has just gone
            total += _cpu(pid)
    return total


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


async def copy_backend_cpu(database: Database) -> float:
    """CPU of the backend running the reference COPY TO (its own connection, gone when it
    ends): read every 20 ms until cancelled, the last reading returned."""
    used = 0.0
    async with database.engine.connect() as connection:
        try:
            while True:
                pids = (await connection.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE 'COPY (SELECT * FROM outdial_targets%'"))).scalars().all()
                await connection.commit()  # pg_stat_activity is read once per transaction
                for pid in pids:
                    with contextlib.suppress(OSError):
                        used = _cpu(pid)
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            return used


async def timed(chunks: Any) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
    return time.perf_counter() - started, size


class _Clock:
    def now(self) -> dt.datetime:
        return NOW


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--targets", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--times", type=int, default=51)
    parser.add_argument("--old-times", type=int, default=5)
    parser.add_argument("--export-rounds", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
