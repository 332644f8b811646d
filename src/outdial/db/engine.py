"""Engine and session set-up: SQLite pragmas and single-writer transactions, PostgreSQL pooling,
and the bounds on every wait (pool checkout, locks, statements, a hung client's transaction)."""

import asyncio
import errno
import logging
import os
import re
import socket
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from outdial.db import sqlite as one_trip
from outdial.settings import Settings

# SQLite: how much of the database file reads map into memory (see _configure_sqlite).
MMAP_BYTES = 1 << 30
# SQLite: connections of a pool in all, at least (SQLAlchemy's default: 5 kept, 10 more).
SQLITE_POOL_AT_LEAST = 15
# Opening a connection to a server that does not answer gives up after this (the default of
# OUTDIAL_DB_CONNECT_TIMEOUT_SECONDS, which processes' limits take).
CONNECT_TIMEOUT_SECONDS = 10.0
# /health answers within this, whatever the database does.
PROBE_TIMEOUT_SECONDS = 1.0

# PostgreSQL errors that mean "busy, try again", not "broken": lock_timeout, statement_timeout,
# a deadlock the server broke.
_BUSY_SQLSTATES = {
    "55P03": "a lock it needs was held elsewhere past the lock timeout",
    "57014": "a statement ran past the statement timeout",
    "40P01": "it deadlocked with another request",
    # A new connection the server turned away for now.
    "53300": "the database server had no connection slot free",
    "57P03": "the database server was starting up or shutting down",
}


class DatabaseUnreachable(Exception):
    """A new connection to the database server was refused or not answered in time: for the
    client, a 503 to retry like the other bounded waits (busy_reason), not a broken request."""


def normalize_url(url: str) -> str:
    """Accept the plain URLs people write and pick the async driver for them."""
    parsed = make_url(url)
    driver = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
              "sqlite": "sqlite+aiosqlite"}.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@dataclass(frozen=True)
class Limits:
    """How long a session of one role may wait, in seconds; None: that wait is not limited."""

    pool_timeout: float = 3.0
    lock_timeout: float = 3.0
    statement_timeout: float | None = 30.0
    # Only for engine sessions: an API transaction may legitimately idle while an upload streams.
    idle_in_transaction_timeout: float | None = None
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS

    @classmethod
    def for_api(cls, settings: Settings) -> "Limits":
        return cls(pool_timeout=settings.db_pool_timeout_seconds,
                   lock_timeout=settings.db_lock_timeout_seconds,
                   statement_timeout=settings.db_statement_timeout_seconds,
                   connect_timeout=settings.db_connect_timeout_seconds)

    @classmethod
    def for_engine(cls, settings: Settings) -> "Limits":
        return replace(cls.for_api(settings),
                       idle_in_transaction_timeout=settings.engine_idle_in_transaction_seconds)

    def postgres_settings(self) -> dict[str, str]:
        """Server settings of every connection, in ms (0 is PostgreSQL's "no limit")."""
        def ms(seconds: float | None) -> str:
            return str(round(seconds * 1000)) if seconds else "0"

        return {
            "lock_timeout": ms(self.lock_timeout),
            "statement_timeout": ms(self.statement_timeout),
            "idle_in_transaction_session_timeout": ms(self.idle_in_transaction_timeout),
        }


def busy_reason(error: BaseException) -> str | None:
    """What the database could not give in time, if `error` says it was busy; else None.

    These are the bounded waits running out: the request may be retried as it is.
    """
    if isinstance(error, exc.TimeoutError):
        return "no database connection came free in time"
    if isinstance(error, DatabaseUnreachable):
        return f"the database server could not be reached: {error}"
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            # The server went away under a statement; the pool has dropped its connections.
            return "the connection to the database was lost"
        original = error.orig
        busy = _BUSY_SQLSTATES.get(getattr(original, "sqlstate", None) or "")
        if busy:
            return busy
        if isinstance(original, sqlite3.OperationalError) and "locked" in str(original):
            return "another writer held the database past the lock timeout"
    return None


def log_failure(log: logging.Logger, what: str, error: BaseException) -> None:
    """A database that stayed busy past a bounded wait (or could not be reached) is one line,
    said again at each retry; anything else, a traceback."""
    if (reason := busy_reason(error)) is not None:
        log.warning("%s: the database is busy (%s)", what, reason)
    else:
        log.error("%s failed", what, exc_info=error)


# Execution option of a connection that runs single statements outside any transaction: no
# BEGIN, so on SQLite no write lock and on PostgreSQL no BEGIN/ROLLBACK round trips.
NO_TRANSACTION = "outdial_no_transaction"
# Execution option of a SQLite connection each of whose statements is a transaction of its own
# (Database.single_write; db.sqlite.OneTripConnection).
EACH_STATEMENT_ALONE = "outdial_each_statement_alone"


class WriterQueue:
    """The writers of one SQLite file in this process, let in one at a time in arrival order.

    SQLite's own wait for its write lock (busy_timeout) retries with growing sleeps, so among
    many waiting writers some wait far longer than others. Writers of this process wait here
    instead, first come first served, and only the one at the head asks SQLite for the lock.
    A transaction holds its place from BEGIN to COMMIT or ROLLBACK — no longer than SQLite's
    own lock — so code that ends its transaction before opening another cannot deadlock here.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # asyncio.Lock wakes its waiters in FIFO order
        self.holder: asyncio.Task[Any] | None = None

    @property
    def waiting(self) -> int:
        return len(getattr(self._lock, "_waiters", None) or ())

    async def acquire(self, timeout: float) -> None:
        task = asyncio.current_task()
        if self.holder is not None and self.holder is task:
            # The same task already writes on another connection: waiting would wait for itself.
            raise _locked("this task already holds the database's writer on another session")
        try:
            async with asyncio.timeout(timeout):
                await self._lock.acquire()
        except TimeoutError:
            raise _locked("another writer held the database past the lock timeout") from None
        self.holder = task

    def release(self) -> None:
        self.holder = None
        self._lock.release()


def _locked(why: str) -> exc.OperationalError:
    """Reported as SQLite reports its own lock wait running out, so callers see one error."""
    return exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(f"database is locked: {why}"))


# One queue per database file and event loop: every engine of the process on that file shares it.
_writer_queues: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WriterQueue]]" = (
    weakref.WeakKeyDictionary()
)


def writer_queue(path: str) -> WriterQueue:
    queues = _writer_queues.setdefault(asyncio.get_running_loop(), {})
    return queues.setdefault(os.path.abspath(path), WriterQueue())


def _configure_sqlite(engine: AsyncEngine, busy_timeout: float, reads_only: bool) -> None:
    path = engine.url.database or ""
    shared_file = path not in ("", ":memory:") and not path.startswith("file:")
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect
    # The queue whose place each connection (by its DBAPI connection) holds.
    holding: dict[int, WriterQueue] = {}

    @event.listens_for(sync_engine, "do_connect")
    def on_do_connect(_dialect: Any, _record: Any, _args: Any, options: dict[str, Any]) -> None:
        # The driver's connection with one trip to its thread per statement (db.sqlite).
        options["async_creator_fn"] = one_trip.connect

    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that every transaction can begin
        # IMMEDIATE: SQLite then has one writer at a time, and a reader never has to upgrade
        # its lock mid-transaction (the case busy_timeout cannot resolve).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL: a commit does not wait for an fsync (the WAL is synced
        # at checkpoints), and a process that dies loses nothing it committed; only an OS
        # crash or power loss may lose the last commits, never the database's integrity.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Reads go through a memory map of the file's first GiB instead of a read() into
        # each connection's own page cache: the OS's cache, shared by every connection and
        # process. Reading 10,000 targets scattered in a million (stats, bench/stats_bench.py)
        # cost 21-23 ms of CPU through read(), 13-15 ms through the map.
        cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if reads_only:
            # A pool that only reads: a write on it fails at once instead of waiting for
            # SQLite's lock outside the writers' queue.
            cursor.execute("PRAGMA query_only=ON")
        # How long BEGIN IMMEDIATE waits for the writer before "database is locked" (a 503).
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
        cursor.close()
        dbapi_connection.driver_connection.lock_timeout = busy_timeout

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        driver = connection.connection.driver_connection
        driver.writes_alone = bool(options.get(EACH_STATEMENT_ALONE))
        # Looked up per transaction: the queue is the running loop's.
        driver.writers = writer_queue(path) if shared_file else None
        if driver.writes_alone or options.get(NO_TRANSACTION):
            # Single statements in SQLite's autocommit mode: a reader takes no write lock; a
            # writer alone takes its turn around its statement's one trip (OneTripConnection).
            return
        if reads_only:
            # A deferred transaction reads one snapshot of the WAL and never takes the write
            # lock: readers neither queue behind the writers nor hold them up.
            connection.exec_driver_sql("BEGIN")
            return
        if shared_file:
            queue = writer_queue(path)
            await_only(queue.acquire(busy_timeout))
            holding[id(connection.connection.dbapi_connection)] = queue
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release(connection.connection.dbapi_connection)
            raise

    def release(dbapi_connection: Any) -> None:
        queue = holding.pop(id(dbapi_connection), None)
        if queue is not None:
            queue.release()

    # The place is given up once COMMIT or ROLLBACK has returned, so that the next writer's
    # BEGIN IMMEDIATE finds SQLite's lock free rather than falling into its busy handler.
    # Both are called with the pool's proxy, also by the pool's reset of a returned connection.
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def commit_then_release(proxy: Any) -> None:
        try:
            do_commit(proxy)
        finally:
            release(proxy.dbapi_connection)

    def rollback_then_release(proxy: Any) -> None:
        try:
            do_rollback(proxy)
        finally:
            release(proxy.dbapi_connection)

    dialect.do_commit = commit_then_release  # type: ignore[method-assign]
    dialect.do_rollback = rollback_then_release  # type: ignore[method-assign]

    @event.listens_for(sync_engine.pool, "invalidate")
    def on_invalidate(dbapi_connection: Any, _record: Any, _error: Any) -> None:
        release(dbapi_connection)


def _configure_postgres(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine.pool, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Instead of a round trip per checkout (pool_pre_ping): asyncpg marks a connection
        # closed as soon as the server's end of it goes away (a restart, an administrator's
        # pg_terminate_backend), so a dead one is replaced here at no cost. One that dies
        # while in use fails its statement, and SQLAlchemy then drops every pooled connection
        # made before it; that request answers 503 (see busy_reason) and may be retried.
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the server closed this connection")

    @event.listens_for(engine.sync_engine, "do_connect")
    def on_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # The driver raises a refused or unanswered connection as the socket's own OSError
        # (TimeoutError after connect_timeout), which would read as a bug (500); a server that
        # answers with an error (a full server: 53300) is a DBAPIError already.
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as error:
            if not _unreachable(error):  # TLS refused or unverified: set up otherwise
                raise
            raise DatabaseUnreachable(str(error) or "no answer within the connect timeout") \
                from error


# What says that the server is not there now, rather than set up wrong: refused, reset, no
# route, no answer, its name not resolved.
_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


# As parts of asyncio's "Multiple exceptions" (EADDRNOTAVAIL: ::1 where IPv6 is off).
_NOT_THERE_ERRNOS = _UNREACHABLE_ERRNOS | {
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
    errno.EADDRNOTAVAIL}


def _unreachable(error: OSError) -> bool:
    if isinstance(error, socket.gaierror):
        # The name was known when the server started (its first connection, before serving):
        # not known now is a server gone, as a stopped container's name is.
        return True
    if error.errno is None and str(error).startswith("Multiple exceptions: "):
        # asyncio's answer for a host name of several addresses (localhost: ::1 and
        # 127.0.0.1) that all failed differently; only their texts are kept.
        parts = re.split(r", (?=\[)", str(error).removeprefix("Multiple exceptions: "))
        codes = [re.match(r"\[Errno (\d+)\]", part) for part in parts]
        return all(code is not None and int(code[1]) in _NOT_THERE_ERRNOS for code in codes)
    return (isinstance(error, ConnectionRefusedError | ConnectionResetError
                       | ConnectionAbortedError | TimeoutError)
            or error.errno in _UNREACHABLE_ERRNOS)


class Database:
    """One engine and its session factory; the request or job boundary owns each transaction.

    `role` names the connections on the server (PostgreSQL's application_name), so an operator
    can tell the API's sessions from each worker's.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False,
        limits: Limits | None = None, role: str = "outdial", overflow: int | None = None,
        reads_only: bool = False,
    ) -> None:
        """`pool_size` connections are kept open once made, and `overflow` more (by default
        as many) are made when those are busy and closed when given back. On SQLite, the
        sessions of a `reads_only` database read without a place in the writers' queue and
        cannot write."""
        self.url = normalize_url(url)
        self.is_sqlite = is_sqlite(self.url)
        self.limits = limits or Limits()
        options: dict[str, Any] = {"echo": echo, "pool_timeout": self.limits.pool_timeout}
        overflow = pool_size if overflow is None else overflow
        database_path = make_url(self.url).database or ""
        in_a_file = database_path not in ("", ":memory:") and not database_path.startswith("file:")
        if self.is_sqlite and in_a_file:
            # Connections kept as asked: one made for a burst and closed after it costs a
            # thread, a connect and the pragmas to make again, and under 16 writers SQLAlchemy's
            # default (5 kept) opened ~30 a second. Never fewer in all than that default's 15.
            options.update(pool_size=pool_size,
                           max_overflow=max(overflow, SQLITE_POOL_AT_LEAST - pool_size))
        if not self.is_sqlite:
            options.update(
                pool_size=pool_size, max_overflow=overflow,
                connect_args={
                    "timeout": self.limits.connect_timeout,
                    "server_settings": {
                        **self.limits.postgres_settings(),
                        "application_name": f"{role} {os.getpid()}",
                    },
                },
            )
        self.engine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine, self.limits.lock_timeout, reads_only)
        else:
            _configure_postgres(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Execution options of a session's connection that runs each statement on its own, as
        # a request that only reads with one statement does.
        self.no_transaction: dict[str, Any] = (
            {NO_TRANSACTION: True} if self.is_sqlite else {"isolation_level": "AUTOCOMMIT"}
        )
        # Execution options of a session's connection whose one write is a transaction of its
        # own: on PostgreSQL no BEGIN and COMMIT round trips around it; on SQLite BEGIN
        # IMMEDIATE, the write and COMMIT go to the connection's thread in one trip, in the
        # write's turn among the writers (WriterQueue), and reads hold no lock.
        self.single_write: dict[str, Any] = (
            {EACH_STATEMENT_ALONE: True} if self.is_sqlite else self.no_transaction
        )
        self._probe: AsyncEngine | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits when the block ends and rolls back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """`SELECT 1` on a connection of its own, never queued behind the pool, within
        PROBE_TIMEOUT_SECONDS (TimeoutError past it)."""
        await self._probe_value("SELECT 1")

    async def server_encoding(self) -> str:
        """The character encoding PostgreSQL stores text in (`UTF8` for SQLite), asked as
        ping asks."""
        if self.is_sqlite:
            return "UTF8"
        return str(await self._probe_value("SHOW server_encoding"))

    async def _probe_value(self, query: str) -> Any:
        if self._probe is None:
            # One connection, no BEGIN IMMEDIATE on SQLite: a probe neither waits for a
            # writer nor for a busy pool.
            options: dict[str, Any] = {"pool_size": 1, "max_overflow": 1,
                                       "pool_timeout": PROBE_TIMEOUT_SECONDS}
            if not self.is_sqlite:
                options.update(pool_pre_ping=True, connect_args={
                    "timeout": PROBE_TIMEOUT_SECONDS,
                    "server_settings": {"statement_timeout": str(round(PROBE_TIMEOUT_SECONDS * 1000)),
                                        "application_name": f"outdial health {os.getpid()}"},
                })
            self._probe = create_async_engine(self.url, **options)
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with self._probe.connect() as connection:
                return (await connection.execute(text(query))).scalar()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._probe is not None:
            await self._probe.dispose()
