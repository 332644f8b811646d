"""The transactional outbox: events written with their change, read in a safe id order.

`emit` adds event rows to the caller's transaction: they commit with the change they describe
or not at all. `read_events` returns a customer's events after an id, in id order, but never
an id while a smaller one could still commit — a reader that resumes after the last id it saw
(the API's `after`, the stream's Last-Event-ID, a webhook's cursor) then never skips one.

SQLite has one writer at a time (every transaction begins IMMEDIATE, see db/engine.py), so its
ids commit in order and every visible event is safe.

PostgreSQL takes ids from a sequence when a row is inserted, long before its transaction
commits: transaction A takes id 10, B takes 11 and commits, and a reader that passed 11 would
never see 10. (Holding back the events of transactions newer than the snapshot's xmin does not
close that gap: B's transaction id may be older than A's.) The rule used here:

- an emitting transaction, before it takes its first id, reads the sequence's last value L and
  takes a shared advisory lock keyed L (in a key space of its own), held until it ends; every
  id it takes is then >= L;
- a reader reads the sequence's last value S, then the smallest such key M held by anyone
  (pg_locks), then the events. Every transaction still running when the locks were read holds
  ids >= M, or took its lock after S was read and so holds ids > S: every id <= min(S, M - 1)
  belongs to a transaction that has ended, and the events statement, whose snapshot is taken
  after that, sees it if it committed.

Only transactions that emit hold events back, and only while they run (engine transactions
last milliseconds).
"""

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Row, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from outdial.clock import utcnow
from outdial.events.catalogue import EVENT_TYPES
from outdial.models.events import Event
from outdial.timestamps import format_timestamp

EVENTS = Event.__table__
SEQUENCE = "events_id_seq"
# Advisory lock keys of emitting transactions: KEY_SPACE + the sequence value; ids stay below
# 2**48, so the keys never leave the space (nor meet the other advisory keys of the project).
KEY_SPACE = 0x0D1A << 48
_KEY_SPACE_HIGH = KEY_SPACE >> 32  # pg_locks shows a bigint key as classid (high) and objid (low)
_ANNOUNCED = "outdial.events.announced"  # session.info: the transaction that holds its lock

# Emission can be switched off for one process (bench/events_bench.py compares both runs).
_enabled: ContextVar[bool] = ContextVar("outdial_events_enabled", default=True)

# Where events are written: the caller's session, or its connection (an import's last write).
Executor = AsyncSession | AsyncConnection
NewEvent = tuple[str, uuid.UUID, dict[str, Any]]  # (type, customer_id, data)


@contextmanager
def emission_disabled() -> Iterator[None]:
    """Within the block (and tasks started in it), nothing is written to the outbox."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


async def emit(
    session: Executor, type: str, customer_id: uuid.UUID, data: dict[str, Any],
    *, now: dt.datetime | None = None,
) -> None:
    """Add one event to the caller's transaction (no commit)."""
    await emit_many(session, [(type, customer_id, data)], now=now)


async def emit_many(
    session: Executor, events: Iterable[NewEvent], *, now: dt.datetime | None = None
) -> None:
    """Add events to the caller's transaction in one statement (the engine's batches)."""
    if not _enabled.get():
        return
    stamp = now or utcnow()
    rows = []
    for type_, customer_id, data in events:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"{type_!r} is not an event type of the catalogue")
        rows.append({"customer_id": customer_id, "type": type_, "tm_create": stamp, "data": data})
    if not rows:
        return
    await _announce(session)
    await session.execute(insert(EVENTS), rows)


async def _announce(session: Executor) -> None:
    """PostgreSQL: hold the lock that keeps readers below this transaction's ids (see above)."""
    if _dialect(session) != "postgresql":
        return
    nested = session.in_nested_transaction()
    transaction = session.get_transaction()
    if not nested and session.info.get(_ANNOUNCED) is transaction:
        return
    await session.execute(
        text(f"SELECT pg_advisory_xact_lock_shared(:space + last_value) FROM {SEQUENCE}"),
        {"space": KEY_SPACE},
    )
    # A lock taken inside a savepoint goes if the savepoint is rolled back: take it again then.
    if not nested:
        session.info[_ANNOUNCED] = transaction


def _dialect(session: Executor) -> str:
    if isinstance(session, AsyncConnection):
        return session.dialect.name
    return session.bind.dialect.name


# Said within the horizon's statement (no round trip of its own), for the rest of its
# transaction: no bitmap scans. The events of a burst (a campaign at full speed makes thousands
# a second) are not in the table's statistics yet, so the planner takes a customer's events past
# a cursor for a handful and reads them with a bitmap scan and a sort: every one of them past
# the cursor, the whole backlog, to return the first `limit`. Along the (customer_id, id)
# index, in order, the read stops at the limit (1,000 of 15,000: 8 ms → 0.6). Every reader
# reads this way: a deliverer on a backlog, a page of GET /v1.0/events, the live stream.
_HORIZON = text(
    "SELECT set_config('enable_bitmapscan', 'off', true), "
    "s.taken, (SELECT min(((classid::bigint << 32) | objid::bigint) - :space)"
    " FROM pg_locks WHERE s.taken IS NOT NULL"
    " AND locktype = 'advisory' AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint >= :high AND classid::bigint < :high + 65536)"
    " FROM (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS taken"
    f" FROM {SEQUENCE}) AS s"
)


async def safe_horizon(session: AsyncSession) -> int | None:
    """The greatest id below which every transaction has ended; None: no limit (SQLite). The
    transaction's next reads go along indexes in order (see above).

    One statement that reads the sequence, then the locks: the locks are read by a subquery
    that depends on the sequence's row, so it runs after that row was read. The events
    statement that follows takes its snapshot after both."""
    if _dialect(session) != "postgresql":
        return None
    taken, pending = (await session.execute(
        _HORIZON, {"space": KEY_SPACE, "high": _KEY_SPACE_HIGH},
    )).one()[-2:]
    return taken if pending is None else min(taken, pending - 1)


async def read_events(
    session: AsyncSession,
    customer_id: uuid.UUID,
    after: int,
    types: Sequence[str] | None = None,
    limit: int = 100,
    columns: Sequence[Any] = (EVENTS,),
) -> list[Row[Any]]:
    """A customer's events with ids above `after`, oldest first, only those safe to pass;
    `columns`: what to read of each (the whole event unless told)."""
    horizon = await safe_horizon(session)
    query = (
        select(*columns)
        .where(EVENTS.c.customer_id == customer_id, EVENTS.c.id > after)
        .order_by(EVENTS.c.id)
        .limit(limit)
    )
    if horizon is not None:
        query = query.where(EVENTS.c.id <= horizon)
    if types:
        query = query.where(EVENTS.c.type.in_(list(types)))
    return list((await session.execute(query)).all())


def event_json(row: Any) -> dict[str, Any]:
    """An event on the wire: {id, type, customer_id, tm_create, data}."""
    return {
        "id": row.id,
        "type": row.type,
        "customer_id": str(row.customer_id),
        "tm_create": format_timestamp(row.tm_create),
        "data": row.data,
    }


async def prune_events(session: AsyncSession, before: dt.datetime, most: int) -> int:
    """Delete up to `most` of the oldest events created before `before`; returns how many.

    Any number of workers may prune at once: rows another pruner holds are skipped, never
    waited for, and deleting what is already gone changes nothing."""
    doomed = (
        select(EVENTS.c.id)
        .where(EVENTS.c.tm_create < before)
        .order_by(EVENTS.c.id)
        .limit(most)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(EVENTS).where(EVENTS.c.id.in_(doomed.scalar_subquery())))
    return result.rowcount or 0
