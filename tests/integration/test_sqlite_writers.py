"""SQLite's writers of one process wait their turn in arrival order (db.engine.WriterQueue), within
the lock timeout, and a session that holds no transaction never blocks another session."""

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, insert, select, text

from outdial.db import Database, Limits, busy_reason
from outdial.db.engine import writer_queue
from outdial.models import ServerSecret

PATIENCE = 0.5  # lock timeout of the timeout tests, in seconds
# The ordering test only needs the waiters not to give up while eight of them queue; on a loaded
# machine that takes longer than PATIENCE, so its engines wait longer (still bounded).
ORDERING_PATIENCE = 30.0


@pytest.fixture
async def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[str]:
    shutil.copy(migrated_sqlite, tmp_path / "outdial.db")
    yield f"sqlite+aiosqlite:///{tmp_path / 'outdial.db'}"


async def _pair(url: str, patience: float) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one file, as the API's and the dialing engine's are in one process."""
    limits = Limits(lock_timeout=patience)
    pair = (Database(url, limits=limits), Database(url, limits=limits))
    yield pair
    for database in pair:
        await database.dispose()


@pytest.fixture
async def databases(sqlite_url: str) -> AsyncIterator[tuple[Database, Database]]:
    async for pair in _pair(sqlite_url, PATIENCE):
        yield pair


@pytest.fixture
async def patient_databases(sqlite_url: str) -> AsyncIterator[tuple[Database, Database]]:
    async for pair in _pair(sqlite_url, ORDERING_PATIENCE):
        yield pair


async def _write(database: Database, name: str, written: list[str]) -> None:
    async with database.transaction() as session:
        await session.execute(insert(ServerSecret).values(name=name, value="v"))
        written.append(name)


async def _names(database: Database) -> list[str]:
    async with database.sessions() as session:
        return list(await session.scalars(select(ServerSecret.name).order_by(ServerSecret.name)))


async def _queued(queue: Any, count: int, waiters: list[asyncio.Task[Any]]) -> None:
    """Until `count` writers wait in the queue: bounded, and a writer that failed instead of
    queueing raises its error here rather than leaving this loop to spin."""
    async with asyncio.timeout(10):
        while queue.waiting < count:
            for waiter in waiters:
                if waiter.done():
                    waiter.result()
                    raise AssertionError("a writer finished before the holder let it in")
            await asyncio.sleep(0)


async def test_writers_get_the_database_in_the_order_they_asked_for_it(
    patient_databases: tuple[Database, Database],
) -> None:
    databases = patient_databases
    queue = writer_queue(databases[0].engine.url.database or "")
    assert queue is writer_queue(databases[1].engine.url.database or "")
    written: list[str] = []
    waiters = []
    async with databases[0].transaction() as holder:
        await holder.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the writer's place is taken
        for n in range(8):
            # Alternating engines, each writer queued before the next one asks.
            waiters.append(asyncio.create_task(_write(databases[n % 2], f"w{n}", written)))
            await _queued(queue, n + 1, waiters)
    await asyncio.gather(*waiters)
    assert written == [f"w{n}" for n in range(8)]
    assert await _names(databases[0]) == [f"w{n}" for n in range(8)]


async def test_a_writer_waits_no_longer_than_the_lock_timeout(
    databases: tuple[Database, Database],
) -> None:
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with databases[0].transaction() as session:
            await session.execute(text("SELECT 1"))
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    started = time.perf_counter()
    with pytest.raises(exc.OperationalError) as raised:
        await _write(databases[1], "late", [])
    took = time.perf_counter() - started
    assert busy_reason(raised.value) is not None  # answered as a 503 by the API
    assert took > PATIENCE * 0.8  # it waited its turn, up to the lock timeout
    release.set()
    await holder
    # The writer that gave up holds nothing: the next one goes straight in.
    await _write(databases[1], "next", [])
    assert await _names(databases[0]) == ["next"]


async def test_a_session_without_a_transaction_does_not_block_a_writer(
    databases: tuple[Database, Database],
) -> None:
    """The import routes' pattern: the request's session ends its transaction, stays open, and
    the import writes in sessions of its own; and sessions merely opened hold nothing."""
    async with databases[0].sessions() as request_session:
        await request_session.execute(text("SELECT 1"))
        await request_session.commit()
        async with databases[0].sessions() as opened_only, databases[0].sessions() as reader:
            # A hot route's read: one statement, no transaction.
            await reader.connection(execution_options=databases[0].no_transaction)
            assert (await reader.execute(text("SELECT 1"))).scalar() == 1
            # Held up by either session, the write would fail at the lock timeout.
            await _write(databases[1], "imported", [])
            assert opened_only.in_transaction() is False
    assert await _names(databases[0]) == ["imported"]


async def test_a_second_writer_in_the_task_holding_the_writer_fails_at_once(
    databases: tuple[Database, Database],
) -> None:
    """It could only wait for itself: instead of a wait until the lock timeout, a busy error at
    once (a 503 in the API), and the first transaction carries on."""
    async with databases[0].transaction() as outer:
        await outer.execute(insert(ServerSecret).values(name="outer", value="v"))
        with pytest.raises(exc.OperationalError) as raised:
            await _write(databases[1], "inner", [])
        assert busy_reason(raised.value) is not None
        # Not "past the lock timeout": it did not wait.
        assert "this task already holds the database's writer" in str(raised.value.orig)
    assert await _names(databases[0]) == ["outer"]


async def test_a_transaction_that_fails_gives_its_place_up(
    databases: tuple[Database, Database],
) -> None:
    with pytest.raises(exc.IntegrityError):
        async with databases[0].transaction() as session:
            await session.execute(insert(ServerSecret).values(name="twice", value="v"))
            await session.execute(insert(ServerSecret).values(name="twice", value="v"))
    await _write(databases[1], "after", [])  # held up, it would fail at the lock timeout
    assert await _names(databases[0]) == ["after"]


# --- writes alone (Database.single_write: the API's hot single-statement writes) ----------------

async def _write_alone(database: Database, name: str, written: list[str]) -> None:
    async with database.sessions() as session:
        await session.connection(execution_options=database.single_write)
        await session.execute(insert(ServerSecret).values(name=name, value="v"))
        written.append(name)
        # Already committed with its statement; the session's own commit sends nothing.
        await session.commit()


async def _commit_order(database: Database) -> list[str]:
    async with database.sessions() as session:
        return list(await session.scalars(text("SELECT name FROM server_secrets ORDER BY rowid")))


async def test_sixteen_writers_alone_all_succeed_in_the_order_they_asked(
    patient_databases: tuple[Database, Database],
) -> None:
    databases = patient_databases
    queue = writer_queue(databases[0].engine.url.database or "")
    written: list[str] = []
    waiters = []
    async with databases[0].transaction() as holder:
        await holder.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the writer's place is taken
        for n in range(16):
            waiters.append(asyncio.create_task(
                _write_alone(databases[n % 2], f"w{n:02}", written)))
            await _queued(queue, n + 1, waiters)
    await asyncio.gather(*waiters)
    in_order = [f"w{n:02}" for n in range(16)]
    assert written == in_order
    assert await _commit_order(databases[0]) == in_order  # committed in that order too


async def test_a_write_alone_commits_with_its_statement_and_reads_take_no_turn(
    databases: tuple[Database, Database],
) -> None:
    queue = writer_queue(databases[0].engine.url.database or "")
    async with databases[0].sessions() as session:
        await session.connection(execution_options=databases[0].single_write)
        await session.execute(insert(ServerSecret).values(name="alone", value="v"))
        # Visible to another connection before this session commits: a transaction of its own.
        assert await _names(databases[1]) == ["alone"]
        assert queue.holder is None  # the turn was given up with the COMMIT
        async with databases[1].transaction() as other:  # holds the writer's turn meanwhile
            await other.execute(text("SELECT 1"))
            # A read waiting for the writer's turn would fail at the lock timeout.
            assert (await session.execute(select(ServerSecret.name))).scalars().all() == ["alone"]
        # A failed write gives its turn up and leaves nothing behind.
        with pytest.raises(exc.IntegrityError):
            await session.execute(insert(ServerSecret).values(name="alone", value="again"))
        await session.rollback()
    await _write(databases[1], "after", [])  # held up, it would fail at the lock timeout
    assert await _names(databases[0]) == ["after", "alone"]


async def test_a_sqlite_pool_keeps_the_connections_asked_for(sqlite_url: str) -> None:
    # Connections made for a burst and closed after it would each cost a thread, a connect and
    # the pragmas to make again (the API asks for 20 kept, none more).
    kept = Database(sqlite_url, pool_size=20, overflow=0)
    small = Database(sqlite_url, pool_size=2)
    try:
        pool = kept.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == (20, 0)  # type: ignore[attr-defined]
        pool = small.engine.sync_engine.pool
        assert pool.size() + pool._max_overflow >= 15  # type: ignore[attr-defined]
    finally:
        await kept.dispose()
        await small.dispose()
