"""The counts behind the stats (migration 0007) stay equal to a full count of the targets after
imports, API edits and deletes, engine runs, a worker that dies mid-attempt and transactions
that roll back; folding changes into the counts never changes what is read."""

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.dialers import OutcomeKind
from outdial.migrations import alembic_config, upgrade_database
from outdial.models import (
    Campaigncall,
    CountCompaction,
    Customer,
    Outdial,
    OutdialTarget,
    OutdialTargetCountChange,
)
from outdial.outdials.counts import Compactor, compact, shape_of, shapes_query
from tests import databases
from tests.conftest import Api
from tests.engine_support import HangingDialer, make_campaign, make_engine, run_round, scripted_dialer, tel
from tests.integration.test_imports import CSV, new_outdial, upload
from tests.integration.test_stats import direct_count

TARGETS = OutdialTarget.__table__
BUSY, NO_ANSWER, ANSWERED = OutcomeKind.BUSY, OutcomeKind.NO_ANSWER, OutcomeKind.ANSWERED


def _key(shape: Any) -> tuple:
    return (shape.status, shape.answered, shape.destinations, shape.try_counts)


async def counted(database: Database, outdial_id: uuid.UUID) -> Counter:
    """What the counters say, per shape (zero groups left out)."""
    async with database.sessions() as session:
        shapes = [shape_of(r) for r in (await session.execute(shapes_query(outdial_id))).all()]
    return Counter({_key(s): s.targets for s in shapes if s.targets})


async def full_count(database: Database, outdial_id: uuid.UUID) -> Counter:
    """The same figures from every live target row, in Python."""
    async with database.sessions() as session:
        targets = (await session.scalars(select(OutdialTarget).where(
            OutdialTarget.outdial_id == outdial_id, OutdialTarget.tm_delete.is_(None)))).all()
    return Counter(
        (t.status, t.answered, sum(1 << n for n in range(5) if t.destination(n) is not None),
         tuple(t.try_count(n) for n in range(5)))
        for t in targets
    )


async def assert_exact(database: Database, outdial_id: uuid.UUID) -> None:
    assert await counted(database, outdial_id) == await full_count(database, outdial_id)


async def answered_ids(database: Database) -> set[uuid.UUID]:
    async with database.sessions() as session:
        return set(await session.scalars(select(Campaigncall.outdial_target_id).where(
            Campaigncall.result == "success")))


async def test_engine_runs_a_dead_worker_and_rollbacks_keep_the_counts_exact(
    database: Database, clock: FakeClock
) -> None:
    A, B, C = tel("+15550000001"), tel("+15550000002"), tel("+15550000003")
    scenario = await make_campaign(
        database, clock, targets=[[A], [B, C], [None, C], [A, None, B], [C]],
        max_try_counts=(2, 2, 1, 0, 0), try_interval=0, end_handle="continue",
    )
    oid = scenario.outdial_id
    await assert_exact(database, oid)

    # Dials: busy, then no answer, then answered, across slots.
    dialer = scripted_dialer({A["target"]: [BUSY, NO_ANSWER], B["target"]: [BUSY]})
    for _ in range(4):
        await run_round(make_engine(database, dialer, clock))
        clock.advance(1)
        await assert_exact(database, oid)
    async with database.sessions() as session:
        answered = set(await session.scalars(
            select(OutdialTarget.id).where(OutdialTarget.answered.is_(True))))
    assert answered == await answered_ids(database) and answered

    # A worker claims and dies mid-attempt; its lease runs out and another worker reaps it.
    await scenario.add_target(A)
    dead = make_engine(database, HangingDialer(), clock, lease_seconds=5)
    assert await dead.step() == 1
    await assert_exact(database, oid)
    assert (await counted(database, oid))[("progressing", False, 1, (1, 0, 0, 0, 0))] == 1
    clock.advance(10)
    reaper = make_engine(database, scripted_dialer(), clock)
    assert await reaper.reap_if_due() == 1
    await assert_exact(database, oid)
    for task in dead._tasks.values():  # the dead worker's dial, never to be recorded
        task.cancel()

    # Edits, soft deletes, an undelete and a hard delete made straight in the table.
    ids = scenario.target_ids
    async with database.transaction() as session:
        await session.execute(update(TARGETS).where(TARGETS.c.id == ids[0])
                              .values(destination_1=B, status="idle", try_count_0=0))
        await session.execute(update(TARGETS).where(TARGETS.c.id.in_(ids[1:3]))
                              .values(tm_delete=clock.now()))
    await assert_exact(database, oid)
    undialed = await scenario.add_target(B)  # one without calls can be deleted for good
    await assert_exact(database, oid)
    async with database.transaction() as session:
        await session.execute(update(TARGETS).where(TARGETS.c.id == ids[1]).values(tm_delete=None))
        await session.execute(delete(TARGETS).where(TARGETS.c.id == undialed))
    await assert_exact(database, oid)

    # A transaction that changes everything and rolls back leaves no trace in the counts.
    before = await counted(database, oid)
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await session.execute(update(TARGETS).where(TARGETS.c.outdial_id == oid)
                                  .values(status="done", try_count_4=7))
            session.add(scenario.new_target(C))
            await session.flush()
            raise RuntimeError("rolled back")
    assert await counted(database, oid) == before
    await assert_exact(database, oid)


async def test_imports_api_edits_and_deletes_keep_the_stats_equal_to_a_full_count(
    api: Api, app: Any, clock: FakeClock
) -> None:
    outdial = await new_outdial(api)
    body = "name,destination_0,destination_1\n" + "".join(
        f"n{i},+1555{i:07d},{'' if i % 2 else f'p{i}@example.com'}\n" for i in range(300))
    assert (await upload(api, outdial, body, CSV)).json()["rows_imported"] == 300
    oid = uuid.UUID(outdial)
    database = app.state.database
    await assert_exact(database, oid)

    page = (await api.get(f"/v1.0/outdials/{outdial}/targets", params={"page_size": 10})).json()
    ids = [t["id"] for t in page["result"]]
    for target_id in ids[:3]:
        assert (await api.delete(f"/v1.0/outdials/{outdial}/targets/{target_id}")).status_code == 200
    response = await api.put(f"/v1.0/outdials/{outdial}/targets/{ids[5]}", json={
        "name": "edited", "destination_0": None,
        "destination_2": {"type": "email", "target": "x@example.com"}})
    assert response.status_code == 200, response.text
    one = {"destination_0": {"type": "tel", "target": "+15559990000"}}
    assert (await api.post(f"/v1.0/outdials/{outdial}/targets", json=one)).status_code == 200
    await assert_exact(database, oid)

    stats = (await api.get(f"/v1.0/outdials/{outdial}/stats")).json()
    assert (stats["targets"], stats["idle"], stats["dialable_now"]) == (298, 298, 298)

    # Deleting the outdial keeps its figures but nothing is dialable.
    assert (await api.delete(f"/v1.0/outdials/{outdial}")).status_code == 200
    async with database.sessions() as session:
        deleted = await session.get(Outdial, oid)
    assert deleted is not None


async def test_stats_match_a_direct_count_after_dials(database: Database, clock: FakeClock) -> None:
    A, B = tel("+15550000001"), tel("+15550000002")
    scenario = await make_campaign(
        database, clock, targets=[[A], [B], [A, B], [None, B]] * 5,
        max_try_counts=(2, 1, 0, 0, 0), try_interval=60_000, end_handle="continue",
    )
    dialer = scripted_dialer({A["target"]: [BUSY], B["target"]: [NO_ANSWER]})
    await run_round(make_engine(database, dialer, clock))
    clock.advance(30)  # half the interval: some targets wait, the others may be dialed
    from outdial.models import Outplan
    from outdial.outdials.stats import outdial_stats

    async with database.sessions() as session:
        outplan = await session.get(Outplan, scenario.outplan_id)
        outdial = await session.get(Outdial, scenario.outdial_id)
        stats = await outdial_stats(session, outdial, clock.now())

    class App:  # direct_count reads app.state.database
        class state:  # noqa: N801
            pass
    App.state.database = database
    expected = await direct_count(App, scenario.outdial_id, outplan, clock.now())
    assert {k: getattr(stats, k) for k in expected} == expected
    assert stats.waiting_retry > 0 and stats.answered > 0


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("the changes and their compaction exist on PostgreSQL only")


async def test_compaction_in_bounded_batches_never_changes_the_counts(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel(f"+1555000{i:04d}")] for i in range(30)])
    oid = scenario.outdial_id
    for i in range(10):  # many small statements: one change row each
        await scenario.update(OutdialTarget, scenario.target_ids[i], try_count_0=i % 3)
    before = await counted(database, oid)
    async with database.sessions() as session:
        pending = await session.scalar(select(func.count()).select_from(OutdialTargetCountChange))
    assert pending >= 10
    while True:
        async with database.transaction() as session:
            if not await compact(session, most=3):
                break
        assert await counted(database, oid) == before
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutdialTargetCountChange)) == 0
    await assert_exact(database, oid)


async def test_writers_of_one_outdial_never_wait_on_a_counter_row(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    first = await database.engine.connect()
    try:
        await first.begin()
        await first.execute(insert(TARGETS).values(_row(scenario, "+15550000002")))
        # The first writer has not committed; a second one on the same outdial and shape
        # goes through at once (it would time out if both updated one counter row).
        async with database.transaction() as session:
            await session.execute(text("SET LOCAL lock_timeout = '500ms'"))
            await session.execute(insert(TARGETS).values(_row(scenario, "+15550000003")))
        await first.commit()
    finally:
        await first.close()
    await assert_exact(database, scenario.outdial_id)
    assert sum((await counted(database, scenario.outdial_id)).values()) == 3


def _row(scenario: Any, number: str) -> dict[str, Any]:
    now = scenario.clock.now()
    return {"id": uuid.uuid4(), "customer_id": scenario.customer_id, "outdial_id": scenario.outdial_id,
            "name": "", "detail": "", "data": "", "status": "idle", "destination_0": tel(number),
            "tm_create": now, "tm_update": now}


async def test_one_compactor_at_a_time_and_another_takes_over_an_expired_lease(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]] * 3)
    first, second = Compactor(database, clock), Compactor(database, clock)
    assert await first.round() >= 1
    await scenario.update(OutdialTarget, scenario.target_ids[0], try_count_0=1)
    assert await second.round() == 0  # the first still holds the lease
    async with database.sessions() as session:
        assert (await session.get(CountCompaction, "outdial_target_counts")).owner == first.owner
    clock.advance(60)  # the first died: its lease runs out
    assert await second.round() == 2  # the target's old shape -1 and its new one +1
    await assert_exact(database, scenario.outdial_id)


async def test_the_migration_counts_the_targets_already_there(database_url: str, clock: FakeClock) -> None:
    if database_url.startswith("sqlite"):
        url = database_url.replace("outdial.db", "before-0007.db")
    else:
        url = databases.create_postgres_database()
    database = Database(url)
    try:
        def before_counters(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), "0008_webhooks")

        async with database.engine.begin() as connection:
            await connection.run_sync(before_counters)
        now = clock.now()
        customer, outdial = uuid.uuid4(), uuid.uuid4()
        columns = {"customer_id": customer, "outdial_id": outdial, "name": "", "detail": "",
                   "data": "", "tm_create": now}
        async with database.transaction() as session:
            await session.execute(insert(databases.as_of(Customer.__table__, "contact_limits")).values(
                id=customer, name="c", detail="", tm_create=now))
            await session.execute(insert(Outdial.__table__).values(
                id=outdial, customer_id=customer, campaign_id=uuid.UUID(int=0), name="", detail="",
                data="", tm_create=now))
            rows = [{**columns, "id": uuid.uuid4(), "status": status, "try_count_0": tries,
                     "try_count_1": 0, "try_count_2": 0, "try_count_3": 0, "try_count_4": 0,
                     "destination_0": tel("+15550000001"), "destination_1": None,
                     "destination_2": None, "destination_3": None, "destination_4": None,
                     "tm_delete": now if deleted else None}
                    for status, tries, deleted in [("idle", 0, False)] * 5 + [("done", 1, False)] * 3
                    + [("idle", 0, True)] * 2]
            # The table as it was before: without the columns later migrations add.
            before = databases.as_of(TARGETS, "answered", "timezone", "zone_key", "first_slot",
                           "outcome_tries", "address_forms", "listed_until")
            await session.execute(insert(before), rows)
        await upgrade_database(database)
        assert await counted(database, outdial) == Counter({
            ("idle", False, 1, (0, 0, 0, 0, 0)): 5, ("done", False, 1, (1, 0, 0, 0, 0)): 3})
        await assert_exact(database, outdial)
    finally:
        await database.dispose()
        if not database_url.startswith("sqlite"):
            databases.drop_postgres_database(url)


async def test_concurrent_changes_from_many_sessions_stay_exact(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel(f"+1555000{i:04d}")] for i in range(40)])

    async def edit(i: int) -> None:
        await scenario.update(OutdialTarget, scenario.target_ids[i], try_count_0=i % 4,
                              status="done" if i % 5 == 0 else "idle")

    await asyncio.gather(*(edit(i) for i in range(40)))
    await assert_exact(database, scenario.outdial_id)


async def test_a_writer_killed_mid_transaction_leaves_the_counts_exact(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]] * 3)
    victim = await database.engine.connect()
    try:
        await victim.begin()
        await victim.execute(insert(TARGETS).values(_row(scenario, "+15550000002")))
        await victim.execute(update(TARGETS).where(TARGETS.c.outdial_id == scenario.outdial_id)
                             .values(status="done"))
        pid = await victim.scalar(text("SELECT pg_backend_pid()"))
        async with database.transaction() as session:  # the server process dies, as by kill -9
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await victim.invalidate()
    await assert_exact(database, scenario.outdial_id)
    assert sum((await counted(database, scenario.outdial_id)).values()) == 3
