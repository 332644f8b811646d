"""The outbox itself: written with the transaction, read in a safe order, tenant by tenant,
pruned in batches."""

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from outdial.db import Database
from outdial.events.outbox import EVENTS, emit, emit_many, prune_events, read_events
from outdial.models import Customer

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


async def _customer(database: Database) -> uuid.UUID:
    customer_id = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Customer(id=customer_id, name="c", tm_create=T0))
    return customer_id


async def _ids(database: Database, customer_id: uuid.UUID, after: int = 0, **kw: object) -> list[int]:
    async with database.transaction() as session:
        return [r.id for r in await read_events(session, customer_id, after, **kw)]


async def test_events_commit_with_their_transaction_and_never_without(database: Database) -> None:
    customer_id = await _customer(database)
    async with database.transaction() as session:
        await emit(session, "campaign_updated", customer_id, {"n": 1})
        # Not committed yet: another reader does not see it.
        assert await _ids_elsewhere(database, customer_id) == []
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await emit(session, "campaign_updated", customer_id, {"n": 2})
            raise RuntimeError("the change fails")
    async with database.transaction() as session:
        rows = await read_events(session, customer_id, 0)
    assert [r.data for r in rows] == [{"n": 1}]
    assert rows[0].type == "campaign_updated"


async def _ids_elsewhere(database: Database, customer_id: uuid.UUID) -> list[int]:
    if database.is_sqlite:  # one writer: a reader would wait for the open transaction
        return []
    other = Database(database.url)
    try:
        return await _ids(other, customer_id)
    finally:
        await other.dispose()


async def test_unknown_type_is_refused(database: Database) -> None:
    customer_id = await _customer(database)
    async with database.transaction() as session:
        with pytest.raises(ValueError):
            await emit(session, "nothing_happened", customer_id, {})


async def test_read_after_types_limit_and_tenancy(database: Database) -> None:
    mine, theirs = await _customer(database), await _customer(database)
    async with database.transaction() as session:
        await emit_many(session, [
            ("campaign_updated", mine, {"n": 1}),
            ("import_updated", theirs, {"n": 2}),
            ("import_updated", mine, {"n": 3}),
            ("campaign_updated", mine, {"n": 4}),
        ])
    all_mine = await _ids(database, mine)
    assert len(all_mine) == 3 and all_mine == sorted(all_mine)
    assert await _ids(database, mine, after=all_mine[0]) == all_mine[1:]
    assert await _ids(database, mine, types=["import_updated"]) == [all_mine[1]]
    assert await _ids(database, mine, limit=2) == all_mine[:2]
    async with database.transaction() as session:
        assert [r.data for r in await read_events(session, theirs, 0)] == [{"n": 2}]


async def test_prune_deletes_old_events_in_batches(database: Database) -> None:
    customer_id = await _customer(database)
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", customer_id, {})] * 5, now=T0)
        await emit(session, "campaign_updated", customer_id, {"new": True},
                   now=T0 + dt.timedelta(days=8))
    cutoff = T0 + dt.timedelta(days=1)
    async with database.transaction() as session:
        assert await prune_events(session, cutoff, most=3) == 3
    async with database.transaction() as session:
        assert await prune_events(session, cutoff, most=3) == 2
    async with database.transaction() as session:
        assert await prune_events(session, cutoff, most=3) == 0
        assert await session.scalar(select(func.count()).select_from(EVENTS)) == 1


async def test_concurrent_pruners_never_conflict(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite has one writer: pruners take turns")
    customer_id = await _customer(database)
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", customer_id, {})] * 300, now=T0)

    async def prune() -> int:
        total = 0
        while True:
            async with database.transaction() as session:
                n = await prune_events(session, T0 + dt.timedelta(days=1), most=20)
            total += n
            if n == 0:
                return total

    counts = await asyncio.gather(*(prune() for _ in range(4)))
    assert sum(counts) == 300


async def test_a_smaller_id_committing_later_is_never_passed(database: Database) -> None:
    """Two transactions commit out of id order: the reader holds the larger id back until the
    smaller one has committed, so a reader resuming after what it saw loses nothing."""
    if database.is_sqlite:
        pytest.skip("SQLite has one writer: ids commit in order")
    customer_id = await _customer(database)
    older, newer = database.sessions(), database.sessions()
    try:
        # `newer` writes first, so its transaction id is the older one: a rule based on the
        # snapshot's xmin alone would pass its event while `older`'s smaller id is pending.
        await newer.begin()
        await newer.execute(select(func.pg_current_xact_id()))
        await older.begin()
        await older.execute(select(func.pg_current_xact_id()))
        await emit(older, "campaign_updated", customer_id, {"who": "older"})
        await emit(newer, "campaign_updated", customer_id, {"who": "newer"})
        await newer.commit()

        seen = await _ids(database, customer_id)
        assert seen == []  # the committed larger id waits for the smaller one
        await older.commit()
        seen = await _ids(database, customer_id)
        async with database.transaction() as session:
            rows = await read_events(session, customer_id, 0)
        assert [r.data["who"] for r in rows] == ["older", "newer"]
        assert seen == sorted(seen) and len(seen) == 2
    finally:
        await older.close()
        await newer.close()


async def test_a_rolled_back_smaller_id_releases_the_reader(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite has one writer")
    customer_id = await _customer(database)
    first, second = database.sessions(), database.sessions()
    try:
        await first.begin()
        await emit(first, "campaign_updated", customer_id, {"who": "first"})
        await second.begin()
        await emit(second, "campaign_updated", customer_id, {"who": "second"})
        await second.commit()
        assert await _ids(database, customer_id) == []
        await first.rollback()
        async with database.transaction() as session:
            rows = await read_events(session, customer_id, 0)
        assert [r.data["who"] for r in rows] == ["second"]
    finally:
        await first.close()
        await second.close()


async def test_readers_under_concurrent_writers_never_skip(database: Database) -> None:
    """Many writers commit in random order while a reader follows by `after`: it sees every
    committed event exactly once, ids ascending."""
    if database.is_sqlite:
        pytest.skip("SQLite has one writer")
    customer_id = await _customer(database)
    writers, per_writer = 6, 15
    done = asyncio.Event()

    async def write(n: int) -> None:
        for i in range(per_writer):
            async with database.transaction() as session:
                await emit(session, "campaign_updated", customer_id, {"w": n, "i": i})
                await asyncio.sleep(0.001 * ((n * 7 + i * 3) % 5))  # commit out of id order

    seen: list[int] = []

    async def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            async with database.transaction() as session:
                rows = await read_events(session, customer_id, after, limit=7)
            seen.extend(r.id for r in rows)
            if rows:
                after = rows[-1].id
            elif finished:
                return
            await asyncio.sleep(0)

    reader = asyncio.create_task(follow())
    await asyncio.gather(*(write(n) for n in range(writers)))
    done.set()
    await reader
    assert seen == sorted(set(seen))
    assert len(seen) == writers * per_writer


async def test_a_read_goes_in_id_order_and_leaves_later_transactions_be(
    database: Database,
) -> None:
    customer_id = await _customer(database)
    other = await _customer(database)
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", owner, {"n": n})
                                  for n in range(30) for owner in (customer_id, other)])
    everything = await _ids(database, customer_id, limit=100)
    assert len(everything) == 30
    after = everything[9]
    assert await _ids(database, customer_id, after, limit=7) == (
        everything[10:17])
    if database.is_sqlite:
        return  # no planner settings: the read is the same
    async with database.transaction() as session:
        await read_events(session, customer_id, after, limit=7)
        # For the rest of its own transaction only: no bitmap scan to read a whole backlog.
        assert await session.scalar(select(func.current_setting("enable_bitmapscan"))) == "off"
    async with database.transaction() as session:
        assert await session.scalar(select(func.current_setting("enable_bitmapscan"))) == "on"
