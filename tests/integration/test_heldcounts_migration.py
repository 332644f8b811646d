"""Migration 0017_heldcounts on a database with targets: the counts per shape are rebuilt keyed
on the zone key too, kept so by the triggers, and a downgrade folds the keys back."""

import uuid

from alembic import command
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.migrations import alembic_config, upgrade_database
from outdial.models import Customer, Outdial, OutdialTarget
from tests import databases
from tests.engine_support import tel

TARGETS = OutdialTarget.__table__


async def test_the_counts_gain_the_zone_key_and_lose_it_again(
    database_url: str, clock: FakeClock
) -> None:
    sqlite = database_url.startswith("sqlite")
    url = (database_url.replace("outdial.db", "before-0017.db") if sqlite
           else databases.create_postgres_database())
    database = Database(url)
    try:
        def up_to_0016(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), "0016_hookengine")

        def down_to_0016(connection: Connection) -> None:
            command.downgrade(alembic_config(connection), "0016_hookengine")

        async with database.engine.begin() as connection:
            await connection.run_sync(up_to_0016)
        now = clock.now()
        customer, outdial = uuid.uuid4(), uuid.uuid4()
        async with database.transaction() as session:
            await session.execute(insert(Customer.__table__).values(
                id=customer, name="c", detail="", tm_create=now))
            await session.execute(insert(Outdial.__table__).values(
                id=outdial, customer_id=customer, campaign_id=uuid.UUID(int=0), name="", detail="",
                data="", tm_create=now))
            for number, key in (("+12125550100", "a"), ("+12125550101", "a"),
                                ("+12125550102", "b")):
                await session.execute(insert(TARGETS).values(
                    id=uuid.uuid4(), customer_id=customer, outdial_id=outdial, name="", detail="",
                    data="", tm_create=now, status="idle", zone_key=key,
                    destination_0=tel(number), **{f"try_count_{n}": 0 for n in range(5)}))

        async def counts(zoned: bool, by: str = "zone_key") -> dict[str, int]:
            """The live targets per zone key ('-': the counts have none), as the counts say:
            their rows plus, on PostgreSQL, the changes not folded in yet."""
            column = by if zoned or by != "zone_key" else "'-'"
            parts = " UNION ALL ".join(
                f"SELECT {column} AS k, targets FROM {table}"
                for table in ("outdial_target_counts",
                              *([] if sqlite else ["outdial_target_count_changes"])))
            async with database.transaction() as session:
                rows = await session.execute(text(
                    f"SELECT k, sum(targets) FROM ({parts}) x GROUP BY k"))
                return {str(key): int(n) for key, n in rows if n}

        assert await counts(zoned=False) == {"-": 3}
        await upgrade_database(database)
        assert await counts(zoned=True) == {"a": 2, "b": 1}
        # A target whose zone key changes moves between the keys' counts.
        async with database.transaction() as session:
            await session.execute(update(TARGETS).where(TARGETS.c.zone_key == "b").values(
                zone_key="a"))
        assert await counts(zoned=True) == {"a": 3}
        async with database.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(TARGETS)) == 3
        async with database.engine.begin() as connection:
            await connection.run_sync(down_to_0016)
        assert await counts(zoned=False) == {"-": 3}
        # The triggers of 0009 again.
        async with database.transaction() as session:
            await session.execute(update(TARGETS).values(status="done"))
        assert await counts(zoned=False, by="status") == {"done": 3}
    finally:
        await database.dispose()
        if not sqlite:
            databases.drop_postgres_database(url)
