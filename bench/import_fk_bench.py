"""What PostgreSQL spends per imported row, piece by piece: keys, count trigger, each index of
outdial_targets, the row mapping, and the order of the target ids.

    .venv/bin/python bench/import_fk_bench.py --rows 300000
    .venv/bin/python bench/import_fk_bench.py --rows 1000000 migrated random-ids

Checks the import bench's file (bench/import_bench.py) with the import's own checker, then
writes its rows the way an import does — COPY chunks of outdial_targets lines plus the
import_row_targets mapping, one transaction, then COMMIT — once per variant, each into a freshly
migrated database, and prints for each: wall time, the backend's CPU time (from /proc; the figure
that holds under load) per row, the bytes of WAL the server wrote meanwhile per row (the whole
server's: on a shared server other databases' writes count too), and the size of each index.

Variants (all of them by default, or those named):
- migrated: the schema as migrated, ids as an import gives them (imports.ids: in file order);
- random-ids: the same with random version 4 ids (as imports gave them before);
- no-<index>: without one index of outdial_targets;
- no-values: without the five indexes of the destinations' normalised values (do-not-call);
- no-mapping: without the row mapping's COPY;
- no-trigger: without the count trigger (which also checks the keys, once per statement);
- floor: the table with its primary key only, no count trigger, no mapping;
- row-keys: the foreign keys checked per row as before migration 0009, no trigger.
"""

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.import_bench import make_file  # noqa: E402
from outdial.db import Database  # noqa: E402
from outdial.imports.checking import MAPPING_COLUMNS, TARGET_COLUMNS, RowRules, check_chunk  # noqa: E402
from outdial.imports.ids import new_salt  # noqa: E402
from outdial.imports.reading import Chunk  # noqa: E402
from outdial.migrations import upgrade_database  # noqa: E402
from outdial.strategy import dnc  # noqa: E402
from tests import databases  # noqa: E402

CHUNK_ROWS = 4500  # about what a 256 KiB block of the bench's CSV holds
INDEXES = ("due", "fresh", "live_page", "retry_wait", "zone_key", "moved_on", "listed")
# The do-not-call lookups' indexes on each destination slot's normalised value (0014).
VALUE_INDEXES = tuple(f"value_{n}" for n in range(5))
NO_TRIGGER = "ALTER TABLE outdial_targets DISABLE TRIGGER outdial_targets_count_insert"
ROW_KEYS = (
    NO_TRIGGER,
    "ALTER TABLE outdial_targets ADD CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id)",
    "ALTER TABLE outdial_targets ADD CONSTRAINT fk_outdial FOREIGN KEY (outdial_id) REFERENCES outdials (id)",
    "ALTER TABLE import_row_targets ADD CONSTRAINT fk_job FOREIGN KEY (import_id) REFERENCES import_jobs (id)",
)
# name: (statements run on the migrated schema, ids in file order, the mapping written)
VARIANTS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "migrated": ((), True, True),
    "random-ids": ((), False, True),
    **{f"no-{name}": ((f"DROP INDEX ix_outdial_targets_{name}",), True, True) for name in INDEXES},
    "no-values": (tuple(f"DROP INDEX ix_outdial_targets_{name}" for name in VALUE_INDEXES),
                  True, True),
    "no-mapping": ((), True, False),
    "no-trigger": ((NO_TRIGGER,), True, True),
    "floor": ((NO_TRIGGER, *(f"DROP INDEX ix_outdial_targets_{name}"
                             for name in (*INDEXES, *VALUE_INDEXES))), True, False),
    "row-keys": (ROW_KEYS, True, True),
}


def checked_chunks(rows: int, customer: uuid.UUID, outdial: uuid.UUID) -> list[tuple[bytes, list[str]]]:
    """The bench file's rows as the import's checker encodes them: (COPY lines, target ids) per
    chunk, the ids in file order."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "targets.csv"
        make_file(path, rows)
        lines = path.read_bytes().split(b"\n")
    header, body = lines[0].decode().split(","), [line for line in lines[1:] if line]
    rules = RowRules(import_id=uuid.uuid4(), customer_id=customer, outdial_id=outdial,
                     tm_create=dt.datetime.now(dt.UTC).replace(tzinfo=None), default_region="US",
                     require_valid=False, dedupe=False, encoding="copy", id_salt=new_salt())
    chunks = []
    for sequence, at in enumerate(range(0, len(body), CHUNK_ROWS)):
        data = b"\n".join(body[at:at + CHUNK_ROWS]) + b"\n"
        checked = check_chunk(Chunk("csv", data, header, sequence=sequence), rules)
        chunks.append((checked.targets, checked.target_ids))
    return chunks


def with_random_ids(chunks: list[tuple[bytes, list[str]]]) -> list[tuple[bytes, list[str]]]:
    """The same rows with random version 4 ids (each COPY line starts with its 32-digit id)."""
    out = []
    for targets, _ in chunks:
        lines = targets.split(b"\n")[:-1]
        ids = [uuid.uuid4().hex for _ in lines]
        out.append((b"".join(i.encode() + line[32:] + b"\n" for i, line in zip(ids, lines)), ids))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _once(data: bytes):  # noqa: ANN202
    yield data


async def once(name: str, chunks: list[tuple[bytes, list[str]]], customer: uuid.UUID,
               outdial: uuid.UUID) -> None:
    statements, ordered, mapping = VARIANTS[name]
    if not ordered:
        chunks = with_random_ids(chunks)
    url = databases.create_postgres_database()
    try:
        database = Database(url.replace("postgresql://", "postgresql+asyncpg://"))
        await upgrade_database(database)
        await database.dispose()
        connection = await asyncpg.connect(url)
        await connection.execute("INSERT INTO customers (id, name, detail, tm_create) VALUES ($1, 'c', '', now())",
                                 customer)
        await connection.execute("INSERT INTO outdials (id, customer_id, campaign_id, name, detail, data,"
                                 " tm_create) VALUES ($1, $2, $3, '', '', '', now())",
                                 outdial, customer, uuid.UUID(int=0))
        job = uuid.uuid4()
        await connection.execute(
            "INSERT INTO import_jobs (id, customer_id, outdial_id, status, format, default_region,"
            " validation, dedupe, rows_total, rows_imported, rows_rejected, rows_duplicate, errors,"
            " tm_create, owner, dedupe_turn) VALUES ($1, $2, $3, 'running', 'csv', '', 'possible',"
            " false, 0, 0, 0, 0, '[]', now(), '', false)", job, customer, outdial)
        for statement in statements:
            await connection.execute(statement)
        await connection.execute("CHECKPOINT")
        maps, at = [], 0
        for _, ids in chunks:
            maps.append("".join(f"{job.hex}\t{at + k}\t{i}\n" for k, i in enumerate(ids, 1)).encode())
            at += len(ids)
        wal = await connection.fetchval("SELECT pg_current_wal_lsn()")
        cpu = cpu_seconds(connection.get_server_pid())
        started = time.perf_counter()
        async with connection.transaction():
            # As the import does (strategy.dnc): listed_until is its own to set, before the
            # commit, which is one check here (this customer has no do-not-call entry).
            await connection.execute(dnc._KEPT_BY_WRITER)
            for (targets, _), rows in zip(chunks, maps):
                await connection.copy_to_table("outdial_targets", source=_once(targets),
                                               columns=TARGET_COLUMNS, format="text")
                if mapping:
                    await connection.copy_to_table("import_row_targets", source=_once(rows),
                                                   columns=MAPPING_COLUMNS, format="text")
            assert not (await connection.fetchrow(
                dnc._LOCK_AND_ANY.text.replace(":customer", "$1"), customer))[1]
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(connection.get_server_pid()) - cpu
        wal = float(await connection.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", wal))
        sizes = await connection.fetch(
            "SELECT c.relname, pg_relation_size(c.oid) AS size FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'outdial_targets'::regclass"
            " ORDER BY c.relname")
        await connection.close()
        print(f"{name:12} {elapsed:6.1f} s wall, {cpu:5.1f} s backend CPU = {cpu / at * 1e6:4.1f} µs per row, "
              f"WAL {wal / at:5.0f} B per row (load average {os.getloadavg()[0]:.1f})", flush=True)
        print("             indexes: " + ", ".join(
            f"{r['relname'].removeprefix('ix_outdial_targets_')} {r['size'] / 2**20:.0f} MiB" for r in sizes))
    finally:
        databases.drop_postgres_database(url)


async def run(rows: int, names: list[str]) -> None:
    customer, outdial = uuid.uuid4(), uuid.uuid4()
    chunks = checked_chunks(rows, customer, outdial)
    print(f"PostgreSQL, {rows:,} rows in {len(chunks)} COPY chunks + the mapping, one transaction")
    for name in names:
        await once(name, chunks, customer, outdial)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("variants", nargs="*", help=f"some of: {', '.join(VARIANTS)} (default: all)")
    args = parser.parse_args()
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {', '.join(sorted(unknown))}")
    asyncio.run(run(args.rows, args.variants or list(VARIANTS)))


if __name__ == "__main__":
    main()
