"""Test databases: a SQLite file per test, and a PostgreSQL database of the suite's own."""

import asyncio
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from sqlalchemy import MetaData, Table

POSTGRES_ADMIN_URL = os.environ.get(
    "OUTDIAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


async def _run_admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _admin(statement: str) -> None:
    """Run one statement on the server's admin database, from sync or async code alike."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _run_admin(statement)).result()


async def _fetch_value(url: str, query: str) -> object:
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def fetch_value(url: str, query: str) -> object:
    """The first column of the first row of `query` on the database at `url`."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _fetch_value(url, query)).result()


def create_postgres_database() -> str:
    """Create a fresh database and return its URL; raises OSError if the server is not there."""
    name = f"outdial_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rpartition("/")[2]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TABLES = (
    "webhook_deliveries", "webhooks", "events", "contacts", "import_row_errors", "import_row_targets",
    "import_jobs", "dnc_entries", "campaigncalls", "campaigns", "outplans", "channels",
    "outdial_target_count_changes", "outdial_target_counts", "count_compactions", "outdial_targets",
    "outdials", "dnclists", "accesskeys",
    "agents", "server_secrets", "customers",
)


async def truncate_postgres(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        existing = {r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )}
        names = ", ".join(t for t in TABLES if t in existing)
        if names:
            await connection.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await connection.close()


def as_of(table: Table, *later: str) -> Table:
    """`table` as an older migration left it: without the `later` columns, whose Python-side
    defaults a Core insert into the full table would otherwise name."""
    return Table(table.name, MetaData(), *(c._copy() for c in table.c if c.name not in later))
