"""The claim with the dialing strategy on, against the plain claim, on PostgreSQL.

1. Attempts/s of the engine's claim/record SQL in a bare loop (instant answers), first on a plain
   campaign, then on the same list with a calling window (a US list over four zones, open in
   all), 3 do-not-call lists of --dnc entries each that the campaign honours, and a contact
   limit on: the ratio of the two (goal >= 0.8).
   The two runs alternate (--rounds times each, on their own databases seeded once), so that
   a load that comes and goes on the machine weighs on both alike.
2. The stats' counts per waiting reason over --reason-targets targets (goal < 100 ms): a fresh
   list no rule holds, then each held case alone (--held-cases), then all of them together:
   30 % of the list in a zone whose calling window is closed, 10 % waiting for a retry, 5 % on
   a do-not-call list, 5 % over a contact limit. Each case is made by SQL on the seeded list,
   vacuumed (as autovacuum would), measured, and undone.
3. One target's waiting fields, as POST/GET of a target computes them: the statement built
   once per shape (strategy.reasons.cached) against building it at each call.

    .venv/bin/python -m bench.strategy_bench [--targets 20000] [--dnc 1000000] \
        [--reason-targets 1000000] [--rounds 2] [--held-cases window,retry,dnc,cap] [--check]
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import time
import uuid
from typing import Any

from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import func, select

from outdial.clock import utcnow
from outdial.db import Database
from outdial.dialers import OutcomeKind
from outdial.engine import repository as repo
from outdial.engine.repository import Closing
from outdial.migrations import upgrade_database
from outdial.models import Campaign, Customer, Outdial, Outplan
from outdial.strategy import reasons
from outdial.strategy.windows import zone_key

from bench.engine_bench import drop_database, fresh_database

AREA_CODES = ("212", "312", "303", "213")  # New York, Chicago, Denver, Los Angeles
# The area code of target n: New York (the zone the held cases close) takes 30 % of the list.
AREA_OF = (0, 0, 0, 1, 1, 2, 2, 3, 3, 3)
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00",
          "end": "24:00", "timezone_default": "America/New_York", "holidays": ["2026-12-25"]}
BATCH = 100


async def seed(url: str, targets: int, *, strategy: bool, dnc: int) -> tuple[uuid.UUID, uuid.UUID]:
    """A running campaign over `targets` one-number targets; with the strategy on, its window,
    lists and cap. Rows go in by COPY: a million targets take a minute, not ten."""
    database = Database(url)
    now = utcnow() - dt.timedelta(hours=1)
    customer = Customer(id=uuid.uuid4(), name="bench", tm_create=now,
                        contact_limits=[{"max": 3, "window": 86400000, "count": "attempts"}]
                        if strategy else [])
    outplan = Outplan(id=uuid.uuid4(), customer_id=customer.id, source=None, try_interval=0,
                      max_try_count_0=1, tm_create=now)
    outdial = Outdial(id=uuid.uuid4(), customer_id=customer.id, tm_create=now)
    campaign = Campaign(id=uuid.uuid4(), customer_id=customer.id, status="run",
                        outplan_id=outplan.id, outdial_id=outdial.id, concurrency=1000,
                        dial_rate=1_000_000, actions=[], tm_create=now,
                        calling_window=WINDOW if strategy else None)
    outdial.campaign_id = campaign.id
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([outplan, outdial, campaign])
    await database.dispose()
    connection = await asyncpg.connect(url)
    try:
        records = []
        for n in range(targets):
            number = f"+1{AREA_CODES[AREA_OF[n % 10]]}{2000000 + n % 8000000:07d}"
            destination = {"type": "tel", "target": number, "target_name": "", "name": "",
                           "detail": ""}
            records.append((uuid.uuid4(), customer.id, outdial.id, "", "", "", "idle",
                            json.dumps(destination), 0, 0, 0, 0, 0, now,
                            zone_key(None, [destination])))
        await connection.copy_records_to_table(
            "outdial_targets", records=records,
            columns=["id", "customer_id", "outdial_id", "name", "detail", "data", "status",
                     "destination_0", *(f"try_count_{n}" for n in range(5)), "tm_create",
                     "zone_key"])
        if strategy:
            # A retried target has tries left (the held cases' retry case).
            await connection.execute("UPDATE outplans SET max_try_count_0 = 2 WHERE id = $1",
                                     outplan.id)
            list_ids = [uuid.uuid4() for _ in range(3)]
            for n, list_id in enumerate(list_ids):
                await connection.execute(
                    "INSERT INTO dnclists (id, customer_id, name, detail, applies_to_all, tm_create)"
                    " VALUES ($1, $2, $3, '', false, $4)", list_id, customer.id, f"dnc {n}", now)
                await connection.copy_records_to_table(
                    "dnc_entries", records=[
                        (uuid.uuid4(), customer.id, list_id, "tel", f"+4420{n}{i:08d}", None, now)
                        for i in range(dnc)
                    ],
                    columns=["id", "customer_id", "dnclist_id", "type", "value", "tm_expire",
                             "tm_create"])
            await connection.execute("UPDATE campaigns SET dnclist_ids = $1 WHERE id = $2",
                                     json.dumps([str(i) for i in list_ids]),
                                     campaign.id)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return campaign.id, outdial.id


async def attempts_per_second(url: str, campaign_id: uuid.UUID, seconds: float) -> float:
    """Claim BATCH targets, answer them at once, record: as fast as the database lets."""
    database = Database(url)
    done = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            now = utcnow()
            async with database.transaction() as session:
                claimed = await repo.take_turn(session, campaign_id, worker_id="bench", now=now,
                                               lease_seconds=60, most=BATCH)
            if not claimed:
                break
            async with database.transaction() as session:
                await repo.record_outcomes(session, [
                    Closing(c.campaigncall_id, c.target_id, OutcomeKind.ANSWERED, now)
                    for c in claimed
                ], [], "bench", now)
            done += len(claimed)
    finally:
        await database.dispose()
    return done / (time.perf_counter() - started)


async def reason_counts_ms(
    url: str, outdial_id: uuid.UUID, runs: int = 1
) -> tuple[list[float], dict[str, int]]:
    """The counts per waiting reason as the stats read them, `runs` times (fewer when they
    take seconds: 3 at least): the wall time of each (the situation included), in ms."""
    database = Database(url)
    times: list[float] = []
    counts: dict[str, int] = {}
    try:
        for _ in range(runs):
            if len(times) >= 3 and sum(times) > 20_000:
                break
            async with database.transaction() as session:
                outdial = await session.get(Outdial, outdial_id)
                started = time.perf_counter()
                s = await reasons.situation(session, outdial, utcnow())
                counts = await reasons.reason_counts(session, s)
                times.append((time.perf_counter() - started) * 1000)
    finally:
        await database.dispose()
    return times, counts


async def every_row_counts(url: str, outdial_id: uuid.UUID) -> dict[str, int]:
    """The same counts the slow way, the reason's SQL asked of every target: to check."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            outdial = await session.get(Outdial, outdial_id)
            s = await reasons.situation(session, outdial, utcnow())
            await reasons.plan_for_rows(session)
            per_target = select(reasons.reason_sql(s).label("reason")).where(
                reasons.TARGETS.c.outdial_id == outdial_id,
                reasons.TARGETS.c.tm_delete.is_(None)).subquery()
            rows = await session.execute(
                select(per_target.c.reason, func.count()).group_by(per_target.c.reason))
            counts = dict.fromkeys(reasons.reasons(), 0)
            counts.update({name: count for name, count in rows})
            return counts
    finally:
        await database.dispose()


async def without_probes(url: str, outdial_id: uuid.UUID) -> None:
    """What the counts would cost if no rule probed another table per row (as if the lists and
    the caps were stored columns of the target): the count without those two rules, and a bare
    count(*) of the outdial's live targets."""
    every_rule = list(reasons.RULES)
    reasons.RULES[:] = [r for r in every_rule if r.reason not in ("dnc", "contact_limit")]
    database = Database(url)
    try:
        for _ in range(2):
            times, _counts = await reason_counts_ms(url, outdial_id)
            ms = min(times)
            print(f"counts without the dnc and contact_limit rules: {ms:.0f} ms", flush=True)
            async with database.transaction() as session:
                started = time.perf_counter()
                await session.scalar(select(func.count()).where(
                    reasons.TARGETS.c.outdial_id == outdial_id,
                    reasons.TARGETS.c.tm_delete.is_(None)))
                print(f"count(*) of the live targets: "
                      f"{(time.perf_counter() - started) * 1000:.0f} ms", flush=True)
    finally:
        reasons.RULES[:] = every_rule
        await database.dispose()


async def waiting_of_ms(url: str, outdial_id: uuid.UUID, calls: int = 300) -> None:
    """Wall and CPU time per call of one target's waiting fields, given its situation."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            outdial = await session.get(Outdial, outdial_id)
            s = await reasons.situation(session, outdial, utcnow())
            target_id = await session.scalar(
                select(reasons.TARGETS.c.id).where(reasons.TARGETS.c.outdial_id == outdial_id)
                .limit(1))

            async def built_each_time() -> None:
                await session.execute(select(reasons.TARGETS.c.id, *reasons.columns(s))
                                      .where(reasons.TARGETS.c.id.in_([target_id])))

            async def cached() -> None:
                await reasons.waiting_of(session, s, [target_id])

            for name, call in (("built at each call", built_each_time), ("built once", cached)):
                await call()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    await call()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(f"one target's waiting fields, {name}: {wall / calls * 1000:.2f} ms wall, "
                      f"{cpu / calls * 1000:.2f} ms CPU of this process per call", flush=True)
    finally:
        await database.dispose()


# Which hundredth of the list a target is in (its number's serial, see seed): the cases take
# disjoint ranges of it, each spread over the four zones.
PERCENTILE = "((right(destination_0->>'target', 7)::int - 2000000) % 100)"
NOW = "(now() AT TIME ZONE 'UTC')"


def window_closed_in_new_york(now: dt.datetime) -> dict[str, Any]:
    """A calling window shut in New York (30 % of the list) and open in the three other zones
    now: it ends at New York's current hour (the others' wall clocks are behind it the same
    day), or before 03:00 there, New York's date is a holiday (the others are still on the day
    before). Holds until New York's next hour."""
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo("America/New_York"))
    if local.hour < 3:
        return {**WINDOW, "holidays": [local.date().isoformat()]}
    return {**WINDOW, "end": f"{local.hour:02d}:00"}


async def held_case(connection: Any, case: str, outdial_id: uuid.UUID, undo: bool) -> None:
    """Make one held case on the seeded list (or undo it)."""
    ids = await connection.fetchrow(
        "SELECT o.customer_id, o.campaign_id, (SELECT min(l.id::text) FROM dnclists l "
        "WHERE l.customer_id = o.customer_id)::uuid AS list_id FROM outdials o WHERE o.id = $1",
        outdial_id)
    of_list = f"outdial_id = '{outdial_id}' AND {PERCENTILE}"
    if case == "retry":  # 10 %: tried a minute ago, due again in an hour, a try left
        await connection.execute(
            f"UPDATE outdial_targets SET try_count_0 = 1, tm_last_end = {NOW} - interval "
            f"'1 minute', next_attempt_at = {NOW} + interval '1 hour' WHERE {of_list} < 10"
            if not undo else
            "UPDATE outdial_targets SET try_count_0 = 0, tm_last_end = NULL, "
            f"next_attempt_at = NULL WHERE {of_list} < 10")
    elif case == "window":  # 30 %: New York's window closed
        window = WINDOW if undo else window_closed_in_new_york(utcnow())
        await connection.execute("UPDATE campaigns SET calling_window = $1 WHERE id = $2",
                                 json.dumps(window), ids["campaign_id"])
    elif case == "dnc":  # 5 %: their numbers on one of the campaign's lists
        await connection.execute(
            "INSERT INTO dnc_entries (id, customer_id, dnclist_id, type, value, tm_expire, "
            f"tm_create) SELECT gen_random_uuid(), customer_id, $1, 'tel', "
            f"destination_0->>'target', NULL, {NOW} FROM outdial_targets "
            f"WHERE {of_list} BETWEEN 10 AND 14"
            if not undo else
            "DELETE FROM dnc_entries WHERE dnclist_id = $1 AND value LIKE '+1%'",
            ids["list_id"])
    elif case == "cap":  # 5 %: 3 attempts in the last hours, the cap is 3 a day
        await connection.execute(
            "INSERT INTO contacts (id, customer_id, address, answered, tm_create) "
            f"SELECT gen_random_uuid(), customer_id, destination_0->>'target', false, "
            f"{NOW} - k * interval '1 hour' FROM outdial_targets, generate_series(1, 3) k "
            f"WHERE {of_list} BETWEEN 15 AND 19"
            if not undo else "DELETE FROM contacts WHERE customer_id = $1",
            *([] if not undo else [ids["customer_id"]]))
    else:
        raise ValueError(case)


HELD_CASES = ("window", "retry", "dnc", "cap")


async def held_counts(url: str, outdial_id: uuid.UUID, cases: list[str], check: bool) -> None:
    """Part 2 over each held case alone, then all together; each made, vacuumed, measured and
    undone."""
    for chosen in [[case] for case in cases] + ([cases] if len(cases) > 1 else []):
        connection = await asyncpg.connect(url)
        try:
            began = time.perf_counter()
            for case in chosen:
                await held_case(connection, case, outdial_id, undo=False)
            await connection.execute("VACUUM ANALYZE outdial_targets")
            await connection.execute("VACUUM ANALYZE contacts")
            await connection.execute("VACUUM ANALYZE dnc_entries")
            made = time.perf_counter() - began
            await report_counts(url, outdial_id, " + ".join(chosen), check, made)
        finally:
            for case in chosen:
                await held_case(connection, case, outdial_id, undo=True)
            await connection.execute("VACUUM ANALYZE outdial_targets")
            await connection.close()


async def report_counts(
    url: str, outdial_id: uuid.UUID, name: str, check: bool, made: float = 0.0
) -> None:
    cpu = time.process_time()
    times, counts = await reason_counts_ms(url, outdial_id, runs=11)
    cpu = (time.process_time() - cpu) * 1000 / len(times)
    held = {k: v for k, v in counts.items() if v}
    print(f"waiting-reason counts, {name}: best {min(times):.1f} ms, median "
          f"{statistics.median(times):.1f} ms, first {times[0]:.1f} ms over {len(times)} reads; "
          f"{cpu:.1f} ms CPU of this process per read (goal < 100 ms; load average "
          f"{os.getloadavg()[0]:.1f}; case made in {made:.0f} s) {held}", flush=True)
    if check:
        started = time.perf_counter()
        expected = await every_row_counts(url, outdial_id)
        print(f"  asking every target: {(time.perf_counter() - started) * 1000:.0f} ms, "
              f"{'the same counts' if expected == counts else f'DIFFERENT: {expected}'}",
              flush=True)


async def main(args: Any) -> None:
    runs: dict[bool, list[float]] = {False: [], True: []}
    urls: dict[bool, str] = {}
    try:
        campaigns = {}
        for strategy in (False, True):
            urls[strategy] = url = await fresh_database()
            database = Database(url)
            await upgrade_database(database)
            await database.dispose()
            began = time.perf_counter()
            campaigns[strategy], outdial_id = await seed(
                url, args.targets * args.rounds, strategy=strategy,
                dnc=args.dnc if strategy else 0)
            print(f"seeded {'strategy' if strategy else 'plain'} database in "
                  f"{time.perf_counter() - began:.0f} s", flush=True)
        await waiting_of_ms(urls[True], outdial_id)
        for _ in range(args.rounds):
            for strategy in (False, True):
                rate = await attempts_per_second(urls[strategy], campaigns[strategy], args.seconds)
                runs[strategy].append(rate)
                print(f"{'strategy on' if strategy else 'plain':>12}: {rate:,.0f} attempts/s "
                      f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        for url in urls.values():
            await drop_database(url)
    plain, on = (sum(runs[k]) / len(runs[k]) for k in (False, True))
    print(f"mean plain {plain:,.0f}, strategy on {on:,.0f} attempts/s: ratio {on / plain:.2f} "
          f"(goal >= 0.8)")
    if not args.reason_targets:
        return
    url = await fresh_database()
    try:
        database = Database(url)
        await upgrade_database(database)
        await database.dispose()
        _, outdial_id = await seed(url, args.reason_targets, strategy=True, dnc=1000)
        if args.without_probes:
            await without_probes(url, outdial_id)
            return
        await report_counts(url, outdial_id, "a fresh list", args.check)
        if args.held_cases:
            await held_counts(url, outdial_id, args.held_cases.split(","), args.check)
    finally:
        await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--dnc", type=int, default=1_000_000)
    parser.add_argument("--reason-targets", type=int, default=1_000_000, help="0: skip part 2")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--check", action="store_true",
                        help="part 2: also count asking every target (slow) and compare")
    parser.add_argument("--without-probes", action="store_true",
                        help="part 2 without the rules that probe per row, and a bare count")
    parser.add_argument("--held-cases", default=",".join(HELD_CASES),
                        help="part 2: the held cases to measure, each alone then together "
                        "(comma-separated, of " + ", ".join(HELD_CASES) + "; empty: none)")
    asyncio.run(main(parser.parse_args()))
