"""Statements sent on a pooled SQLite connection's driver connection outside any session (as the
hot routes send theirs): one trip to the connection's thread each, committed as they end, in the
writers' turn their caller holds — never a turn of their own (db.sqlite.OneTripConnection)."""

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.util import greenlet_spawn

from outdial.db import Database, Limits
from outdial.db.engine import writer_queue
from outdial.db.sqlite import FIRST_ROWS, OneTripConnection
from outdial.models import ServerSecret

INSERT = "INSERT INTO server_secrets (name, value) VALUES (?, ?)"


@pytest.fixture
async def database(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[Database]:
    shutil.copy(migrated_sqlite, tmp_path / "outdial.db")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outdial.db'}",
                        limits=Limits(lock_timeout=30.0))
    yield database
    await database.dispose()


class Pooled:
    """A connection of the engine's pool and its driver connection, trips counted."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.trips = 0

    async def __aenter__(self) -> OneTripConnection:
        self.fairy = await greenlet_spawn(self.database.engine.sync_engine.pool.connect)
        raw: OneTripConnection = self.fairy.driver_connection
        for name in ("_execute", "write_alone"):
            setattr(raw, name, self._counted(getattr(raw, name)))
        self.raw = raw
        return raw

    def _counted(self, trip: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.trips += 1
            return await trip(*args, **kwargs)
        return counted

    async def __aexit__(self, *_: object) -> None:
        for name in ("_execute", "write_alone"):
            delattr(self.raw, name)
        await greenlet_spawn(self.fairy.close)


async def _names(database: Database) -> list[str]:
    async with Pooled(database) as raw:
        return [row[0] for row in await (await raw.execute(
            "SELECT name FROM server_secrets ORDER BY rowid")).fetchall()]


async def test_a_statement_is_one_trip_and_a_change_commits_as_it_ends(database: Database) -> None:
    pooled = Pooled(database)
    async with pooled as raw:
        async with raw.execute(INSERT, ["one", "v"]) as cursor:
            assert cursor.rowcount == 1
        assert pooled.trips == 1
        assert not raw.sqlite.in_transaction
        assert await _names(database) == ["one"]  # seen at once by another connection

        async with raw.execute("SELECT name, value FROM server_secrets WHERE name = ?",
                               ["one"]) as cursor:
            assert tuple(await cursor.fetchone()) == ("one", "v")
            assert await cursor.fetchone() is None
        assert pooled.trips == 2  # rows read and cursor closed in the statement's trip

        cursor = await raw.execute("UPDATE server_secrets SET value = ? WHERE name = ?", ["w", "one"])
        assert cursor.rowcount == 1 and pooled.trips == 3


async def test_a_long_result_is_read_on_in_batches(database: Database) -> None:
    rows = [(f"n{n:05}", "v") for n in range(FIRST_ROWS * 2 + 5)]
    pooled = Pooled(database)
    async with pooled as raw:
        await raw.executemany(INSERT, rows)
        pooled.trips = 0
        async with raw.execute("SELECT name FROM server_secrets ORDER BY name") as cursor:
            names = [row[0] async for row in cursor]
        assert names == [name for name, _ in rows]
        assert pooled.trips == 3  # the statement's trip, then batches of FIRST_ROWS


# Each writer holds a pooled connection while it queues; SQLite's pool has 15 (5 kept, 10 more).
WRITERS = 12


async def test_writers_in_the_turn_they_hold_all_succeed_in_order(
    database: Database,
) -> None:
    queue = writer_queue(database.engine.url.database or "")
    # The pooled connections last served sessions whose writes each took a turn of their own
    # (Database.single_write); sent on the driver connection, a write never does.
    async with database.sessions() as session:
        await session.connection(execution_options=database.single_write)
        await session.execute(insert(ServerSecret).values(name="alone", value="v"))
        assert (await session.connection()).sync_connection.connection.driver_connection.writes_alone

    async def write(name: str) -> None:
        async with Pooled(database) as raw:
            await queue.acquire(database.limits.lock_timeout)
            try:
                async with raw.execute(INSERT, [name, "v"]) as cursor:
                    assert cursor.rowcount == 1
            finally:
                queue.release()

    await queue.acquire(database.limits.lock_timeout)  # the holder: everyone queues behind it
    writers = []
    for n in range(WRITERS):
        writers.append(asyncio.create_task(write(f"w{n:02}")))
        async with asyncio.timeout(10):
            while queue.waiting < n + 1:
                await asyncio.sleep(0)
    queue.release()
    await asyncio.gather(*writers)
    assert await _names(database) == ["alone"] + [f"w{n:02}" for n in range(WRITERS)]
