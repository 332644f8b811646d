"""Alembic migrations, shipped inside the package and run on start or by `outdial db upgrade`."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from outdial.db import Database

MIGRATIONS_DIR = Path(__file__).parent
# Any constant will do: it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 7_305_112_601
# How long a starting process waits for another one's migration.
_PG_MIGRATION_WAIT = "10min"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # A migration may index or rewrite large tables: no statement limit. Several processes
        # may start at once against one database; one migrates, the rest wait (bounded).
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text(f"SET LOCAL lock_timeout = '{_PG_MIGRATION_WAIT}'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        # Table locks wait no longer than usual: a long wait would queue every session behind it.
        connection.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    command.upgrade(alembic_config(connection), "head")


async def upgrade_database(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade)
