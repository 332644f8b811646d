"""A worker stopped in the middle of sending a message leaves its PostgreSQL session waiting
for the rest (`active`, ClientRead) with its locks, under no server timeout: the other engines
end such sessions once they have waited longer than any statement may run."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from outdial.engine import repository
from outdial.engine.worker import ENGINE_ROLE, WEBHOOKS_ROLE
from tests.engine_support import HangingDialer, make_campaign, make_engine, tel


class Stalled:
    """A session of `name` holding the campaign's row lock, in a COPY whose data never comes:
    on the server, exactly a session whose client stopped mid-message."""

    def __init__(self, connection: asyncpg.Connection, copying: asyncio.Task[Any]) -> None:
        self.connection, self.copying = connection, copying
        self.pid = connection.get_server_pid()

    @classmethod
    async def start(cls, url: str, name: str, campaign_id: uuid.UUID) -> "Stalled":
        connection = await asyncpg.connect(url, server_settings={"application_name": name})
        await connection.execute("BEGIN")
        await connection.execute(
            "SELECT 1 FROM campaigns WHERE id = $1 FOR NO KEY UPDATE", campaign_id)
        await connection.execute("CREATE TEMP TABLE scratch (n int)")
        never = asyncio.Event()

        async def no_data() -> AsyncIterator[bytes]:
            await never.wait()
            yield b""

        copying = asyncio.create_task(connection.copy_to_table("scratch", source=no_data()))
        return cls(connection, copying)

    async def close(self) -> None:
        self.copying.cancel()
        await asyncio.gather(self.copying, return_exceptions=True)
        self.connection.terminate()


async def waiting_mid_message(url: str, pid: int) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval(
            "SELECT state = 'active' AND wait_event = 'ClientRead' FROM pg_stat_activity "
            "WHERE pid = $1", pid))
    finally:
        await connection.close()


async def session_gone(url: str, pid: int) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return not await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await connection.close()


async def campaign_lock_free(url: str, campaign_id: uuid.UUID) -> bool:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute(
                "SELECT 1 FROM campaigns WHERE id = $1 FOR NO KEY UPDATE NOWAIT", campaign_id)
        return True
    except asyncpg.LockNotAvailableError:
        return False
    finally:
        await connection.close()


async def until(check: Any) -> None:
    """Bounded: until `check()` holds (a server's state reached by another connection)."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never reached")


async def test_a_stopped_workers_session_is_ended_and_its_locks_freed(
    database, database_url, clock
) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server sessions: a stopped writer is said in the README")
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    campaign_id = scenario.campaign_id
    worker = await Stalled.start(database_url, f"{ENGINE_ROLE} 424242", campaign_id)
    deliverer = await Stalled.start(database_url, f"{WEBHOOKS_ROLE} 424242", uuid.uuid4())
    # An upload to the API waits for its client as long as the client sends: never ended.
    upload = await Stalled.start(database_url, "outdial api 424243", uuid.uuid4())
    try:
        for stalled in (worker, deliverer, upload):
            await until(lambda s=stalled: waiting_mid_message(database_url, s.pid))
        async with database.transaction() as session:  # not stalled for an hour yet
            assert await repository.end_stalled_sessions(
                session, (ENGINE_ROLE, WEBHOOKS_ROLE), 3600) == 0
        assert not await campaign_lock_free(database_url, campaign_id)

        engine = make_engine(database, HangingDialer(), clock, stalled_session_seconds=0.001)
        await engine.reap_if_due()
        for ended in (worker, deliverer):
            await until(lambda s=ended: session_gone(database_url, s.pid))
        assert await campaign_lock_free(database_url, campaign_id)
        assert await waiting_mid_message(database_url, upload.pid)
        assert await engine.step() == 1  # and the campaign is dialed again
    finally:
        for stalled in (worker, deliverer, upload):
            await stalled.close()
