"""The stored do-not-call fact of a target (listed_until, kept by the database, migration 0012):
current after every write of an entry or a target, also when both are written at once, and the
counts per waiting reason that read it equal to every target's reason."""

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select, text, update

from outdial.models import Contact, Customer, DncEntry, OutdialTarget
from outdial.strategy import dnc, reasons, reasons_counts
from tests.engine_support import database  # noqa: F401 - fixture
from tests.engine_support import make_campaign, tel
from tests.integration.test_dnc import TRICKY_CASES, add_entry, new_list
from tests.integration.test_reason_counts import said_and_counted

FOREVER = dt.datetime(9999, 12, 31)


async def listed_until(scenario, target_id) -> dt.datetime | None:
    async with scenario.database.transaction() as session:
        value = await session.scalar(
            select(OutdialTarget.listed_until).where(OutdialTarget.id == target_id))
    return reasons.as_datetime(value)


async def test_listed_until_follows_the_entries(database, clock) -> None:
    now = clock.now()
    scenario = await make_campaign(database, clock, targets=[
        [tel("+12125550101")], [tel("+12125550102"), tel("+12125550103")], [tel("+12125550104")]])
    first, second, third = scenario.target_ids
    list_id = await new_list(scenario)
    assert [await listed_until(scenario, t) for t in scenario.target_ids] == [None] * 3

    await add_entry(scenario, list_id, "+12125550101")  # never expires
    await add_entry(scenario, list_id, "+12125550103", expire=now + dt.timedelta(days=2))
    assert await listed_until(scenario, first) == FOREVER
    assert await listed_until(scenario, second) == now + dt.timedelta(days=2)  # its 2nd slot
    assert await listed_until(scenario, third) is None

    # The same value on another list: the later of the two.
    other = await new_list(scenario)
    await add_entry(scenario, other, "+12125550103", expire=now + dt.timedelta(days=5))
    assert await listed_until(scenario, second) == now + dt.timedelta(days=5)
    async with database.transaction() as session:  # an expiry moved
        await session.execute(update(DncEntry).where(DncEntry.dnclist_id == other)
                              .values(tm_expire=now + dt.timedelta(days=1)))
    assert await listed_until(scenario, second) == now + dt.timedelta(days=2)
    async with database.transaction() as session:  # entries deleted
        await session.execute(DncEntry.__table__.delete().where(
            DncEntry.value == "+12125550103"))
    assert await listed_until(scenario, second) is None
    assert await listed_until(scenario, first) == FOREVER

    # A target written with a listed value, and one whose destination changes.
    new = await scenario.add_target(tel("+12125550101"))
    assert await listed_until(scenario, new) == FOREVER
    async with database.transaction() as session:
        await session.execute(update(OutdialTarget).where(OutdialTarget.id == third)
                              .values(destination_0=tel("+12125550101")))
        await session.execute(update(OutdialTarget).where(OutdialTarget.id == first)
                              .values(destination_0=tel("+12125550199")))
    assert await listed_until(scenario, third) == FOREVER
    assert await listed_until(scenario, first) is None


async def test_another_customer_s_entry_does_not_count(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+12125550101")]])
    other = await make_campaign(database, clock, targets=[])
    list_id = await new_list(other)
    await add_entry(other, list_id, "+12125550101")
    assert await listed_until(scenario, scenario.target_ids[0]) is None


async def test_the_indexed_value_is_the_normalised_value(database, clock) -> None:
    addresses = [tel("+12125550101"), {"type": "email", "target": "Ann@Example.com"},
                 {"type": "sip", "target": "sips:Bob@Host.example"},
                 {"type": "sip", "target": "carol@host.example"},
                 {"type": "sip", "target": "SIP:dave@host.example:5060"},
                 {"type": "sip", "target": "sip:ΟΔΥΣΣΕΑΣ@İstanbul.example"},
                 *({"type": "email", "target": t} for t in TRICKY_CASES)]
    scenario = await make_campaign(database, clock, targets=[[a] for a in addresses])
    column = reasons.TARGETS.c.destination_0
    async with database.transaction() as session:
        rows = (await session.execute(select(
            column, reasons.stored_value(column), dnc.value_sql(column))
            .where(reasons.TARGETS.c.outdial_id == scenario.outdial_id))).all()
    assert len(rows) == len(addresses)
    for destination, stored, computed in rows:
        assert stored == computed == dnc.normalised(destination)


@pytest.mark.parametrize("entry_first", [True, False])
async def test_an_entry_and_a_target_written_at_once(database, clock, entry_first) -> None:
    """Two writers at once, neither committed when the other writes: the target still ends
    up listed (on PostgreSQL the second waits for the first; SQLite has one writer)."""
    if database.is_sqlite:
        pytest.skip("SQLite has one writer at a time")
    scenario = await make_campaign(database, clock, targets=[])
    list_id = await new_list(scenario)
    target = scenario.new_target(tel("+12125550101"))
    entry = DncEntry(id=uuid.uuid4(), customer_id=scenario.customer_id, dnclist_id=list_id,
                     type="tel", value="+12125550101", tm_expire=None, tm_create=clock.now())
    first_wrote = asyncio.Event()

    async def second_is_waiting() -> None:
        """Until the second writer waits for the first one's lock (polled, bounded)."""
        for _ in range(500):
            async with database.transaction() as session:
                if await session.scalar(text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted")):
                    return
            await asyncio.sleep(0.01)
        raise AssertionError("the second writer never waited for the first")

    async def write(row, first: bool) -> None:
        async with database.transaction() as session:
            if not first:
                await first_wrote.wait()
            session.add(row)
            await session.flush()
            if first:
                first_wrote.set()
                await second_is_waiting()  # commits only once the other is under way

    rows = (entry, target) if entry_first else (target, entry)
    await asyncio.gather(write(rows[0], True), write(rows[1], False))
    assert await listed_until(scenario, target.id) == FOREVER


async def test_counts_with_lists_ask_only_the_listed_targets(database, clock) -> None:
    now = clock.now()
    numbers = [f"+1212555{n:04d}" for n in range(8)]
    scenario = await make_campaign(database, clock, targets=[[tel(n)] for n in numbers],
                                   max_try_counts=(1, 0, 0, 0, 0))
    list_id = await new_list(scenario)
    await add_entry(scenario, list_id, numbers[0])
    await add_entry(scenario, list_id, numbers[1], expire=now - dt.timedelta(seconds=1))
    await add_entry(scenario, list_id, numbers[2], expire=now + dt.timedelta(hours=1))
    # Listed on a list of the customer the campaign does not honour: asked, not held.
    await add_entry(scenario, await new_list(scenario, named=False), numbers[3])
    await scenario.update(Customer, scenario.customer_id,
                          contact_limits=[{"max": 1, "window": 3600 * 1000}])
    per_target, counted, s = await said_and_counted(scenario, now)
    assert counted == per_target
    assert counted["dnc"] == 2 and counted["dialable"] == 6
    async with database.transaction() as session:
        asked = set(await session.scalars(select(reasons.TARGETS.c.id).where(
            reasons.TARGETS.c.outdial_id == scenario.outdial_id, reasons_counts.asked(s))))
    assert asked == {scenario.target_ids[n] for n in (0, 2, 3)}


async def test_counts_read_every_kind_of_address_as_the_rules_do(database, clock) -> None:
    """The reasons the counts give equal each target's own, for every kind of address and form
    (upper case, sips:, a bare SIP user, a port), listed or capped, on the first slot or on
    the one a target moved on to."""
    now = clock.now()
    addresses = [tel("+12125550101"), {"type": "email", "target": "Ann@Example.com"},
                 {"type": "sip", "target": "sips:Bob@Host.example"},
                 {"type": "sip", "target": "carol@host.example"},
                 {"type": "sip", "target": "SIP:dave@host.example:5060"}]
    fresh = tel("+12125550199")
    targets = [[address, fresh] for address in addresses] + [[fresh, address] for address in addresses]
    scenario = await make_campaign(database, clock, targets=targets,
                                   max_try_counts=(1, 1, 0, 0, 0))
    list_id = await new_list(scenario)
    for address in addresses[:3]:
        await add_entry(scenario, list_id, address["target"])
    await scenario.update(Customer, scenario.customer_id,
                          contact_limits=[{"max": 1, "window": 3600 * 1000}])
    async with database.transaction() as session:
        for address in addresses[3:]:
            session.add(Contact(id=uuid.uuid4(), customer_id=scenario.customer_id,
                                address=dnc.normalised(address), answered=False,
                                tm_create=now - dt.timedelta(minutes=5)))
        # The second half moved on from their first slot (a retry rule, an entry): their
        # listed or capped address is the one dialed next.
        await session.execute(update(OutdialTarget).where(
            OutdialTarget.id.in_(scenario.target_ids[len(addresses):])).values(first_slot=1))
    per_target, counted, _ = await said_and_counted(scenario, now)
    assert counted == per_target
    # First half: held by their first destination; second half: by the one they moved on to.
    assert {k: v for k, v in counted.items() if v} == {"dnc": 6, "contact_limit": 4}

