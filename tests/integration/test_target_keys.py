"""outdial_targets' keys to its outdial and customer hold on both databases; on PostgreSQL they
are checked per statement by triggers (migration 0007), with a foreign key's locking."""

import uuid

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.models import Customer, Outdial, OutdialTarget
from tests.engine_support import make_campaign, tel

TARGETS = OutdialTarget.__table__


def row(customer_id: uuid.UUID, outdial_id: uuid.UUID, clock: FakeClock) -> dict:
    now = clock.now()
    return {"id": uuid.uuid4(), "customer_id": customer_id, "outdial_id": outdial_id, "name": "",
            "detail": "", "data": "", "status": "idle", "destination_0": tel("+15550000001"),
            "tm_create": now, "tm_update": now}


async def test_a_target_of_no_outdial_is_refused(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock)
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(insert(TARGETS).values(row(scenario.customer_id, uuid.uuid4(), clock)))
    # Moving a target to no outdial is refused as well.
    target = await scenario.add_target(tel("+15550000002"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(update(TARGETS).where(TARGETS.c.id == target)
                                  .values(outdial_id=uuid.uuid4()))


async def test_an_outdial_with_targets_is_not_deleted(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock)
    await scenario.add_target(tel("+15550000002"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(delete(Outdial).where(Outdial.id == scenario.outdial_id))


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("the keys are checked by triggers on PostgreSQL only")


async def test_a_target_must_belong_to_its_outdials_customer(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock)
    other = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Customer(id=other, name="other", detail="", tm_create=clock.now()))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(insert(TARGETS).values(row(other, scenario.outdial_id, clock)))
    with pytest.raises(IntegrityError):  # nor can the outdial move to another customer
        await scenario.add_target(tel("+15550000003"))
        async with database.transaction() as session:
            await session.execute(update(Outdial).where(Outdial.id == scenario.outdial_id)
                                  .values(customer_id=other))


async def test_a_target_being_written_keeps_its_outdial_from_being_deleted(
    database: Database, clock: FakeClock, postgres_only: None
) -> None:
    scenario = await make_campaign(database, clock)
    writer = await database.engine.connect()
    try:
        await writer.begin()
        await writer.execute(insert(TARGETS).values(row(scenario.customer_id, scenario.outdial_id, clock)))
        # Uncommitted, the new target is invisible to the deleter, but the outdial's row is
        # locked as a foreign key locks it: the delete waits (here: until its lock timeout).
        with pytest.raises(DBAPIError) as refused:
            async with database.transaction() as session:
                await session.execute(text("SET LOCAL lock_timeout = '300ms'"))
                await session.execute(text("DELETE FROM campaigns"))
                await session.execute(delete(Outdial).where(Outdial.id == scenario.outdial_id))
        assert getattr(refused.value.orig, "sqlstate", None) == "55P03"
        await writer.commit()
    finally:
        await writer.close()
