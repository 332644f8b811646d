"""Migration 0018_unicodelower (SQLite): what SQLite's built-in lower() had computed (ASCII
letters only) is computed again by Unicode's rules, and a downgrade computes it back."""

import sqlite3
import uuid

from alembic import command
from sqlalchemy.engine import Connection

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.migrations import alembic_config, upgrade_database
from outdial.db.sqlite import unicode_lower

LISTED = "jörg@example.com"


def _insert_before_0018(path: str, now: str) -> None:
    """A customer, an entry for LISTED and a target of `JÖRG@example.com`, written by a
    connection with SQLite's built-in lower(), as any version before 0018 wrote them."""
    customer, outdial = uuid.uuid4().hex, uuid.uuid4().hex
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT lower('Ö')").fetchone() == ("Ö",)
        connection.execute("INSERT INTO customers (id, name, detail, tm_create) "
                           "VALUES (?, 'c', '', ?)", (customer, now))
        connection.execute("INSERT INTO outdials (id, customer_id, campaign_id, name, detail, "
                           "data, tm_create) VALUES (?, ?, ?, '', '', '', ?)",
                           (outdial, customer, uuid.UUID(int=0).hex, now))
        list_id = uuid.uuid4().hex
        connection.execute("INSERT INTO dnclists (id, customer_id, name, detail, applies_to_all, "
                           "tm_create) VALUES (?, ?, 'dnc', '', 1, ?)", (list_id, customer, now))
        connection.execute("INSERT INTO dnc_entries (id, customer_id, dnclist_id, type, value, "
                           "tm_create) VALUES (?, ?, ?, 'email', ?, ?)",
                           (uuid.uuid4().hex, customer, list_id, LISTED, now))
        tries = ", ".join(f"try_count_{n}" for n in range(5))
        for target in ("JÖRG@example.com", "ann@example.com"):
            connection.execute(
                "INSERT INTO outdial_targets (id, customer_id, outdial_id, name, detail, data, "
                f"tm_create, status, zone_key, destination_0, {tries}) "
                "VALUES (?, ?, ?, '', '', '', ?, 'idle', '*', json(?), 0, 0, 0, 0, 0)",
                (uuid.uuid4().hex, customer, outdial, now,
                 f'{{"type": "email", "target": "{target}"}}'))


def _listed_and_sound(path: str, lower=None) -> list[str]:
    """The targets with a listed_until, after SQLite found every index sound (reading them with
    `lower` as lower(), or the built-in)."""
    with sqlite3.connect(path) as connection:
        if lower is not None:
            connection.create_function("lower", 1, lower, deterministic=True)
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = connection.execute("SELECT json_extract(destination_0, '$.target') "
                                  "FROM outdial_targets WHERE listed_until IS NOT NULL")
        return [row[0] for row in rows]


async def test_sqlite_values_are_lowered_by_unicode_rules_after_0018(tmp_path, clock: FakeClock) -> None:
    path = str(tmp_path / "before-0018.db")
    database = Database(f"sqlite:///{path}")
    try:
        def up_to(revision: str):
            def run(connection: Connection) -> None:
                command.upgrade(alembic_config(connection), revision)
            return run

        async with database.engine.begin() as connection:
            await connection.run_sync(up_to("0017_heldcounts"))
        await database.dispose()
        _insert_before_0018(path, clock.now().strftime("%Y-%m-%d %H:%M:%S.%f"))
        assert _listed_and_sound(path) == []  # the built-in left `jÖrg@example.com`

        await upgrade_database(database)
        await database.dispose()
        assert _listed_and_sound(path, unicode_lower) == ["JÖRG@example.com"]

        def down_to_0017(connection: Connection) -> None:
            command.downgrade(alembic_config(connection), "0017_heldcounts")

        async with database.engine.begin() as connection:
            await connection.run_sync(down_to_0017)
        await database.dispose()
        # As the version before reads it, with the built-in lower(): sound, and not matched.
        assert _listed_and_sound(path) == []
    finally:
        await database.dispose()
