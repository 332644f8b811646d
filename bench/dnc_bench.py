"""Claim rate with 3 do-not-call lists of 1,000,000 entries each, against the plain run.

PostgreSQL. One campaign over N targets (1-3 tel destinations), claimed in batches of 200 and
closed as answered in a bare loop (the claim and record SQL, no dialer): once with no list, once
with three lists of a million entries that hold 1 % of the targets' numbers.

    .venv/bin/python bench/dnc_bench.py [--targets 20000] [--entries 1000000]
"""

import argparse
import asyncio
import time
import uuid

from sqlalchemy import text

from engine_bench import drop_database, fresh_database  # noqa: I001 - beside this file
from outdial.clock import utcnow
from outdial.db import Database
from outdial.dialers import OutcomeKind
from outdial.engine import repository as repo
from outdial.engine.repository import Closing
from outdial.migrations import upgrade_database
from outdial.models import Campaign, Customer, Dnclist, Outdial, Outplan


async def seed(database: Database, targets: int, lists: int, entries: int) -> uuid.UUID:
    now = utcnow()
    customer = Customer(id=uuid.uuid4(), name="bench", detail="", tm_create=now)
    outplan = Outplan(id=uuid.uuid4(), customer_id=customer.id, tm_create=now,
                      max_try_count_0=1, max_try_count_1=1, max_try_count_2=1, try_interval=0)
    outdial = Outdial(id=uuid.uuid4(), customer_id=customer.id, tm_create=now)
    list_ids = [uuid.uuid4() for _ in range(lists)]
    campaign = Campaign(id=uuid.uuid4(), customer_id=customer.id, status="run", outplan_id=outplan.id,
                        outdial_id=outdial.id, concurrency=1000, dial_rate=1000, tm_create=now,
                        dnclist_ids=[str(i) for i in list_ids])
    outdial.campaign_id = campaign.id
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([outplan, outdial, campaign])
        session.add_all([Dnclist(id=i, customer_id=customer.id, tm_create=now) for i in list_ids])
    tel = "json_build_object('type','tel','target','+1202' || lpad(({n})::text, 7, '0'),"\
          "'target_name','','name','','detail','')"
    async with database.transaction() as session:
        await session.execute(text("SET LOCAL statement_timeout = 0"))  # millions of rows
        await session.execute(text(f"""
            INSERT INTO outdial_targets (id, customer_id, outdial_id, name, detail, data, status,
                destination_0, destination_1, destination_2, try_count_0, try_count_1, try_count_2,
                try_count_3, try_count_4, tm_create, zone_key, first_slot)
            SELECT gen_random_uuid(), :customer, :outdial, '', '', '', 'idle',
                   {tel.format(n='3*g')},
                   CASE WHEN g % 3 > 0 THEN {tel.format(n='3*g+1')} END,
                   CASE WHEN g % 3 = 2 THEN {tel.format(n='3*g+2')} END,
                   0, 0, 0, 0, 0, :now, '', 0
            FROM generate_series(1, :targets) g"""),
            {"customer": customer.id, "outdial": outdial.id, "now": now, "targets": targets})
        for index, list_id in enumerate(list_ids):
            # Numbers far from the targets', and 1 % of the targets' first numbers.
            await session.execute(text("""
                INSERT INTO dnc_entries (id, customer_id, dnclist_id, type, value, tm_create)
                SELECT gen_random_uuid(), :customer, :list, 'tel',
                       CASE WHEN g % 100 = 0 AND g / 100 <= :targets / 300
                            THEN '+1202' || lpad((3 * (g / 100) * 3 + :index)::text, 7, '0')
                            ELSE '+1' || (3000000000 + :index * :entries + g)::text END,
                       :now
                FROM generate_series(1, :entries) g"""),
                {"customer": customer.id, "list": list_id, "index": index, "entries": entries,
                 "targets": targets, "now": now})
        await session.execute(text("ANALYZE"))
    return campaign.id


async def drain(database: Database, campaign_id: uuid.UUID) -> tuple[int, int, float]:
    """Claim and close as answered until nothing is left; (attempts, dnc rows, seconds)."""
    attempts = 0
    started = time.perf_counter()
    while True:
        now = utcnow()
        async with database.transaction() as session:
            claimed = await repo.take_turn(session, campaign_id, worker_id="bench", now=now,
                                           lease_seconds=60, most=200)
        if not claimed:
            async with database.transaction() as session:
                status = await session.scalar(text("SELECT status FROM campaigns WHERE id = :c"),
                                              {"c": campaign_id})
            if status != "run":
                break
            continue
        attempts += len(claimed)
        closings = [Closing(c.campaigncall_id, c.target_id, OutcomeKind.ANSWERED, now, c.limits,
                            c.try_interval, destination_index=c.destination_index) for c in claimed]
        async with database.transaction() as session:
            await repo.record_outcomes(session, closings, [], "bench", now)
    seconds = time.perf_counter() - started
    async with database.transaction() as session:
        skipped = await session.scalar(text(
            "SELECT count(*) FROM campaigncalls WHERE campaign_id = :c AND outcome = 'dnc'"),
            {"c": campaign_id})
    return attempts, skipped or 0, seconds


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    results = {}
    for label, lists in (("plain", 0), ("3 DNC lists", 3)):
        url = await fresh_database()
        database = Database(url)
        try:
            await upgrade_database(database)
            t0 = time.perf_counter()
            campaign_id = await seed(database, args.targets, lists, args.entries)
            seeded = time.perf_counter() - t0
            attempts, skipped, seconds = await drain(database, campaign_id)
            results[label] = attempts / seconds
            print(f"{label}: {attempts} attempts, {skipped} dnc slots, {seconds:.1f} s, "
                  f"{attempts / seconds:,.0f} attempts/s (seeded in {seeded:.0f} s)")
        finally:
            await database.dispose()
            await drop_database(url)
    print(f"ratio: {results['3 DNC lists'] / results['plain']:.2f}x of the plain run")


if __name__ == "__main__":
    asyncio.run(main())
