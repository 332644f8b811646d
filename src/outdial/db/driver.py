"""The hot routes' statements, run on the driver's own connection (asyncpg, aiosqlite).

A statement sent through a SQLAlchemy session or Connection costs ~250-450 µs of CPU in the
objects made around it (transaction state, execution context, result, greenlet switches),
against ~30 µs sent by the driver itself. The few statements a hot request makes are Core
statements compiled once per dialect (DriverStatement) and sent on a connection checked out
of the engine's own pool (driver_connection), so the pool's size, its timeout and each
connection's server settings (statement and lock timeouts) bound them as every other request.
Values go in and out through the dialect's own type processors: rows read the same as through
a session. A driver error is raised as SQLAlchemy's DBAPIError, so that busy_reason and the
error envelope see it as they see any other.
"""

import functools
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.util import greenlet_spawn

from outdial.db.engine import Database, WriterQueue, writer_queue


class DriverStatement:
    """A Core statement as its dialect's SQL text, with what turns values into the driver's
    positional parameters and the driver's rows into named rows."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        # (name, constant value or None if the caller gives it, the type's bind processor)
        self._parameters: list[tuple[str, bool, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            given = bind.required  # a bindparam without a value; else a constant (literal())
            self._parameters.append((name, given, None if given else bind.effective_value,
                                     bind.type.dialect_impl(dialect).bind_processor(dialect)))
        # What a SELECT selects, or what an INSERT … RETURNING returns.
        columns = list(statement.selected_columns) if isinstance(statement, Select) else list(
            getattr(statement, "exported_columns", ()))
        self._row = namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]
        self._results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                         for c in columns]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        arguments = []
        for name, given, constant, process in self._parameters:
            value = values[name] if given else constant
            arguments.append(value if process is None else process(value))
        return arguments

    def row(self, raw: Any) -> Any:
        return self._row(*(value if process is None else process(value)
                           for process, value in zip(self._results, raw, strict=True)))


@functools.cache
def compiled(statement: Executable, dialect: Dialect) -> DriverStatement:
    """Compiled once per process and dialect: building and compiling cost more than running."""
    return DriverStatement(statement, dialect)


class DriverConnection:
    """A pooled connection's driver connection, outside any transaction: each statement is its
    own (PostgreSQL autocommit, SQLite's autocommit mode as the engine sets it up)."""

    def __init__(self, raw: Any, dialect: Dialect, is_sqlite: bool) -> None:
        self.raw = raw
        self.dialect = dialect
        self.is_sqlite = is_sqlite

    async def fetch_one(self, statement: Executable, values: Mapping[str, Any]) -> Any:
        """The statement's one row (its columns as attributes), or None; a write with RETURNING
        is done (and, outside a transaction, committed) when this returns."""
        run = compiled(statement, self.dialect)
        arguments = run.arguments(values)
        try:
            if self.is_sqlite:
                async with self.raw.execute(run.sql, arguments) as cursor:
                    raw = await cursor.fetchone()
            else:
                raw = await self.raw.fetchrow(run.sql, *arguments)
        except Exception as error:
            raise _as_dbapi_error(error, run.sql) from error
        return None if raw is None else run.row(raw)

    async def execute(self, statement: Executable, values: Mapping[str, Any]) -> int:
        """Run a write; the rows it changed."""
        run = compiled(statement, self.dialect)
        arguments = run.arguments(values)
        try:
            if self.is_sqlite:
                async with self.raw.execute(run.sql, arguments) as cursor:
                    return int(cursor.rowcount)
            status = await self.raw.execute(run.sql, *arguments)  # e.g. "INSERT 0 1"
        except Exception as error:
            raise _as_dbapi_error(error, run.sql) from error
        return int(status.rpartition(" ")[2])


def _as_dbapi_error(error: Exception, sql: str) -> Exception:
    import asyncpg  # only when PostgreSQL is in use

    if isinstance(error, sqlite3.Error | asyncpg.PostgresError | asyncpg.InterfaceError):
        return exc.DBAPIError(sql, None, error)  # type: ignore[arg-type]
    return error


def refused_row(error: BaseException) -> bool:
    """Whether the database refused a row for a constraint (a unique value taken meanwhile),
    raised through SQLAlchemy or by the driver itself (COPY, executemany on its connection)."""
    if isinstance(error, exc.IntegrityError | sqlite3.IntegrityError):
        return True
    if type(error).__module__.startswith("asyncpg"):
        import asyncpg  # only when PostgreSQL is in use

        return isinstance(error, asyncpg.IntegrityConstraintViolationError)
    return False


@asynccontextmanager
async def driver_connection(database: Database) -> AsyncIterator[DriverConnection]:
    """A connection of the database's pool (waiting at most its pool timeout), given back after
    the block."""
    pool = database.engine.sync_engine.pool
    dbapi_error = database.engine.dialect.loaded_dbapi.Error
    # The pool's waits and events are written for SQLAlchemy's greenlet; the statements are not.
    try:
        fairy = await greenlet_spawn(pool.connect)
    except dbapi_error as error:
        # A new connection the server refused (no slot free, starting up): raised as a
        # session's connect raises it, where busy_reason reads its SQLSTATE.
        raise exc.DBAPIError.instance(None, None, error, dbapi_error) from error
    try:
        yield DriverConnection(fairy.driver_connection, database.engine.dialect, database.is_sqlite)
    except BaseException as error:
        if not database.is_sqlite and fairy.driver_connection.is_closed():
            fairy.invalidate(error if isinstance(error, Exception) else None)
            if isinstance(error, exc.DBAPIError):
                # As a session says a connection lost under a statement: busy_reason reads it
                # as "lost", a 503 to retry, not a bug.
                error.connection_invalidated = True
        raise
    finally:
        await greenlet_spawn(fairy.close)


def _writers(database: Database) -> WriterQueue | None:
    """The writers' queue of a SQLite file, as the engine's own transactions take their turn
    in it (db/engine.py, _configure_sqlite); None on PostgreSQL and in-memory SQLite."""
    path = database.engine.url.database or ""
    if not database.is_sqlite or path in ("", ":memory:") or path.startswith("file:"):
        return None
    return writer_queue(path)


@asynccontextmanager
async def writer_turn(database: Database) -> AsyncIterator[None]:
    """A one-statement write's turn: on SQLite among the file's writers, first come first
    served and at most the lock timeout; nothing to wait for on PostgreSQL."""
    queue = _writers(database)
    if queue is None:
        yield
        return
    await queue.acquire(database.limits.lock_timeout)
    try:
        yield
    finally:
        queue.release()
