"""SQLite connections that make one trip to their thread per statement.

aiosqlite runs each call on the connection's own thread and hands the result back to the event
loop; SQLAlchemy's adapter makes four such calls per statement (open a cursor, execute, fetch the
rows, close it) and one per COMMIT or ROLLBACK. Each trip waits for the loop to come round to it
again, behind every other request's work. A writer waits so while it holds SQLite's only write
lock (and its turn in db.engine.WriterQueue), so under many writers those trips, not SQLite,
were the length of a turn. Here a statement is executed, its first rows read and its cursor
closed in one trip, and a COMMIT or ROLLBACK with no transaction open makes none.
"""

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from outdial.outdials.casefold import fold

if TYPE_CHECKING:
    from outdial.db.engine import WriterQueue

# SQLite's own checkpoint (copying the WAL back into the database file, with an fsync) runs in
# the COMMIT that takes the WAL past 1,000 pages, which for a write alone is inside its
# writer's turn: 5-30 ms on this machine's disk, waited for by every writer queued behind it.
# A write alone commits with it off and, every CHECKPOINT_EVERY writes alone of the process,
# checkpoints after giving its turn up (a PASSIVE checkpoint lets writers go on meanwhile); so
# does a write that commits by itself in SQLite's autocommit mode (a statement sent outside any
# transaction, in a turn its caller holds). Other transactions keep SQLite's automatic one.
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
CHECKPOINT_EVERY = 200  # a write alone of one target is a few pages
_writes_alone = itertools.count(1)

# Rows read in the statement's own trip. A result with more rows (an export streaming a
# million) is read on in batches of at least this many, so it is never held whole in memory.
FIRST_ROWS = 1000


class OneTripCursor:
    """An aiosqlite cursor (the part of its interface SQLAlchemy uses) that executes and reads
    in one trip, and keeps the SQLite cursor open only while rows are left to read."""

    def __init__(self, connection: "OneTripConnection") -> None:
        self._connection = connection
        self._cursor: sqlite3.Cursor | None = None  # open only while rows are left
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> "OneTripCursor":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while rows := await self.fetchmany(FIRST_ROWS):
            for row in rows:
                yield row

    async def execute(self, sql: str, parameters: Any = ()) -> "OneTripCursor":
        return await self._run(sqlite3.Cursor.execute, sql, parameters)

    async def executemany(self, sql: str, parameters: Any) -> "OneTripCursor":
        return await self._run(sqlite3.Cursor.executemany, sql, parameters)

    async def _run(self, method: Any, sql: str, parameters: Any,
                   own_turn: bool = True) -> "OneTripCursor":
        """`own_turn`: a write may take a turn of its own (writes_alone); not for a statement
        whose caller holds the turn around it (OneTripConnection.execute)."""
        previous, self._cursor, self._rows = self._cursor, None, []
        connection = self._connection
        alone = own_turn and connection.writes_alone and not _reads(sql)
        # Outside any transaction, a change commits by itself as it ends (SQLite's autocommit).
        commits_by_itself = not alone and _changes(sql) and connection._idle()
        # A write's rows (RETURNING) are all read before it commits, in its trip: its COMMIT,
        # and its turn, are not left waiting for a later one.
        first_rows = None if alone or commits_by_itself else FIRST_ROWS

        def run() -> tuple[Any, ...]:  # on the connection's thread
            if previous is not None:
                previous.close()
            cursor = connection.sqlite.cursor()
            try:
                method(cursor, sql, parameters)
                if not cursor.description:
                    rows = []
                else:
                    rows = cursor.fetchall() if first_rows is None else cursor.fetchmany(first_rows)
            except BaseException:
                cursor.close()
                raise
            state = (cursor.description, cursor.rowcount, cursor.lastrowid, rows)
            if first_rows is None or len(rows) < first_rows:
                cursor.close()
                return (*state, None)
            return (*state, cursor)

        if alone:
            state = await connection.write_alone(connection.alone(run))
        elif commits_by_itself:
            state = await connection.write_alone(connection.without_checkpoint(run), turn=False)
        else:
            state = await connection._execute(run)
        self.description, self.rowcount, self.lastrowid, self._rows, self._cursor = state
        return self

    async def _more(self, wanted: int) -> None:
        """Read at least `wanted` more rows if any are left, in one trip."""
        cursor = self._cursor
        if cursor is None:
            return

        def read() -> list[Any]:
            rows = cursor.fetchall() if wanted < 0 else cursor.fetchmany(max(wanted, FIRST_ROWS))
            if wanted < 0 or len(rows) < max(wanted, FIRST_ROWS):
                cursor.close()
            return rows

        rows = await self._connection._execute(read)
        if wanted < 0 or len(rows) < max(wanted, FIRST_ROWS):
            self._cursor = None
        self._rows.extend(rows)

    async def fetchone(self) -> Any:
        if not self._rows:
            await self._more(1)
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        size = size or self.arraysize
        if len(self._rows) < size:
            await self._more(size - len(self._rows))
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> Sequence[Any]:
        await self._more(-1)
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []
        if self._cursor is not None:
            cursor, self._cursor = self._cursor, None
            await self._connection._execute(cursor.close)


def _reads(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


def _changes(sql: str) -> bool:
    """An INSERT, UPDATE, DELETE or REPLACE (not BEGIN, PRAGMA, SAVEPOINT and the like)."""
    return sql.lstrip()[:7].upper().startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))


class OneTripConnection(aiosqlite.Connection):
    """aiosqlite's connection with OneTripCursor cursors.

    While `writes_alone` is set (Database.single_write, set at each begin by
    engine._configure_sqlite), each statement is a transaction of its own: a SELECT runs in
    SQLite's autocommit mode, holding no lock; any other statement waits for its turn in
    `writers`, then runs BEGIN IMMEDIATE, the statement and COMMIT in one trip, and the turn is
    given up as soon as that trip is back. The turn is held for one trip, not for three or more.
    """

    writes_alone = False
    writers: "WriterQueue | None" = None  # None: a database no other connection writes to
    lock_timeout = 0.0

    @property
    def sqlite(self) -> sqlite3.Connection:
        return self._conn

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    def execute(self, sql: str, parameters: Any = None) -> "Executed":  # type: ignore[override]
        """aiosqlite's own `execute` (awaited, or `async with … as cursor`), for statements sent
        on the driver connection outside any session: one trip too, and never a turn of its
        own — the caller holds the writers' turn around a write (WriterQueue)."""
        cursor = OneTripCursor(self)
        return Executed(cursor._run(sqlite3.Cursor.execute, sql, parameters or (), own_turn=False),
                        cursor)

    def _idle(self) -> bool:
        # Read on the loop's thread while the connection's thread is idle: SQLAlchemy runs one
        # call at a time per connection (and the driver opens it with check_same_thread off).
        return self._connection is not None and not self._connection.in_transaction

    def alone(self, statement: Callable[[], Any]) -> Callable[[], Any]:
        """`statement` between BEGIN IMMEDIATE and COMMIT (ROLLBACK if it fails)."""
        def transaction() -> Any:  # on the connection's thread
            sqlite = self.sqlite
            sqlite.execute("BEGIN IMMEDIATE")
            try:
                result = statement()
            except BaseException:
                sqlite.rollback()
                raise
            sqlite.commit()
            return result
        return self.without_checkpoint(transaction)

    def without_checkpoint(self, commits: Callable[[], Any]) -> Callable[[], Any]:
        """`commits` with SQLite's automatic checkpoint off (see CHECKPOINT_EVERY)."""
        def run() -> Any:  # on the connection's thread
            sqlite = self.sqlite
            sqlite.execute("PRAGMA wal_autocheckpoint=0")
            try:
                return commits()
            finally:
                sqlite.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        return run

    def _checkpoint_now_and_then(self) -> None:
        """On the connection's thread, after a write alone (or one that commits by itself) has
        sent its result back: its turn is given up meanwhile."""
        if next(_writes_alone) % CHECKPOINT_EVERY == 0:
            try:
                self.sqlite.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy: the next one, or SQLite's automatic one, does it

    async def write_alone(self, transaction: Callable[[], Any], turn: bool = True) -> Any:
        """Run `transaction` on the connection's thread in its turn among the writers; the turn
        is given up by the very callback that brings the result back to the loop, not one loop
        iteration later when the waiting task resumes. `turn=False`: the caller holds it."""
        writers = self.writers if turn else None
        if writers is not None:
            await writers.acquire(self.lock_timeout)
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        def back(result: Any, error: BaseException | None) -> None:  # on the loop
            if writers is not None:
                writers.release()
            if answer.cancelled():
                return
            if error is None:
                answer.set_result(result)
            else:
                answer.set_exception(error)

        def trip() -> None:  # on the connection's thread
            try:
                result = transaction()
            except BaseException as error:
                loop.call_soon_threadsafe(back, None, error)
            else:
                loop.call_soon_threadsafe(back, result, None)
                self._checkpoint_now_and_then()

        try:
            if not self._running or self._connection is None:
                raise ValueError("Connection closed")
            # aiosqlite's queue of calls for the connection's thread; no future of its own:
            # `trip` reports back itself.
            self._tx.put_nowait((None, trip))
        except BaseException:
            if writers is not None:
                writers.release()
            raise
        return await answer

    async def commit(self) -> None:
        if not self._idle():
            await super().commit()

    async def rollback(self) -> None:
        if not self._idle():
            await super().rollback()


class Executed:
    """What OneTripConnection.execute gives: awaited, its cursor; with `async with`, its cursor,
    closed after the block (rows left unread, if any, are dropped then)."""

    def __init__(self, running: Coroutine[Any, Any, OneTripCursor], cursor: OneTripCursor) -> None:
        self._running = running
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, OneTripCursor]:
        return self._running.__await__()

    async def __aenter__(self) -> OneTripCursor:
        return await self._running

    async def __aexit__(self, *_: object) -> None:
        await self._cursor.close()


def unicode_lower(value: Any) -> Any:
    """SQLite's lower() as the one case folding of outdials.casefold, which Python and
    PostgreSQL (outdial_casefold) apply too. SQLite's own lower() folds ASCII letters only: the destinations'
    normalised values (the do-not-call entries' and contact limits' keys,
    strategy.reasons.value_sql, in SQL and in the indexes on them) must be the values Python
    gives the entries, or a listed `jörg@example.com` would not match a target's
    `JÖRG@example.com`. Every connection registers it (an index computed with it must be read
    with it); migrations 0018 and 0019 rebuilt what earlier versions had computed."""
    return fold(value) if isinstance(value, str) else value


def _opened(database: str, **kwargs: Any) -> sqlite3.Connection:
    connection = sqlite3.connect(database, **kwargs)
    connection.create_function("lower", 1, unicode_lower, deterministic=True)
    return connection


def connect(database: str, **kwargs: Any) -> OneTripConnection:
    """What aiosqlite.connect does, with OneTripConnection (see engine._configure_sqlite)."""
    connection = OneTripConnection(lambda: _opened(database, **kwargs), 64)
    connection._thread.daemon = True  # as SQLAlchemy's adapter sets it: exit never waits for it
    return connection
