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


async def seed_lists(database: Database, lists: int, entries: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A customer with `lists` lists of `entries` entries each (numbers +1 3xx…, far from the
    targets'); the unique index is built after the rows, as a bulk load would."""
    now = utcnow()
    customer = Customer(id=uuid.uuid4(), name="bench", detail="", tm_create=now)
    list_ids = [uuid.uuid4() for _ in range(lists)]
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([Dnclist(id=i, customer_id=customer.id, tm_create=now) for i in list_ids])
    async with database.transaction() as session:
        await session.execute(text("SET LOCAL statement_timeout = 0"))  # millions of rows
        await session.execute(text("DROP INDEX uq_dnc_entries_list_value"))
        for index, list_id in enumerate(list_ids):
            await session.execute(text("""
                INSERT INTO dnc_entries (id, customer_id, dnclist_id, type, value, tm_create)
                SELECT gen_random_uuid(), :customer, :list, 'tel',
                       '+1' || (3000000000 + :index * :entries + g)::text, :now
                FROM generate_series(1, :entries) g"""),
                {"customer": customer.id, "list": list_id, "index": index, "entries": entries,
                 "now": now})
        await session.execute(text(
            "CREATE UNIQUE INDEX uq_dnc_entries_list_value ON dnc_entries (dnclist_id, value)"))
        await session.execute(text("ANALYZE"))
    return customer.id, list_ids


async def seed_campaign(database: Database, customer_id: uuid.UUID, targets: int,
                        list_ids: list[uuid.UUID], base: int) -> uuid.UUID:
    """A running campaign over `targets` targets with 1-3 tel destinations (+1 202 base+…),
    naming `list_ids`; 1 % of the targets' first numbers are put on the first list."""
    now = utcnow()
    outplan = Outplan(id=uuid.uuid4(), customer_id=customer_id, tm_create=now,
                      max_try_count_0=1, max_try_count_1=1, max_try_count_2=1, try_interval=0)
    outdial = Outdial(id=uuid.uuid4(), customer_id=customer_id, tm_create=now)
    campaign = Campaign(id=uuid.uuid4(), customer_id=customer_id, status="run",
                        outplan_id=outplan.id, outdial_id=outdial.id, concurrency=1000,
                        dial_rate=1000, tm_create=now, dnclist_ids=[str(i) for i in list_ids])
    outdial.campaign_id = campaign.id
    async with database.transaction() as session:
        session.add_all([outplan, outdial])
        await session.flush()
        session.add(campaign)
    tel = "json_build_object('type','tel','target','+1202' || lpad(({n})::text, 7, '0'),"\
          "'target_name','','name','','detail','')"
    async with database.transaction() as session:
        await session.execute(text(f"""
            INSERT INTO outdial_targets (id, customer_id, outdial_id, name, detail, data, status,
                destination_0, destination_1, destination_2, try_count_0, try_count_1, try_count_2,
                try_count_3, try_count_4, tm_create, zone_key, first_slot)
            SELECT gen_random_uuid(), :customer, :outdial, '', '', '', 'idle',
                   {tel.format(n=':base + 3*g')},
                   CASE WHEN g % 3 > 0 THEN {tel.format(n=':base + 3*g+1')} END,
                   CASE WHEN g % 3 = 2 THEN {tel.format(n=':base + 3*g+2')} END,
                   0, 0, 0, 0, 0, :now, '', 0
            FROM generate_series(1, :targets) g"""),
            {"customer": customer_id, "outdial": outdial.id, "now": now, "targets": targets,
             "base": base})
        if list_ids:
            await session.execute(text("""
                INSERT INTO dnc_entries (id, customer_id, dnclist_id, type, value, tm_create)
                SELECT gen_random_uuid(), :customer, :list, 'tel',
                       '+1202' || lpad((:base + 3*g)::text, 7, '0'), :now
                FROM generate_series(100, :targets, 100) g"""),
                {"customer": customer_id, "list": list_ids[0], "targets": targets, "now": now,
                 "base": base})
        await session.execute(text("ANALYZE outdial_targets"))
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
        closings = [Closing(c.campaigncall_id, c.target_id, OutcomeKind.ANSWERED, now,
                            destination_index=c.destination_index) for c in claimed]
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
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url = await fresh_database()
    database = Database(url)
    rates: dict[str, list[float]] = {"plain": [], "3 DNC lists": []}
    try:
        await upgrade_database(database)
        t0 = time.perf_counter()
        customer_id, list_ids = await seed_lists(database, 3, args.entries)
        print(f"seeded 3 lists of {args.entries:,} entries in {time.perf_counter() - t0:.0f} s")
        base = 0
        for _ in range(args.rounds):  # alternated, so that both see the same machine
            for label, lists in (("plain", []), ("3 DNC lists", list_ids)):
                campaign_id = await seed_campaign(database, customer_id, args.targets, lists, base)
                base += 3 * args.targets + 3
                attempts, skipped, seconds = await drain(database, campaign_id)
                rates[label].append(attempts / seconds)
                print(f"{label}: {attempts} attempts, {skipped} dnc slots, {seconds:.1f} s, "
                      f"{attempts / seconds:,.0f} attempts/s")
    finally:
        await database.dispose()
        await drop_database(url)
    plain, listed = (sum(v) / len(v) for v in rates.values())
    print(f"mean: plain {plain:,.0f}/s, with 3 DNC lists {listed:,.0f}/s: "
          f"{listed / plain:.2f}x of the plain run")


if __name__ == "__main__":
    asyncio.run(main())
