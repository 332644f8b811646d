"""Every wait on the database is bounded: a starved pool, a held lock or a long statement answer
503 SERVICE_UNAVAILABLE in the envelope within seconds, and /health never queues behind them."""

import asyncio
import contextlib
import socket
import sqlite3
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
from outdial.db import Database, DatabaseUnreachable, Limits, busy_reason, log_failure
from outdial.db.driver import driver_connection
from outdial.imports.service import import_database
from outdial.settings import LONGEST_SERVER_WAIT, Settings
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


async def answered(call: Any, within: float = 10) -> httpx.Response:
    """The answer; a call still unanswered after `within` s fails the test. The bound is far
    above the waits configured here so that a loaded machine does not fail it; which wait ended
    the request is told by the answer itself (503 and its reason, or a 200 that waited on
    nothing)."""
    return await asyncio.wait_for(call, within)


@pytest.mark.parametrize("pool", ["read_database", "database"])
async def test_a_starved_pool_answers_503_in_bounded_time_and_health_still_answers(
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

        response = await answered(request)
        error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert error["status"] == "UNAVAILABLE"
        assert "retry" in error["message"]
        assert response.headers["retry-after"] == "1"

        health = await answered(api.http.get("/health"))  # needs no pooled connection
        assert health.status_code == 200, health.text
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
        response = await answered(api.put(f"{path}/status", json={"status": "run"}))
        error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert "retry" in error["message"]
        read = await answered(api.get(path))  # reads never wait for a writer: no 503 here
        assert read.status_code == 200, read.text
        health = await answered(api.http.get("/health"))
        assert health.status_code == 200, health.text
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


class Relay:
    """A TCP relay in front of the PostgreSQL server, which a test can stop (every connection
    through it ends and new ones are refused) and start again on the same port."""

    def __init__(self, server_host: str, server_port: int) -> None:
        self.server = (server_host, server_port)
        self.port = 0
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._listener = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for writer in list(self._pipes):
            writer.close()
        await self._listener.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.server)
        self._pipes |= {writer, server_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()
                self._pipes.discard(sink)

        await asyncio.gather(pipe(reader, server_writer), pipe(server_reader, writer))


async def test_a_database_server_gone_answers_503_and_comes_back(
    settings: Settings, clock: FakeClock, database_url: str
) -> None:
    """A server that refuses new connections (stopped, restarting) is a 503 to retry, as a
    starved pool is; once it is back, the same app answers again."""
    if "postgresql" not in database_url:
        pytest.skip("SQLite has no server to connect to")
    url = make_url(database_url)
    relay = Relay(url.host or "127.0.0.1", url.port or 5432)
    await relay.start()
    relayed = settings.model_copy(update={
        "database_url": url.set(port=relay.port).render_as_string(hide_password=False)})
    app = create_app(relayed, clock=clock)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://outdial.test") as http:
                api = Api(http, extra={"app": app})
                api.token = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
                assert (await api.get("/v1.0/outdials")).status_code == 200

                await relay.stop()
                for _ in range(3):
                    await asyncio.sleep(0)  # the client's loop reads the connections' ends
                for request in (api.get("/v1.0/outdials"), api.post("/v1.0/outdials", json={})):
                    response = await answered(request)
                    error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
                    assert "the database server could not be reached" in error["message"]
                    assert response.headers["retry-after"] == "1"
                health = await answered(http.get("/health"))
                assert_error(health, 503, "DATABASE_UNAVAILABLE")

                await relay.start()
                response = await answered(api.post("/v1.0/outdials", json={"name": "back"}))
                assert response.status_code == 200, response.text
    finally:
        with contextlib.suppress(AssertionError):
            await relay.stop()


async def test_a_connection_the_server_does_not_answer_ends_at_the_connect_timeout(
    postgres_url: str,
) -> None:
    silent = socket.socket()  # accepts (the kernel's backlog) and never speaks
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    url = make_url(postgres_url).set(port=port).render_as_string(hide_password=False)
    # OUTDIAL_DB_CONNECT_TIMEOUT_SECONDS, as the API's, the engine's and the imports' take it.
    settings = Settings(database_url=url, db_connect_timeout_seconds=0.2)
    try:
        for database in (Database(url, limits=Limits.for_api(settings)),
                         Database(url, limits=Limits.for_engine(settings)),
                         import_database(settings)):
            try:
                with pytest.raises(DatabaseUnreachable) as raised:
                    async with database.transaction() as session:  # not the default 10 s
                        await answered(session.execute(text("SELECT 1")), within=5)
                assert busy_reason(raised.value) == (
                    "the database server could not be reached: no answer within the connect "
                    "timeout")
            finally:
                await database.dispose()
    finally:
        silent.close()


async def test_a_server_with_no_connection_slot_free_is_busy(postgres_url: str) -> None:
    role = f"outdial_full_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
    database = Database(make_url(postgres_url).set(username=role).render_as_string(
        hide_password=False))
    try:
        with pytest.raises(exc.DBAPIError) as raised:
            async with database.transaction() as session:
                await session.execute(text("SELECT 1"))
        assert busy_reason(raised.value) == "the database server had no connection slot free"
        with pytest.raises(exc.DBAPIError) as raised:  # the hot routes' own connections
            async with driver_connection(database):
                pass
        assert busy_reason(raised.value) == "the database server had no connection slot free"
    finally:
        await database.dispose()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_a_server_set_up_otherwise_than_the_url_says_is_an_error_not_busy(
    postgres_url: str,
) -> None:
    """A server that will not speak TLS to a URL asking for it will not do so on a retry: an
    error to fix, not a 503 to retry."""

    async def no_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(8)  # the SSLRequest
        writer.write(b"N")  # as a PostgreSQL server without TLS answers it
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(no_tls, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = make_url(postgres_url).set(port=port, query={"ssl": "require"})
    database = Database(url.render_as_string(hide_password=False), limits=Limits(connect_timeout=5))
    try:
        with pytest.raises(Exception) as raised:
            async with database.transaction() as session:
                await answered(session.execute(text("SELECT 1")))
        assert "rejected SSL upgrade" in str(raised.value)
        assert busy_reason(raised.value) is None
    finally:
        await database.dispose()
        server.close()


def test_a_database_not_reached_is_logged_in_one_line_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the workers and the API's background rounds log when a round fails: a database
    down is said at each retry, without a traceback to read through."""
    import logging

    log = logging.getLogger("outdial.test")
    with caplog.at_level(logging.WARNING, logger="outdial.test"):
        log_failure(log, "folding count changes (retrying)",
                    DatabaseUnreachable("[Errno 111] Connect call failed"))
        log_failure(log, "folding count changes (retrying)", ValueError("a bug"))
    down, bug = caplog.records
    assert (down.levelno, down.exc_info) == (logging.WARNING, None)
    assert down.getMessage() == (
        "folding count changes (retrying): the database is busy (the database server could "
        "not be reached: [Errno 111] Connect call failed)")
    assert bug.levelno == logging.ERROR and bug.exc_info is not None


async def test_a_hot_routes_connection_lost_under_its_statement_is_busy(
    postgres_url: str,
) -> None:
    """The server ends the connection while a hot route's statement runs (a restart, an
    administrator): a 503 to retry, as for a session's statement, and a new connection next."""
    from sqlalchemy import func, select

    database = Database(postgres_url)
    admin = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(exc.DBAPIError) as raised:
            async with driver_connection(database) as connection:
                pid = (await connection.fetch_one(
                    select(func.pg_backend_pid().label("pid")), {})).pid
                running = asyncio.ensure_future(connection.fetch_one(
                    select(func.pg_sleep(30).label("slept")), {}))
                for _ in range(500):  # bounded: until the server runs it
                    if await admin.fetchval("SELECT wait_event = 'PgSleep' FROM pg_stat_activity"
                                            " WHERE pid = $1", pid):
                        break
                    await asyncio.sleep(0.01)
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await answered(running)
        assert busy_reason(raised.value) == "the connection to the database was lost"
        async with driver_connection(database) as connection:
            again = await connection.fetch_one(select(func.pg_backend_pid().label("pid")), {})
        assert again.pid != pid
    finally:
        await admin.close()
        await database.dispose()


def test_a_host_of_several_addresses_none_answering_is_unreachable() -> None:
    """asyncio tries every address of a host name (localhost: ::1 and 127.0.0.1); when they
    all fail differently it raises one OSError without errno, saying them all in its text."""
    from outdial.db.engine import _unreachable

    refused = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, "
                      "0), [Errno 99] Cannot assign requested address")
    assert refused.errno is None and _unreachable(refused)
    tls = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
                  "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert not _unreachable(tls)  # no errno said for one of them: not told, so not busy
    assert not _unreachable(OSError("Multiple exceptions: something else"))
    # A name that resolved at start and no longer does: its container stopped.
    assert _unreachable(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))


async def test_an_engines_sessions_carry_the_engines_limits(postgres_url: str) -> None:
    """The server ends an engine's transaction left idle (a worker frozen mid-transaction)
    only if its sessions were opened with the limit: read back from the server itself."""
    engine_settings = Settings(
        database_url=postgres_url, engine_idle_in_transaction_seconds=7,
        db_statement_timeout_seconds=11, db_lock_timeout_seconds=2)
    database = Database(postgres_url, limits=Limits.for_engine(engine_settings))
    try:
        async with database.transaction() as session:
            shown = [(await session.execute(text(f"SHOW {name}"))).scalar() for name in (
                "idle_in_transaction_session_timeout", "statement_timeout", "lock_timeout")]
    finally:
        await database.dispose()
    assert shown == ["7s", "11s", "2s"]


async def test_the_longest_waits_the_settings_take_are_taken_by_the_server(postgres_url: str) -> None:
    """The settings' bound is the server's own: at it, every connection is still accepted (a
    wait one past it is refused at start-up, tests/e2e/test_first_run.py)."""
    longest = Settings(
        database_url=postgres_url, engine_idle_in_transaction_seconds=LONGEST_SERVER_WAIT,
        db_statement_timeout_seconds=LONGEST_SERVER_WAIT, db_lock_timeout_seconds=LONGEST_SERVER_WAIT,
        import_lease_seconds=LONGEST_SERVER_WAIT)
    for database in (Database(postgres_url, limits=Limits.for_engine(longest)),
                     import_database(longest)):
        try:
            async with database.transaction() as session:
                shown = (await session.execute(text("SHOW lock_timeout"))).scalar()
        finally:
            await database.dispose()
        assert shown == "2147483647ms"
