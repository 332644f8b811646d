"""Migration 0012_importzone on a database whose targets have keys written zone by zone: each
key becomes the one the API now writes for the same zones, and a downgrade spells them out
again."""

import uuid

from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.migrations import alembic_config, upgrade_database
from outdial.models import Customer, Outdial, OutdialTarget
from outdial.strategy.windows import zone_key, zones_of_number
from tests import databases
from tests.engine_support import tel

TARGETS = OutdialTarget.__table__


def spelled_out(*numbers: str, default: bool = False) -> str:
    """A key as written before 0012: every zone by name."""
    zones = {z for n in numbers for z in zones_of_number(n)} | ({"*"} if default else set())
    return " ".join(sorted(zones))


async def test_keys_written_zone_by_zone_become_short(database_url: str, clock: FakeClock) -> None:
    if database_url.startswith("sqlite"):
        url = database_url.replace("outdial.db", "before-0012.db")
    else:
        url = databases.create_postgres_database()
    database = Database(url)
    try:
        def upgrade_to_0011(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), "0011_retry_dnc")

        def downgrade_to_0011(connection: Connection) -> None:
            command.downgrade(alembic_config(connection), "0011_retry_dnc")

        async with database.engine.begin() as connection:
            await connection.run_sync(upgrade_to_0011)
        now = clock.now()
        customer, outdial = uuid.uuid4(), uuid.uuid4()
        cases = [  # destinations, the key written before, the key written now
            (["+15555550100"], spelled_out("+15555550100")),
            (["+15555550100", "+12125550100"], spelled_out("+15555550100")),
            (["+15555550100", "+819012345678"], spelled_out("+15555550100", "+819012345678")),
            (["+16055550100"], spelled_out("+16055550100")),
            (["+74232000000", "+447700900000"], spelled_out("+74232000000", "+447700900000")),
        ]
        rows = []
        for numbers, old in cases:
            destinations = [tel(n) for n in numbers] + [None] * (5 - len(numbers))
            rows.append({
                "id": uuid.uuid4(), "customer_id": customer, "outdial_id": outdial, "name": "",
                "detail": "", "data": "", "tm_create": now, "status": "idle", "zone_key": old,
                "timezone": None,
                **{f"destination_{n}": d for n, d in enumerate(destinations)},
                **{f"try_count_{n}": 0 for n in range(5)},
            })
        rows.append({**rows[0], "id": uuid.uuid4(), "zone_key": spelled_out(
            "+15555550100", default=True)})
        rows.append({**rows[0], "id": uuid.uuid4(), "zone_key": "Asia/Tokyo", "timezone": "Asia/Tokyo"})
        async with database.transaction() as session:
            await session.execute(insert(databases.as_of(Customer.__table__)).values(
                id=customer, name="c", detail="", tm_create=now))
            await session.execute(insert(Outdial.__table__).values(
                id=outdial, customer_id=customer, campaign_id=uuid.UUID(int=0), name="", detail="",
                data="", tm_create=now))
            # as migration 0011 left the table: without the later address forms
            await session.execute(insert(databases.as_of(TARGETS, "address_forms", "listed_until")), rows)

        async def keys() -> list[str]:
            async with database.sessions() as session:
                found = dict((await session.execute(select(TARGETS.c.id, TARGETS.c.zone_key))).all())
            return [found[row["id"]] for row in rows]

        await upgrade_database(database)
        expected = [zone_key(None, [tel(n) for n in numbers]) for numbers, _ in cases]
        assert await keys() == [*expected, "* +1", "Asia/Tokyo"]
        assert expected[:3] == ["+1", "+1", "+1 Asia/Tokyo"]

        async with database.engine.begin() as connection:
            await connection.run_sync(downgrade_to_0011)
        assert await keys() == [row["zone_key"] for row in rows]
    finally:
        await database.dispose()
        if not database_url.startswith("sqlite"):
            databases.drop_postgres_database(url)
