"""What PostgreSQL spends per imported row on foreign keys and on the stats' count triggers.

    .venv/bin/python bench/import_fk_bench.py --rows 1000000

Writes the rows of an import (outdial_targets lines as the import's checker encodes them, and
the import_row_targets mapping) into a migrated database the way an import does — COPY chunks
of 4,500 rows in one transaction, then COMMIT — once per variant of the schema, each on emptied
tables, and prints the time and the backend's CPU for each:

- as migrated (0007): the keys to outdial and customer checked once per COPY statement by the
  count trigger, which also appends the count changes;
- no key checks and no trigger at all: the floor;
- the foreign keys as they were before 0007, checked per row (customer, outdial, and the
  mapping's import job), without the trigger.
"""

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from outdial.db import Database  # noqa: E402
from outdial.imports.checking import MAPPING_COLUMNS, TARGET_COLUMNS, TEL_JSON  # noqa: E402
from outdial.migrations import upgrade_database  # noqa: E402
from tests import databases  # noqa: E402

CHUNK = 4500
TRIGGERS = ("outdial_targets_count_insert",)


def lines(rows: int, customer: uuid.UUID, outdial: uuid.UUID) -> tuple[list[bytes], list[str]]:
    """Chunks of COPY text as the import writes them, and the target ids."""
    rng = random.Random(4)
    stamp = dt.datetime(2026, 11, 27, 12).strftime("%Y-%m-%d %H:%M:%S.%f")
    tail = "\t" + "\t".join(["0"] * 5) + f"\t\\N\t{stamp}\t{stamp}\t\\N\n"
    head = f"\t{customer.hex}\t{outdial.hex}\t"
    ids, chunks, chunk = [], [], []
    for i in range(rows):
        target_id = os.urandom(16).hex()
        ids.append(target_id)
        count = rng.choice((1, 2, 3))
        destinations = [TEL_JSON % f"+1555{rng.randrange(10**7):07d}" for _ in range(count)]
        destinations += ["\\N"] * (5 - count)
        chunk.append(target_id + head + "\t".join([f"person {i}", "", f'{{"id": {i}}}', "idle",
                                                   *destinations]) + tail)
        if len(chunk) == CHUNK:
            chunks.append("".join(chunk).encode())
            chunk = []
    if chunk:
        chunks.append("".join(chunk).encode())
    return chunks, ids


async def backend_cpu(connection: asyncpg.Connection) -> float:
    pid = connection.get_server_pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def once(url: str, chunks: list[bytes], ids: list[str], customer: uuid.UUID,
               outdial: uuid.UUID) -> tuple[float, float]:
    connection = await asyncpg.connect(url)
    try:
        job = uuid.uuid4()
        await connection.execute(
            "INSERT INTO import_jobs (id, customer_id, outdial_id, status, format, default_region,"
            " validation, dedupe, rows_total, rows_imported, rows_rejected, rows_duplicate, errors,"
            " tm_create, owner, dedupe_turn) VALUES ($1, $2, $3, 'running', 'csv', '', 'possible',"
            " false, 0, 0, 0, 0, '[]', now(), '', false)", job, customer, outdial)
        cpu = await backend_cpu(connection)
        started = time.perf_counter()
        async with connection.transaction():
            at = 0
            for chunk in chunks:
                n = chunk.count(b"\n")
                await connection.copy_to_table("outdial_targets", source=_once(chunk),
                                               columns=TARGET_COLUMNS, format="text")
                mapping = "".join(f"{job.hex}\t{at + k}\t{ids[at + k]}\n" for k in range(n))
                await connection.copy_to_table("import_row_targets", source=_once(mapping.encode()),
                                               columns=MAPPING_COLUMNS, format="text")
                at += n
        elapsed = time.perf_counter() - started
        return elapsed, await backend_cpu(connection) - cpu
    finally:
        await connection.close()


async def _once(data: bytes):  # noqa: ANN202
    yield data


async def empty(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE import_row_targets, campaigncalls, outdial_target_count_changes, "
                                 "outdial_target_counts, outdial_targets")
        await connection.execute("VACUUM ANALYZE outdial_targets")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


async def run(rows: int, repeat: int) -> None:
    url = databases.create_postgres_database()
    try:
        database = Database(url.replace("postgresql://", "postgresql+asyncpg://"))
        await upgrade_database(database)
        await database.dispose()
        customer, outdial = uuid.uuid4(), uuid.uuid4()
        connection = await asyncpg.connect(url)
        await connection.execute("INSERT INTO customers (id, name, detail, tm_create) VALUES ($1, 'c', '', now())",
                                 customer)
        await connection.execute("INSERT INTO outdials (id, customer_id, campaign_id, name, detail, data,"
                                 " tm_create) VALUES ($1, $2, $3, '', '', '', now())",
                                 outdial, customer, uuid.UUID(int=0))
        chunks, ids = lines(rows, customer, outdial)
        print(f"PostgreSQL, {rows:,} rows in {len(chunks)} COPY chunks + the mapping, one transaction")
        no_triggers = "ALTER TABLE outdial_targets DISABLE TRIGGER outdial_targets_count_insert"
        row_keys = (
            "ALTER TABLE outdial_targets ADD CONSTRAINT fk_customer FOREIGN KEY (customer_id) "
            "REFERENCES customers (id); "
            "ALTER TABLE outdial_targets ADD CONSTRAINT fk_outdial FOREIGN KEY (outdial_id) "
            "REFERENCES outdials (id); "
            "ALTER TABLE import_row_targets ADD CONSTRAINT fk_job FOREIGN KEY (import_id) "
            "REFERENCES import_jobs (id)")
        variants = [
            ("as migrated: keys checked per statement, count triggers", None),
            ("no key checks, no count triggers (the floor)", no_triggers),
            ("keys checked per row as before 0007, no count triggers", row_keys),
        ]
        for name, change in variants:
            if change:
                await connection.execute(change)
            times = []
            for _ in range(repeat):
                await empty(url)
                times.append(await once(url, chunks, ids, customer, outdial))
            best = min(times)
            print(f"{name}: " + ", ".join(f"{t:.1f} s ({c:.1f} s CPU)" for t, c in times)
                  + f"; best {best[0]:.1f} s, {rows / best[0]:,.0f} rows/s")
        await connection.close()
    finally:
        databases.drop_postgres_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.repeat))


if __name__ == "__main__":
    main()
