"""Migration 0005_accesskey_agent on a database that already holds access keys: they keep
working, owned by no agent (and make no keys), and new keys get their maker."""

import datetime as dt
import uuid

import pytest
from alembic import command
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from outdial.auth import credentials
from outdial.auth.service import AuthService, Permission
from outdial.clock import FakeClock
from outdial.db import Database
from outdial.errors import PermissionDenied
from outdial.migrations import alembic_config, upgrade_database
from outdial.models import AccessKey, Customer
from tests import databases


async def test_keys_from_before_the_migration_keep_working_without_an_owner(
    database_url: str, clock: FakeClock
) -> None:
    # A database of its own, built up to 0002 only: the shared one is already at the head.
    if database_url.startswith("sqlite"):
        url = database_url.replace("outdial.db", "before-0003.db")
    else:
        url = databases.create_postgres_database()
    database = Database(url)
    try:
        def to_0002(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), "0002")

        async with database.engine.begin() as connection:
            await connection.run_sync(to_0002)
        secret = credentials.new_access_key_secret()
        customer_id = uuid.uuid4()
        now = dt.datetime(2026, 1, 1)
        # Core inserts name only the columns given: the table at 0002 has no agent_id yet.
        async with database.transaction() as session:
            await session.execute(insert(databases.as_of(Customer.__table__, "contact_limits")).values(
                id=customer_id, name="old", detail="", tm_create=now))
            await session.execute(insert(AccessKey.__table__).values(
                id=uuid.uuid4(), customer_id=customer_id, name="old key", detail="",
                token_hash=credentials.access_key_digest(secret),
                tm_expire=dt.datetime(2100, 1, 1), tm_create=now))

        await upgrade_database(database)

        async with database.transaction() as session:
            service = AuthService(session, clock)
            principal = await service.authenticate(secret, "unused-signing-key")
            assert (principal.customer_id, principal.permission, principal.agent_id) == (
                customer_id, Permission.ADMIN, None)
            agent = await service.create_agent(customer_id, "maker", "maker-password", Permission.MANAGER)
            # An ownerless key makes no keys (they would be ownerless admins too); an agent's
            # key has its maker.
            with pytest.raises(PermissionDenied) as refused:
                await service.create_access_key(
                    await service.authenticate_access_key(secret), "k", "", 60)
            assert refused.value.reason == "ACCESSKEY_WITHOUT_OWNER"
            assert "POST /auth/login" in str(refused.value)
            owned, owned_secret = await service.create_access_key(
                type(principal)(customer_id, Permission.MANAGER, agent_id=agent.id), "k2", "", 60)
            assert owned.agent_id == agent.id
            assert (await service.authenticate_access_key(owned_secret)).permission == Permission.MANAGER
    finally:
        await database.dispose()
        if not database.is_sqlite:
            databases.drop_postgres_database(url)
