"""SQL of import jobs: the job row, its reports, and the one transaction that lands the rows.

The rows of an import are written by a `TargetSink` inside a single transaction that also marks
the job done, so a crash at any point leaves either every accepted row or none:

- PostgreSQL: COPY into the open transaction as chunks are checked (rows stay invisible until
  the commit); an advisory lock held by that transaction tells a restarted server whether the
  importing process is still alive.
- SQLite: one writer at a time, so checked rows are spooled to a temporary file and written in
  one short transaction at the end, leaving the database free to other writers meanwhile.
"""

import datetime as dt
import pickle
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import JSON, func, select, text, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from outdial.db import Database
from outdial.imports.checking import MAPPING_COLUMNS, TARGET_COLUMNS, decode_targets, dedupe_key
from outdial.models import ImportJob, ImportRowError, ImportRowTarget, OutdialTarget

RowError = tuple[int, str, str]


def job_lock_key(job_id: uuid.UUID) -> int:
    """A PostgreSQL advisory lock key (signed 64 bits) for one job."""
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


class ImportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_job(self, outdial_id: uuid.UUID, import_id: uuid.UUID) -> ImportJob | None:
        return await self.session.scalar(
            select(ImportJob).where(ImportJob.id == import_id, ImportJob.outdial_id == outdial_id)
        )

    async def save_progress(self, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any]) -> None:
        await self.session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
            .values(**counts, errors=errors)
        )

    async def fail(
        self, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any], now: dt.datetime
    ) -> None:
        await self.session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
            .values(**{**counts, "rows_imported": 0}, errors=errors, status="failed", tm_end=now)
        )

    async def running_jobs(self) -> list[ImportJob]:
        return list((await self.session.scalars(
            select(ImportJob).where(ImportJob.status == "running")
        )).all())

    async def is_held_by_live_process(self, job_id: uuid.UUID) -> bool:
        """PostgreSQL: does a live transaction hold the job's lock (the import is running)?"""
        got = await self.session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": job_lock_key(job_id)}
        )
        return not got

    async def existing_keys(self, outdial_id: uuid.UUID) -> set[Any]:
        """Dedupe keys of the first destination of every live target of the outdial."""
        first = type_coerce(func.coalesce(*(
            getattr(OutdialTarget, f"destination_{n}") for n in range(5)
        )), JSON)
        query = select(first).where(
            OutdialTarget.outdial_id == outdial_id, OutdialTarget.tm_delete.is_(None)
        ).execution_options(yield_per=10_000)
        keys: set[Any] = set()
        async for address in await self.session.stream_scalars(query):
            if address is not None:
                keys.add(dedupe_key(address))
        return keys

    async def error_batch(self, import_id: uuid.UUID, after: tuple[int, str], size: int) -> list[ImportRowError]:
        row, field = after
        query = select(ImportRowError).where(
            ImportRowError.import_id == import_id,
            (ImportRowError.row > row) | ((ImportRowError.row == row) & (ImportRowError.field > field)),
        ).order_by(ImportRowError.row, ImportRowError.field).limit(size)
        return list((await self.session.scalars(query)).all())

    async def mapping_batch(self, import_id: uuid.UUID, after: int, size: int) -> list[ImportRowTarget]:
        query = select(ImportRowTarget).where(
            ImportRowTarget.import_id == import_id, ImportRowTarget.row > after
        ).order_by(ImportRowTarget.row).limit(size)
        return list((await self.session.scalars(query)).all())


async def mark_done(
    connection: AsyncConnection, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any],
    now: dt.datetime,
) -> bool:
    """In the sink's transaction: the job is done. False if it is no longer running (a
    restarted server declared it failed), in which case the transaction must roll back."""
    result = await connection.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
        .values(**counts, errors=errors, status="done", tm_end=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


class TargetSink:
    """Where checked rows go until the job is done; see the module docstring."""

    async def open(self) -> None: ...

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError]
    ) -> None:
        """Encoded target rows (checking.encode_targets), with the file row and target id of
        each, and rejected rows."""

    async def commit(self, finish: Any) -> bool:
        """Write what is held, then run `finish(connection)`; commit only if it returns True."""
        raise NotImplementedError

    async def close(self) -> None: ...


class PostgresSink(TargetSink):
    def __init__(self, database: Database, job_id: uuid.UUID) -> None:
        self.database, self.job_id = database, job_id
        self.connection: AsyncConnection | None = None
        self.driver: Any = None

    async def open(self) -> None:
        self.connection = await self.database.engine.connect()
        await self.connection.begin()
        await self.connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": job_lock_key(self.job_id)}
        )
        raw = await self.connection.get_raw_connection()
        self.driver = raw.driver_connection

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError]
    ) -> None:
        if rows:
            await self.driver.copy_to_table(
                "outdial_targets", source=_once(targets), columns=TARGET_COLUMNS,
                format="text",
            )
            job = self.job_id.hex
            mapping = "".join([f"{job}\t{row}\t{target}\n" for row, target in zip(rows, target_ids)])
            await self.driver.copy_to_table(
                "import_row_targets", source=_once(mapping.encode()), columns=MAPPING_COLUMNS,
                format="text",
            )
        if errors:
            await self.driver.copy_records_to_table(
                "import_row_errors", records=[(self.job_id, *e) for e in errors],
                columns=("import_id", "row", "field", "message"),
            )

    async def commit(self, finish: Any) -> bool:
        assert self.connection is not None
        if not await finish(self.connection):
            return False
        await self.connection.commit()
        return True

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()  # rolls back anything not committed
            self.connection = None


_INSERT_TARGET = (
    f"INSERT INTO outdial_targets ({', '.join(TARGET_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TARGET_COLUMNS))})"
)
_INSERT_MAPPING = "INSERT INTO import_row_targets (import_id, row, target_id) VALUES (?, ?, ?)"
_INSERT_ERROR = "INSERT INTO import_row_errors (import_id, row, field, message) VALUES (?, ?, ?, ?)"


async def _once(data: bytes) -> AsyncIterator[bytes]:
    """COPY data for asyncpg as an async iterable. A file object would be read in a thread,
    and asyncpg keeps it in a reference cycle: the blobs of a whole import piled up until a
    full garbage collection (~150 MB more resident memory on a million rows)."""
    yield data


class SqliteSink(TargetSink):
    def __init__(self, database: Database, job_id: uuid.UUID) -> None:
        self.database, self.job_id = database, job_id
        self.spool: Any = None

    async def open(self) -> None:
        self.spool = tempfile.TemporaryFile()

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError]
    ) -> None:
        pickle.dump((targets, rows, target_ids, errors), self.spool, protocol=pickle.HIGHEST_PROTOCOL)

    async def commit(self, finish: Any) -> bool:
        self.spool.seek(0)
        job = self.job_id.hex
        async with self.database.engine.connect() as connection:
            await connection.begin()
            while True:
                try:
                    targets, rows, target_ids, errors = pickle.load(self.spool)
                except EOFError:
                    break
                await _executemany(connection, _INSERT_TARGET, decode_targets(targets, "rows"))
                await _executemany(connection, _INSERT_MAPPING,
                                   [(job, row, target) for row, target in zip(rows, target_ids)])
                await _executemany(connection, _INSERT_ERROR, [(job, *e) for e in errors])
            if not await finish(connection):
                await connection.rollback()
                return False
            await connection.commit()
        return True

    async def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None


async def _executemany(connection: AsyncConnection, statement: str, rows: Sequence[Any]) -> None:
    if rows:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.executemany(statement, rows)


def sink_for(database: Database, job_id: uuid.UUID) -> TargetSink:
    return SqliteSink(database, job_id) if database.is_sqlite else PostgresSink(database, job_id)


async def batches(database: Database, fetch: Any, start: Any, key: Any) -> AsyncIterator[list[Any]]:
    """Keyset batches, each read in its own short session: `fetch(repo, after)` gives a batch,
    `key(last row)` the next `after`. Memory stays at one batch however long the list."""
    after = start
    while True:
        async with database.sessions() as session:
            rows = await fetch(ImportRepository(session), after)
        if not rows:
            return
        yield rows
        after = key(rows[-1])
