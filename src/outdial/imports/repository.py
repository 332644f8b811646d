"""SQL of import jobs: the job row, its reports, and the one transaction that lands the rows.

The rows of an import are written by a `TargetSink` inside a single transaction that also marks
the job done, so a crash at any point leaves either every accepted row or none:

- PostgreSQL: COPY into the open transaction as chunks are checked (rows stay invisible until
  the commit). The targets' do-not-call fact (listed_until) is not kept row by row by the
  trigger here: a statement per slot sets it for all of them before the commit (strategy.dnc),
  and nothing when the customer has no entry.
- SQLite: one writer at a time, so checked rows are spooled to a temporary file and written in
  one short transaction at the end, leaving the database free to other writers meanwhile.

Whether the importing process is alive is told by the job's lease (owner, tm_lease_expire),
renewed while it runs, the same on both databases.
"""

import asyncio
import datetime as dt
import pickle
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import JSON, delete, func, select, text, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from outdial.db import Database
from outdial.events import catalogue
from outdial.events.outbox import emit
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.imports.checking import (
    ENTRY_COLUMNS,
    MAPPING_COLUMNS,
    TARGET_COLUMNS,
    decode_targets,
    dedupe_key,
)
from outdial.models import (
    DncEntry,
    Dnclist,
    ImportJob,
    ImportRowError,
    ImportRowTarget,
    Outdial,
    OutdialTarget,
)
from outdial.strategy import dnc

RowError = tuple[int, str, str]
JOBS = ImportJob.__table__
CLOSE_SECONDS = 5  # for a clean rollback before the connection is dropped instead


# What an import fills: an outdial (its targets) or a do-not-call list (its entries).
TARGETS, DNC_ENTRIES = "targets", "dnc_entries"


def _into(kind: str) -> Any:
    """The job column naming what a job of this kind fills."""
    return ImportJob.dnclist_id if kind == DNC_ENTRIES else ImportJob.outdial_id


def outdial_lock_key(outdial_id: uuid.UUID) -> int:
    """A PostgreSQL advisory lock key (signed 64 bits) for one outdial's (or list's) dedupe
    turn."""
    return int.from_bytes(outdial_id.bytes[:8], "big", signed=True)


class ImportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_job(self, outdial_id: uuid.UUID, import_id: uuid.UUID,
                      kind: str = TARGETS) -> ImportJob | None:
        return await self.session.scalar(
            select(ImportJob).where(ImportJob.id == import_id, _into(kind) == outdial_id)
        )

    async def save_progress(self, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any]) -> None:
        await self.session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
            .values(**counts, errors=errors)
        )

    async def fail(
        self, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any], now: dt.datetime,
        expired_at: dt.datetime | None = None,
    ) -> int:
        """Fail a running job (with `expired_at`: only if its lease ran out before then)."""
        query = update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
        if expired_at is not None:
            query = query.where(_lease_expired(expired_at))
        failed = (await self.session.execute(
            query.values(**{**counts, "rows_imported": 0}, errors=errors, status="failed", tm_end=now)
            .returning(*JOBS.c)
        )).all()
        for job in failed:
            await emit(self.session, catalogue.IMPORT_UPDATED, job.customer_id,
                       catalogue.import_job(job), now=now)
        return len(failed)

    async def expired_jobs(self, now: dt.datetime, spare: str = "") -> list[ImportJob]:
        """Running jobs whose owner stopped renewing the lease (none: a job of an older
        version), but those of the owner `spare`."""
        return list((await self.session.scalars(
            select(ImportJob).where(ImportJob.status == "running", _lease_expired(now),
                                    ImportJob.owner != spare)
        )).all())

    async def renew_lease(self, job_id: uuid.UUID, owner: str, now: dt.datetime, seconds: float) -> bool:
        """Extend the lease of a job this owner still runs; False if it is no longer its."""
        result = await self.session.execute(
            update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running",
                                    ImportJob.owner == owner)
            .values(tm_lease_expire=now + dt.timedelta(seconds=seconds))
        )
        return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]

    async def take_dedupe_turn(self, job_id: uuid.UUID, outdial_id: uuid.UUID, now: dt.datetime,
                               is_sqlite: bool, kind: str = TARGETS) -> uuid.UUID | None:
        """Give the job its outdial's dedupe turn unless a live deduping job holds it; returns
        that job's id then. Checking and taking are one step: on SQLite every transaction is
        the single writer (BEGIN IMMEDIATE); on PostgreSQL an advisory lock per outdial,
        held to the end of this short transaction, serialises it (bounded by lock_timeout)."""
        if not is_sqlite:
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": outdial_lock_key(outdial_id)})
        holder = await self.session.scalar(
            select(ImportJob.id).where(
                _into(kind) == outdial_id, ImportJob.status == "running",
                ImportJob.dedupe_turn.is_(True), ImportJob.id != job_id,
                ImportJob.tm_lease_expire >= now,
            ).limit(1)
        )
        if holder is None:
            await self.session.execute(
                update(ImportJob).where(ImportJob.id == job_id).values(dedupe_turn=True)
            )
        return holder

    async def list_jobs(self, outdial_id: uuid.UUID, page: PageRequest,
                        kind: str = TARGETS) -> Page[ImportJob]:
        return await fetch_page(self.session, select(ImportJob).where(_into(kind) == outdial_id),
                                ImportJob, page)

    async def existing_keys(
        self, outdial_id: uuid.UUID, kind: str = TARGETS, now: dt.datetime | None = None
    ) -> set[Any]:
        """Dedupe keys of the first destination of every live target of the outdial (of a
        list: the values it holds in force at `now`, see expired_values)."""
        if kind == DNC_ENTRIES:
            assert now is not None
            values = select(DncEntry.value).where(
                DncEntry.dnclist_id == outdial_id,
                DncEntry.tm_expire.is_(None) | (DncEntry.tm_expire > now))
            stream = await self.session.stream_scalars(values.execution_options(yield_per=10_000))
            return {value async for value in stream}
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

    async def expired_values(self, dnclist_id: uuid.UUID, now: dt.datetime) -> set[str]:
        """The values of the list whose entry had expired at `now`: an import holding one lists
        it again (its entry is replaced), as adding it through the API does."""
        values = select(DncEntry.value).where(DncEntry.dnclist_id == dnclist_id,
                                              DncEntry.tm_expire <= now)
        stream = await self.session.stream_scalars(values.execution_options(yield_per=10_000))
        return {value async for value in stream}

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


async def subject_deleted(connection: AsyncConnection, kind: str, subject_id: uuid.UUID) -> bool:
    """In the sink's transaction, before the job is marked done: whether the outdial (or list)
    the rows go into was deleted while they were checked. Its row is share-locked until the
    commit: a deletion that comes now waits for these rows, one that came first is seen."""
    table = Dnclist.__table__ if kind == DNC_ENTRIES else Outdial.__table__
    deleted = await connection.scalar(
        select(table.c.tm_delete).where(table.c.id == subject_id).with_for_update(read=True))
    return deleted is not None


async def mark_done(
    connection: AsyncConnection, job_id: uuid.UUID, counts: dict[str, int], errors: list[Any],
    now: dt.datetime,
) -> bool:
    """In the sink's transaction: the job is done. False if it is no longer running (a
    restarted server declared it failed), in which case the transaction must roll back."""
    job = (await connection.execute(
        update(ImportJob).where(ImportJob.id == job_id, ImportJob.status == "running")
        .values(**counts, errors=errors, status="done", tm_end=now)
        .returning(*JOBS.c)
    )).first()
    if job is None:
        return False
    await emit(connection, catalogue.IMPORT_UPDATED, job.customer_id, catalogue.import_job(job),
               now=now)
    return True


def _lease_expired(now: dt.datetime) -> Any:
    return ImportJob.tm_lease_expire.is_(None) | (ImportJob.tm_lease_expire < now)


class TargetSink:
    """Where checked rows go until the job is done; see the module docstring."""

    async def open(self) -> None: ...

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError],
        replaced: Sequence[str] = (),
    ) -> None:
        """Encoded target rows (checking.encode_targets), with the file row and target id of
        each, and rejected rows. `replaced`: values of a list whose expired entries the rows
        take the place of (removed first)."""

    async def commit(self, finish: Any) -> bool:
        """Write what is held, then run `finish(connection)`; commit only if it returns True."""
        raise NotImplementedError

    async def close(self) -> None: ...


class PostgresSink(TargetSink):
    def __init__(self, database: Database, job: ImportJob, kind: str = TARGETS) -> None:
        self.database, self.job, self.job_id, self.kind = database, job, job.id, kind
        self.connection: AsyncConnection | None = None
        self.driver: Any = None

    async def open(self) -> None:
        self.connection = await self.database.engine.connect()
        await self.connection.begin()
        # The driver's transaction begins with the first statement sent through SQLAlchemy:
        # COPY goes to the driver directly and would otherwise commit on its own.
        if self.kind == TARGETS:
            # The rows' do-not-call facts are set at the end, in one statement (commit).
            await dnc.keep_listed_until_of_import(self.connection)
        else:
            await self.connection.execute(text("SELECT 1"))
        raw = await self.connection.get_raw_connection()
        self.driver = raw.driver_connection

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError],
        replaced: Sequence[str] = (),
    ) -> None:
        assert self.connection is not None
        await _remove_expired(self.connection, self.job, replaced)
        if rows and self.kind == DNC_ENTRIES:  # entries have no row → target mapping
            await self.driver.copy_to_table(
                "dnc_entries", source=_once(targets), columns=ENTRY_COLUMNS, format="text")
        elif rows:
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
        if self.kind == TARGETS:
            assert self.job.outdial_id is not None
            await dnc.set_listed_until_of_import(
                self.connection, self.job.customer_id, self.job.outdial_id, self.job.tm_create)
        if not await finish(self.connection):
            return False
        await self.connection.commit()
        return True

    async def close(self) -> None:
        """Drop what was not committed. An import stopped mid-COPY (the client gone) leaves
        the driver connection busy, so it cannot roll back politely: it is closed for good
        instead, and PostgreSQL rolls back the transaction of a closed connection."""
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        try:
            await asyncio.wait_for(connection.close(), CLOSE_SECONDS)
        except Exception:  # noqa: BLE001 - whatever the reason, the connection is dropped
            self.driver.terminate()
            await connection.invalidate()


_INSERT_TARGET = (
    f"INSERT INTO outdial_targets ({', '.join(TARGET_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TARGET_COLUMNS))})"
)
_INSERT_ENTRY = (
    f"INSERT INTO dnc_entries ({', '.join(ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})"
)
_INSERT_MAPPING = "INSERT INTO import_row_targets (import_id, row, target_id) VALUES (?, ?, ?)"
_INSERT_ERROR = "INSERT INTO import_row_errors (import_id, row, field, message) VALUES (?, ?, ?, ?)"


async def _once(data: bytes) -> AsyncIterator[bytes]:
    """COPY data for asyncpg as an async iterable. A file object would be read in a thread,
    and asyncpg keeps it in a reference cycle: the blobs of a whole import piled up until a
    full garbage collection (~150 MB more resident memory on a million rows)."""
    yield data


class SqliteSink(TargetSink):
    def __init__(self, database: Database, job: ImportJob, kind: str = TARGETS) -> None:
        self.database, self.job, self.job_id, self.kind = database, job, job.id, kind
        self.spool: Any = None

    async def open(self) -> None:
        self.spool = tempfile.TemporaryFile()

    async def write(
        self, targets: bytes, rows: list[int], target_ids: list[str], errors: list[RowError],
        replaced: Sequence[str] = (),
    ) -> None:
        pickle.dump((targets, rows, target_ids, errors, list(replaced)), self.spool,
                    protocol=pickle.HIGHEST_PROTOCOL)

    async def commit(self, finish: Any) -> bool:
        self.spool.seek(0)
        job = self.job_id.hex
        async with self.database.engine.connect() as connection:
            await connection.begin()
            while True:
                try:
                    targets, rows, target_ids, errors, replaced = pickle.load(self.spool)
                except EOFError:
                    break
                await _remove_expired(connection, self.job, replaced)
                if self.kind == DNC_ENTRIES:
                    await _executemany(connection, _INSERT_ENTRY, decode_targets(targets, "rows"))
                else:
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


async def _remove_expired(
    connection: AsyncConnection, job: ImportJob, values: Sequence[str]
) -> None:
    """Remove the list's entries of `values` that had expired when the job began, in the
    import's transaction: the rows written next list them again. One that was renewed since
    (through the API) stays, and the import then fails on it as a conflict."""
    for start in range(0, len(values), 1000):
        await connection.execute(delete(DncEntry).where(
            DncEntry.dnclist_id == job.dnclist_id, DncEntry.value.in_(values[start:start + 1000]),
            DncEntry.tm_expire <= job.tm_create))


async def _executemany(connection: AsyncConnection, statement: str, rows: Sequence[Any]) -> None:
    if rows:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.executemany(statement, rows)


def sink_for(database: Database, job: ImportJob, kind: str = TARGETS) -> TargetSink:
    sink = SqliteSink if database.is_sqlite else PostgresSink
    return sink(database, job, kind)


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
