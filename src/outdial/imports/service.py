"""Import jobs: stream an upload through the checkers (both cores) into one all-or-nothing write."""

import asyncio
import datetime as dt
import logging
import multiprocessing
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

import phonenumbers
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from outdial import metrics
from outdial.auth.service import Principal
from outdial.clock import Clock
from outdial.clock_check import ClockGuard
from outdial.db import Database, Limits, log_failure
from outdial.db.driver import refused_row
from outdial.db.paging import Page, PageRequest
from outdial.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutdialError,
    Unavailable,
)
from outdial.imports.checking import (
    CheckedChunk,
    RowRules,
    check_chunk,
    decode_targets,
    encode_targets,
    exit_with_parent,
)
from outdial.imports.ids import new_salt
from outdial.imports.reading import Chunk, malformed, no_rows, read_chunks
from outdial.imports.repository import (
    DNC_ENTRIES,
    TARGETS,
    ImportRepository,
    mark_done,
    sink_for,
    subject_deleted,
)
from outdial.models import ImportJob
from outdial.models.imports import JOB_ERRORS_SHOWN
from outdial.dnclists.service import DnclistService
from outdial.outdials.service import OutdialService
from outdial.settings import Settings
from outdial.timestamps import use_time_format

log = logging.getLogger("outdial.imports")

VALIDATIONS = ("possible", "valid")
# How often a chunk is checked before its import fails, when its checking process dies.
CHECK_TRIES = 2
# Progress is written to the job row about this often (in rows), for GET …/imports/{id}.
PROGRESS_EVERY_ROWS = 20_000
ABANDONED = "the server running the import stopped (its lease expired); no row was imported"
# How often (real seconds) a deduping import waiting for its turn looks whether a deduping
# import of another server has ended; one of this server wakes it at once.
DEDUPE_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ImportOptions:
    default_region: str | None = None
    validation: str = "possible"
    dedupe: bool = False

    @classmethod
    def parse(cls, default_region: str | None, validation: str | None, dedupe: str | None) -> "ImportOptions":
        region = (default_region or "").strip().upper() or None
        if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
            raise InvalidArgument("default_region", f"{default_region!r} is not a region code "
                                  "(ISO 3166 alpha-2, such as US or GB)", "INVALID_REQUEST_PARAMETER")
        validation = validation or "possible"
        if validation not in VALIDATIONS:
            raise InvalidArgument("validation", f"{validation!r} is not one of: possible, valid",
                                  "INVALID_REQUEST_PARAMETER")
        flags = {"": False, "false": False, "0": False, "true": True, "1": True}
        if (dedupe or "").lower() not in flags:
            raise InvalidArgument("dedupe", f"{dedupe!r} is not true or false", "INVALID_REQUEST_PARAMETER")
        return cls(region, validation, flags[(dedupe or "").lower()])


class _Tally:
    """Counts and the first errors of a running job."""

    def __init__(self) -> None:
        self.rows_total = self.rows_imported = self.rows_rejected = self.rows_duplicate = 0
        self.errors: list[dict[str, Any]] = []
        self.errors_stored = 0  # rows of the full report written

    def counts(self) -> dict[str, int]:
        return {"rows_total": self.rows_total, "rows_imported": self.rows_imported,
                "rows_rejected": self.rows_rejected, "rows_duplicate": self.rows_duplicate}

    def note_errors(self, errors: list[tuple[int, str, str]]) -> None:
        room = JOB_ERRORS_SHOWN - len(self.errors)
        self.errors += [{"row": r, "field": f, "message": m} for r, f, m in errors[:max(room, 0)]]


def import_database(settings: Settings) -> Database:
    """Connections of the import jobs' own. Their steps wait for a lock as long as a lease: on
    SQLite another import's final write holds the single writer for seconds, which an API
    request waits for only OUTDIAL_DB_LOCK_TIMEOUT_SECONDS."""
    limits = replace(Limits.for_api(settings), lock_timeout=settings.import_lease_seconds)
    return Database(settings.database_url, limits=limits, role="outdial imports")


class ImportRunner:
    """Owns the checking processes, the connections and the leases of this server's jobs;
    one per application."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.database, self.clock = import_database(settings), clock
        self.workers = settings.import_workers
        self.lease_seconds = settings.import_lease_seconds
        self.dedupe_wait_seconds = settings.import_dedupe_wait_seconds
        self.error_rows = settings.import_error_rows
        self.time_format = settings.time_format
        # Who runs this server's jobs, as recorded on them: host, process and a per-start id.
        self.owner = f"{socket.gethostname()[:30]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        self._pool: ProcessPoolExecutor | None = None
        self._encoding = "rows" if self.database.is_sqlite else "copy"
        self._reaper: asyncio.Task[None] | None = None
        # Set when a deduping job of this server ends: its outdial's waiters look again at once.
        self._turn_freed = asyncio.Event()
        self.clock_guard = ClockGuard(
            self.database, clock, settings.max_clock_offset_seconds, who=f"imports {self.owner}",
            withholds="not failing the import jobs of other servers", log=log)

    async def start(self) -> None:
        """Fail the jobs whose owner stopped renewing their lease, now and from time to time."""
        with use_time_format(self.time_format):
            await self._fail_expired()
        self._reaper = asyncio.create_task(self._reap_forever())

    async def _fail_expired(self) -> None:
        if await self.clock_guard.agrees():
            await fail_expired_imports(self.database, self.clock, self.owner)

    async def _reap_forever(self) -> None:
        with use_time_format(self.time_format):  # the failed jobs' events, as the API writes
            await self._reap_loop()

    async def _reap_loop(self) -> None:
        while True:
            await self.clock.sleep(self.lease_seconds)
            try:
                await self._fail_expired()
            except Exception as error:  # noqa: BLE001 - tried again after a lease
                log_failure(log, "failing the import jobs whose lease expired", error)

    def _check(self, chunk: Chunk, rules: RowRules) -> Awaitable[CheckedChunk]:
        """The chunk's check, started now (in file order) on a checking process."""
        if self.workers <= 0:
            future: asyncio.Future[CheckedChunk] = asyncio.get_running_loop().create_future()
            future.set_result(check_chunk(chunk, rules))
            return future
        return asyncio.ensure_future(self._check_on_pool(chunk, rules))

    def _running_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: a fork would copy the event loop and open connections.
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=exit_with_parent, initargs=(os.getpid(),),
            )
        return self._pool

    async def _check_on_pool(self, chunk: Chunk, rules: RowRules) -> CheckedChunk:
        loop = asyncio.get_running_loop()
        for _ in range(CHECK_TRIES):
            pool = self._running_pool()
            try:
                return await loop.run_in_executor(pool, check_chunk, chunk, rules)
            except BrokenProcessPool:
                # A checking process died (killed, out of memory): its pool takes no more
                # work, ever. The next check gets a new pool; this chunk is checked again.
                log.warning("a process checking import rows stopped; a new one takes over")
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
        raise Unavailable(
            f"the process checking the file's rows stopped {CHECK_TRIES} times (killed, or out "
            "of memory); nothing was imported: send the file again", "IMPORT_CHECKER_STOPPED")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        await self.database.dispose()

    async def _new_job(self, principal: Principal, outdial_id: uuid.UUID, format: str,
                       options: ImportOptions, job_id: uuid.UUID | None, kind: str) -> ImportJob:
        now = self.clock.now()
        try:
            async with self.database.transaction() as session:
                if kind == DNC_ENTRIES:
                    into: Any = await DnclistService(session, self.clock).live_list(
                        principal, outdial_id)
                    subject = {"outdial_id": None, "dnclist_id": into.id}
                else:
                    into = await OutdialService(session, self.clock).live_outdial(principal, outdial_id)
                    subject = {"outdial_id": into.id, "dnclist_id": None}
                job = ImportJob(
                    id=job_id or uuid.uuid4(), customer_id=into.customer_id, **subject,
                    status="running", format=format, default_region=options.default_region or "",
                    validation=options.validation, dedupe=options.dedupe, rows_total=0,
                    rows_imported=0, rows_rejected=0, rows_duplicate=0, errors=[],
                    tm_create=now, owner=self.owner, dedupe_turn=False,
                    tm_lease_expire=now + dt.timedelta(seconds=self.lease_seconds),
                )
                session.add(job)
        except IntegrityError:
            # Only a client-chosen id can clash: two uploads sent with the same one.
            raise AlreadyExists(f"an import with id {job_id} already exists; choose a new id "
                                "(or leave id out)", "IMPORT_EXISTS") from None
        return job

    async def run(
        self, principal: Principal, outdial_id: uuid.UUID, format: str, options: ImportOptions,
        upload: AsyncIterator[bytes], job_id: uuid.UUID | None = None, kind: str = TARGETS,
    ) -> ImportJob:
        """Import the upload into the outdial (`kind` DNC_ENTRIES: into the do-not-call list
        `outdial_id`) and return the finished job (done or failed). `job_id`, when the client
        chose it, lets it follow the job while it uploads. A list's import always skips the
        values the list or the file holds already (rows_duplicate)."""
        if kind == DNC_ENTRIES:
            options = ImportOptions(options.default_region, "possible", dedupe=True)
        job = await self._new_job(principal, outdial_id, format, options, job_id, kind)
        keeper = asyncio.create_task(self._keep_lease(job.id))
        try:
            return await self._import(job, options, upload)
        finally:
            keeper.cancel()
            if options.dedupe:
                self._turn_freed.set()

    async def _import(self, job: ImportJob, options: ImportOptions, upload: AsyncIterator[bytes]) -> ImportJob:
        tally = _Tally()
        into, kind = _subject(job)
        sink = sink_for(self.database, job, kind)
        # Chunks being checked, in file order. A bounded queue: two per worker keep both cores
        # busy while rows are written, and cap what the upload can make the server hold.
        pending: asyncio.Queue[Awaitable[CheckedChunk] | None] = asyncio.Queue(max(self.workers, 1) * 2)
        lander: asyncio.Task[None] | None = None
        try:
            seen: set[Any] = set()
            renewable: set[str] = set()
            if options.dedupe:
                await self._take_dedupe_turn(job)
                async with self.database.sessions() as session:
                    repo = ImportRepository(session)
                    seen = await repo.existing_keys(into, kind, job.tm_create)
                    if kind == DNC_ENTRIES:
                        renewable = await repo.expired_values(into, job.tm_create)
            await sink.open()
            rules = RowRules(
                import_id=job.id, customer_id=job.customer_id, outdial_id=job.outdial_id,
                tm_create=job.tm_create, default_region=options.default_region,
                require_valid=options.validation == "valid", dedupe=options.dedupe,
                encoding=self._encoding, id_salt=new_salt(), dnclist_id=job.dnclist_id,
            )
            # Checked chunks are written as they come, not when the next one is read: a slow
            # or stalled upload still writes (and reports progress on) what has arrived.
            lander = asyncio.create_task(
                self._land_all(job.id, pending, tally, seen, renewable, sink))
            async for chunk in read_chunks(job.format, upload, *(
                    [("value",)] if kind == DNC_ENTRIES else [])):
                await _put_unless_done(pending, self._check(chunk, rules), lander)
            await _put_unless_done(pending, None, lander)
            await lander
            if tally.rows_total == 0:
                raise no_rows(job.format)
            now = self.clock.now()

            async def finish(connection: AsyncConnection) -> bool:
                if await subject_deleted(connection, kind, into):
                    raise FailedPrecondition(
                        f"{_named(kind, into)} was deleted while the file was imported; "
                        "nothing was written",
                        "DNCLIST_DELETED" if kind == DNC_ENTRIES else "OUTDIAL_DELETED")
                return await mark_done(connection, job.id, tally.counts(), tally.errors, now)

            if not await sink.commit(finish):
                tally.rows_imported = 0
                raise _Abandoned()
            metrics.import_ended("done", tally.counts())
        except BaseException as caught:
            error = _conflict(caught) if refused_row(caught) else caught
            # Whatever stopped the import (a bad file, the client gone, the server stopping),
            # the job is failed at once and the transaction holding its rows is dropped.
            if lander is not None:
                lander.cancel()
                await asyncio.gather(lander, return_exceptions=True)
            while not pending.empty():
                future = pending.get_nowait()
                if isinstance(future, asyncio.Future):
                    future.cancel()
            await asyncio.shield(self._abandon(job.id, tally, error, sink))
            if isinstance(error, (OutdialError, _Abandoned)):
                return await self._reload_or_raise(job, error)
            raise
        await sink.close()
        return await self.get_job(into, job.id, kind)

    async def _abandon(self, job_id: uuid.UUID, tally: "_Tally", error: BaseException, sink: Any) -> None:
        try:
            await sink.close()
        finally:
            await self._fail(job_id, tally, error)

    async def _keep_lease(self, job_id: uuid.UUID) -> None:
        """Renew the job's lease, three chances before it runs out, while the job runs."""
        while True:
            await self.clock.sleep(self.lease_seconds / 3)
            try:
                await self.clock_guard.agrees()  # a clock off renews on the server's time
                async with self.database.transaction() as session:
                    held = await ImportRepository(session).renew_lease(
                        job_id, self.owner, self.clock_guard.now(), self.lease_seconds)
            except Exception as error:  # noqa: BLE001 - tried again at the next beat
                log.warning("could not renew the lease of import %s: %s", job_id, error)
                continue
            if not held:
                # Ended meanwhile, or declared failed elsewhere (this server was frozen past
                # the lease), in which case the commit finds it so and rolls back.
                return

    async def _take_dedupe_turn(self, job: ImportJob) -> None:
        """Wait (bounded) until no other deduping import into the outdial is running, and take
        the turn: from reading the outdial's numbers to the commit, this job is the only one
        deduping against it, so no two deduping imports can both add the same number."""
        deadline = self.clock.now() + dt.timedelta(seconds=self.dedupe_wait_seconds)
        into, kind = _subject(job)
        while True:
            self._turn_freed.clear()
            holder: uuid.UUID | str | None
            try:
                # Whether the holder's lease has ended is read on the server's time: a clock
                # far ahead would take a live import's turn, and both would add one number.
                await self.clock_guard.agrees()
                async with self.database.transaction() as session:
                    holder = await ImportRepository(session).take_dedupe_turn(
                        job.id, into, self.clock_guard.now(), self.database.is_sqlite, kind)
            except OperationalError:
                # The database is busy past its lock wait, as it is on SQLite while another
                # import writes its rows: that import still holds the turn.
                holder = "another import"
            if holder is None:
                return
            if self.clock.now() >= deadline:
                raise FailedPrecondition(
                    f"import {holder} is deduping into this outdial and has not ended within "
                    f"{self.dedupe_wait_seconds:g} s (OUTDIAL_IMPORT_DEDUPE_WAIT_SECONDS); "
                    "send the file again once it has", "IMPORT_DEDUPE_BUSY")
            try:
                await asyncio.wait_for(self._turn_freed.wait(), DEDUPE_POLL_SECONDS)
            except TimeoutError:
                pass

    async def _land_all(
        self, job_id: uuid.UUID, pending: "asyncio.Queue[Awaitable[CheckedChunk] | None]",
        tally: _Tally, seen: set[Any], renewable: set[str], sink: Any,
    ) -> None:
        saved_at = 0
        while (checking := await pending.get()) is not None:
            await self._land(await checking, tally, seen, renewable, sink)
            if tally.rows_total - saved_at >= PROGRESS_EVERY_ROWS:
                saved_at = tally.rows_total
                await self._save_progress(job_id, tally)

    async def _land(
        self, checked: CheckedChunk, tally: _Tally, seen: set[Any], renewable: set[str],
        sink: Any,
    ) -> None:
        """Write a checked chunk; chunks land in file order, so the rows before it are counted.
        `renewable`: values of a list whose entry has expired; a row holding one replaces it."""
        before = tally.rows_total
        if checked.malformed is not None:
            number, problem = checked.malformed
            raise malformed(before + number if number else 0, problem)
        targets, numbers, target_ids = checked.targets, checked.numbers, checked.target_ids
        replaced: list[str] = []
        if checked.keys:
            keep = []
            for index, key in enumerate(checked.keys):
                if key in seen:
                    tally.rows_duplicate += 1
                else:
                    seen.add(key)
                    keep.append(index)
                    if key in renewable:
                        replaced.append(key)
            rows = decode_targets(targets, self._encoding)
            targets = encode_targets([rows[i] for i in keep], self._encoding)
            numbers = [numbers[i] for i in keep]
            target_ids = [target_ids[i] for i in keep]
        errors = [(before + number, name, message) for number, name, message in checked.errors]
        tally.rows_total += checked.rows
        tally.rows_imported += len(numbers)
        tally.rows_rejected += checked.rejected
        tally.note_errors(errors)
        # The full report keeps the first OUTDIAL_IMPORT_ERROR_ROWS errors: a garbage upload
        # cannot make the database hold one row per line of it.
        errors = errors[:max(self.error_rows - tally.errors_stored, 0)]
        tally.errors_stored += len(errors)
        await sink.write(targets, [before + number for number in numbers], target_ids, errors,
                         replaced)

    async def _save_progress(self, job_id: uuid.UUID, tally: _Tally) -> None:
        async with self.database.transaction() as session:
            await ImportRepository(session).save_progress(job_id, tally.counts(), tally.errors)

    async def _fail(self, job_id: uuid.UUID, tally: _Tally, error: BaseException) -> None:
        if isinstance(error, _Abandoned):
            return  # already failed by the server that found it abandoned
        if isinstance(error, InvalidArgument):
            message = error.problem
        elif isinstance(error, OutdialError):
            message = error.message
        elif isinstance(error, asyncio.CancelledError):
            message = "the server stopped during the import; no row was imported"
        else:
            message = "the server failed during the import; no row was imported"
        errors = [*tally.errors, {"row": 0, "field": "", "message": message}]
        async with self.database.transaction() as session:
            failed = await ImportRepository(session).fail(
                job_id, tally.counts(), errors, self.clock.now())
        if failed:  # else another server failed it first, and counted it
            metrics.import_ended("failed", tally.counts())

    async def _reload_or_raise(self, job: ImportJob, error: BaseException) -> ImportJob:
        if isinstance(error, OutdialError):
            # Bad upload as a whole (not UTF-8, broken JSON, no header, too large): answer 400
            # and name the job, which stays as failed for the record.
            error.message = f"{error.message} (import {job.id} failed; no row was imported)"
            raise error
        into, kind = _subject(job)
        return await self.get_job(into, job.id, kind)

    async def get_job(self, outdial_id: uuid.UUID, import_id: uuid.UUID,
                      kind: str = TARGETS) -> ImportJob:
        async with self.database.sessions() as session:
            job = await ImportRepository(session).get_job(outdial_id, import_id, kind)
        if job is None:
            raise NotFound(f"import {import_id} not found in {_named(kind, outdial_id)}",
                           "IMPORT_NOT_FOUND")
        return job


async def _put_unless_done(queue: asyncio.Queue[Any], item: Any, consumer: asyncio.Task[None]) -> None:
    """queue.put(item), unless the consumer stops first (its error is raised then)."""
    putting = asyncio.ensure_future(queue.put(item))
    await asyncio.wait((putting, consumer), return_when=asyncio.FIRST_COMPLETED)
    if not putting.done():
        putting.cancel()
        if isinstance(item, asyncio.Future):
            item.cancel()
        consumer.result()  # raises why the consumer stopped
        raise RuntimeError("the import stopped writing rows")


def _subject(job: ImportJob) -> tuple[uuid.UUID, str]:
    """What the job fills: (the outdial's or the list's id, its kind)."""
    if job.dnclist_id is not None:
        return job.dnclist_id, DNC_ENTRIES
    assert job.outdial_id is not None
    return job.outdial_id, TARGETS


def _named(kind: str, subject_id: uuid.UUID) -> str:
    return f"{'dnclist' if kind == DNC_ENTRIES else 'outdial'} {subject_id}"


def _conflict(error: BaseException) -> FailedPrecondition:
    """A row the database refused as it was written: another write (an entry added at once
    through the API) took one of its values meanwhile."""
    reason = str(getattr(error, "orig", None) or error).splitlines()[0][:200]
    return FailedPrecondition(
        "a value of the file was added to the list by another request during the import; "
        f"send the file again ({reason})", "IMPORT_CONFLICT")


class _Abandoned(Exception):
    """The job was declared failed by a restarted server while this process still ran it."""


async def _check_subject(session: AsyncSession, clock: Clock, principal: Principal,
                         subject_id: uuid.UUID, kind: str) -> None:
    """The outdial (or list) exists and is the principal's customer's: else 404."""
    if kind == DNC_ENTRIES:
        await DnclistService(session, clock).get_list(principal, subject_id)
    else:
        await OutdialService(session, clock).get_outdial(principal, subject_id)


async def find_job(session: AsyncSession, clock: Clock, principal: Principal,
                   outdial_id: uuid.UUID, import_id: uuid.UUID, kind: str = TARGETS) -> ImportJob:
    await _check_subject(session, clock, principal, outdial_id, kind)
    job = await ImportRepository(session).get_job(outdial_id, import_id, kind)
    if job is None:
        raise NotFound(f"import {import_id} not found in {_named(kind, outdial_id)}",
                       "IMPORT_NOT_FOUND")
    return job


async def list_jobs(session: AsyncSession, clock: Clock, principal: Principal,
                    outdial_id: uuid.UUID, page: PageRequest, kind: str = TARGETS) -> Page[ImportJob]:
    await _check_subject(session, clock, principal, outdial_id, kind)
    return await ImportRepository(session).list_jobs(outdial_id, page, kind)


async def fail_expired_imports(database: Database, clock: Clock, alive_owner: str = "") -> int:
    """Jobs whose owner stopped renewing their lease (the process died or froze) are failed;
    their rows were never committed. A job whose owner is alive is never touched, and the
    jobs of `alive_owner` (the calling server) are not even looked at: they are alive, though
    on SQLite another import's long final write may have kept their lease from renewal."""
    now = clock.now()
    ended: list[dict[str, int]] = []
    async with database.transaction() as session:
        repo = ImportRepository(session)
        for job in await repo.expired_jobs(now, spare=alive_owner):
            errors = [*job.errors, {"row": 0, "field": "", "message": ABANDONED}]
            counts = {"rows_total": job.rows_total, "rows_rejected": job.rows_rejected,
                      "rows_duplicate": job.rows_duplicate}
            if await repo.fail(job.id, counts, errors, now, expired_at=now):
                ended.append(counts)
    for counts in ended:
        metrics.import_ended("failed", counts)
    failed = len(ended)
    if failed:
        log.warning("failed %d import jobs whose server stopped renewing their lease", failed)
    return failed
