"""fetch_page's (tm_create, id) seek with rows that share a tm_create across page ends."""

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, select

from outdial.db import Database
from outdial.db.paging import PageRequest, fetch_page
from outdial.migrations import upgrade_database
from outdial.models import Customer, Outdial, OutdialTarget


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await upgrade_database(db)
    yield db
    await db.dispose()


async def test_walk_with_shared_timestamps_returns_each_row_once_in_order(
    database: Database,
) -> None:
    base = dt.datetime(2026, 1, 1)
    customer_id, outdial_id = uuid.uuid4(), uuid.uuid4()
    # Groups of 10 rows share one microsecond, so most page ends (page size 7) fall inside a group.
    rows = [
        {"id": uuid.uuid4(), "customer_id": customer_id, "outdial_id": outdial_id,
         "destination_0": {"type": "tel", "target": "+15559876543"},
         "tm_create": base + dt.timedelta(microseconds=n // 10)}
        for n in range(95)
    ]
    async with database.transaction() as session:
        session.add(Customer(id=customer_id, name="c", detail="", tm_create=base))
        await session.flush()
        session.add(Outdial(id=outdial_id, customer_id=customer_id, tm_create=base))
        await session.flush()
        await session.execute(insert(OutdialTarget), rows)

    query = select(OutdialTarget).where(OutdialTarget.outdial_id == outdial_id)
    seen: list[uuid.UUID] = []
    token = None
    async with database.sessions() as session:
        for _ in range(len(rows)):
            page = await fetch_page(session, query, OutdialTarget, PageRequest.parse("7", token))
            seen += [row.id for row in page.rows]
            token = page.next_page_token
            if not token:
                break

    expected = sorted(rows, key=lambda r: (r["tm_create"], r["id"]), reverse=True)
    assert seen == [r["id"] for r in expected]
