"""Every wait on the database is bounded: a starved pool, a held lock or a long statement answer
503 SERVICE_UNAVAILABLE in the envelope within seconds, and /health never queues behind them."""

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url

from outdial.api import create_app
from outdial.clock import FakeClock
from outdial.db import Database, Limits, busy_reason
from outdial.settings import Settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api, assert_error
from tests.integration.campaign_setup import new_campaign

PATIENCE = 0.5  # the pool and lock timeouts of these tests, in seconds


@pytest.fixture
async def api(settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    impatient = settings.model_copy(update={
        "db_pool_timeout_seconds": PATIENCE, "db_lock_timeout_seconds": PATIENCE,
    })
    app = create_app(impatient, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://outdial.test") as http:
            client = Api(http, extra={"app": app})
            client.token = await client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
            yield client


async def timed(call: Any, within: float) -> tuple[httpx.Response, float]:
    """The answer and how long it took; a call still unanswered after `within` s fails."""
    started = time.perf_counter()
    response = await asyncio.wait_for(call, within)
    return response, time.perf_counter() - started


@pytest.mark.parametrize("pool", ["read_database", "database"])
async def test_a_starved_pool_answers_503_at_once_and_health_still_answers(
    api: Api, pool: str
) -> None:
    database: Database = getattr(api.extra["app"].state, pool)
    request = (api.get("/v1.0/outdials") if pool == "read_database"
               else api.post("/v1.0/outdials", json={"name": "x"}))
    held = []
    try:
        while True:  # every connection of the pool (reads' or writes'), taken
            try:
                held.append(await database.engine.connect())
            except exc.TimeoutError:
                break
        assert held

        response, took = await timed(request, within=5)
        error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert error["status"] == "UNAVAILABLE"
        assert "retry" in error["message"]
        assert response.headers["retry-after"] == "1"
        assert took < PATIENCE + 1.5

        health, took = await timed(api.http.get("/health"), within=5)
        assert health.status_code == 200, health.text
        assert took < 1
    finally:
        for connection in held:
            await connection.close()
    assert (await api.get("/v1.0/outdials")).status_code == 200


async def hold_the_lock(database_url: str, campaign_id: str) -> Any:
    """Another process's transaction holding the campaign's row (PostgreSQL) or the database's
    write lock (SQLite), as a hung engine would; returns what releases it."""
    if "sqlite" in database_url:
        connection = sqlite3.connect(make_url(database_url).database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        return connection.rollback
    connection = await asyncpg.connect(database_url)
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR NO KEY UPDATE",
                             uuid.UUID(campaign_id))

    async def release() -> None:
        await transaction.rollback()
        await connection.close()

    return release


async def test_a_status_change_behind_a_held_lock_answers_503_in_bounded_time(
    api: Api, database_url: str
) -> None:
    campaign = await new_campaign(api)
    path = f"/v1.0/campaigns/{campaign['id']}"
    release = await hold_the_lock(database_url, campaign["id"])
    try:
        response, took = await timed(api.put(f"{path}/status", json={"status": "run"}), within=5)
        error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert "retry" in error["message"]
        assert took < PATIENCE + 1.5
        read, took = await timed(api.get(path), within=5)  # reads never wait for a writer
        assert read.status_code == 200 and took < 1
        health, took = await timed(api.http.get("/health"), within=5)
        assert health.status_code == 200 and took < 1
    finally:
        if asyncio.iscoroutine(done := release()):
            await done
    response = await api.put(f"{path}/status", json={"status": "run"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "run"


async def test_a_statement_past_its_timeout_is_a_busy_database(postgres_url: str) -> None:
    database = Database(postgres_url, limits=Limits(statement_timeout=0.2))
    try:
        with pytest.raises(exc.DBAPIError) as raised:
            async with database.transaction() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        assert busy_reason(raised.value) == "a statement ran past the statement timeout"
    finally:
        await database.dispose()


async def test_connections_the_server_dropped_are_replaced_without_an_error(
    api: Api, database_url: str
) -> None:
    """No round trip checks a pooled connection before use: one the server has closed (a
    restart, pg_terminate_backend) is known closed already and replaced at checkout."""
    if "postgresql" not in database_url:
        pytest.skip("SQLite has no server to drop connections")
    import os

    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    calls = [lambda: api.get("/v1.0/outdials"), lambda: api.get(f"/v1.0/outdials/{outdial}"),
             lambda: api.post(f"/v1.0/outdials/{outdial}/targets",
                              json={"destination_0": {"type": "tel", "target": "+15559876543"}})]
    # Several connections in each pool.
    assert {r.status_code for r in await asyncio.gather(*(c() for c in calls * 3))} == {200}
    mine = f"outdial api% {os.getpid()}"
    admin = await asyncpg.connect(database_url)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE $1", mine)
        assert dropped >= 2
        for _ in range(500):  # bounded: until the server has ended them
            if not await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", mine):
                break
            await asyncio.sleep(0.01)
    finally:
        await admin.close()
    for _ in range(3):
        await asyncio.sleep(0)  # the client's loop reads the connections' ends
    for call in calls * 3:
        response = await call()
        assert response.status_code == 200, response.text
