"""Migration 0019_onefold on a database written by the version before: the entries' and contacts'
keys are folded again (two entries of a list that become one are merged), the indexes on the
targets' values are rebuilt, the targets' listed_until follows, and a downgrade runs."""

import datetime as dt
import sqlite3
import uuid

from alembic import command
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.db.sqlite import unicode_lower
from outdial.migrations import alembic_config, upgrade_database
from outdial.models import Contact, Customer, DncEntry, Dnclist, Outdial, OutdialTarget
from tests import databases

TARGETS = OutdialTarget.__table__
ENTRIES = DncEntry.__table__
GREEK = "ΟΔΥΣΣΕΑΣ@example.gr"
FOLDED = "οδυσσεασ@example.gr"


def _to(revision: str, down: bool = False):
    def run(connection: Connection) -> None:
        (command.downgrade if down else command.upgrade)(alembic_config(connection), revision)
    return run


async def test_keys_are_folded_again_and_the_targets_follow(
    database_url: str, clock: FakeClock
) -> None:
    sqlite = database_url.startswith("sqlite")
    url = (database_url.replace("outdial.db", "before-0019.db") if sqlite
           else databases.create_postgres_database())
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_to("0018_unicodelower"))
        now = clock.now()
        customer, outdial, list_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        greek, ann = uuid.uuid4(), uuid.uuid4()
        async with database.transaction() as session:
            await session.execute(insert(Customer.__table__).values(
                id=customer, name="c", detail="", tm_create=now))
            await session.execute(insert(Outdial.__table__).values(
                id=outdial, customer_id=customer, campaign_id=uuid.UUID(int=0), name="",
                detail="", data="", tm_create=now))
            await session.execute(insert(Dnclist.__table__).values(
                id=list_id, customer_id=customer, name="dnc", detail="", applies_to_all=True,
                tm_create=now))
            # Keys as Python's str.lower wrote them: "ΟΔΥΣΣΕΑΣ" ends in "ς"; another entry of
            # the list was written "οδυσσεασ". One key once folded: one entry, never expiring.
            for value, expire in ((GREEK.lower(), None),
                                  (FOLDED, now + dt.timedelta(days=30))):
                await session.execute(insert(ENTRIES).values(
                    id=uuid.uuid4(), customer_id=customer, dnclist_id=list_id, type="email",
                    value=value, tm_expire=expire, tm_create=now))
            await session.execute(insert(Contact.__table__).values(
                id=uuid.uuid4(), customer_id=customer, address="İLKER@example.com.tr".lower(),
                answered=False, tm_create=now))
            for target_id, target in ((greek, GREEK), (ann, "ann@example.com")):
                await session.execute(insert(TARGETS).values(
                    id=target_id, customer_id=customer, outdial_id=outdial, name="", detail="",
                    data="", tm_create=now, status="idle", zone_key="*",
                    destination_0={"type": "email", "target": target, "target_name": "",
                                   "name": "", "detail": ""},
                    **{f"try_count_{n}": 0 for n in range(5)}))
            await session.execute(update_listed_until_to_none())

        await upgrade_database(database)
        async with database.transaction() as session:
            entries = (await session.execute(
                select(ENTRIES.c.value, ENTRIES.c.tm_expire))).all()
            assert [(value, expire) for value, expire in entries] == [(FOLDED, None)]
            assert await session.scalar(select(Contact.address)) == "ilker@example.com.tr"
            listed = dict((await session.execute(
                select(TARGETS.c.id, TARGETS.c.listed_until))).all())
            assert listed[ann] is None and listed[greek] is not None
            if not sqlite:  # the rebuilt index finds the target by its folded value
                await session.execute(text("SET LOCAL enable_seqscan = off"))
                found = await session.scalar(text(
                    "SELECT id FROM outdial_targets WHERE customer_id = :customer AND "
                    "outdial_dnc_value(destination_0) = :value AND tm_delete IS NULL "
                    "AND destination_0 IS NOT NULL"), {"customer": customer, "value": FOLDED})
                assert found == greek
        await database.dispose()
        if sqlite:
            with sqlite3.connect(url.split(":///", 1)[1]) as connection:
                connection.create_function("lower", 1, unicode_lower, deterministic=True)
                assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

        async with database.engine.begin() as connection:
            await connection.run_sync(_to("0018_unicodelower", down=True))
    finally:
        await database.dispose()
        if not sqlite:
            databases.drop_postgres_database(url)


def update_listed_until_to_none():
    """As if no trigger had found the target listed (whatever the locale's lower() gave)."""
    return TARGETS.update().values(listed_until=None)
