"""A backlog through one webhook deliverer, in process, on PostgreSQL: N events already in the
outbox (a target's payload each), delivered to the webhooks bench's receiver; the deliverer's
CPU per 1,000 events and its PostgreSQL backends', the rows written, and whether the cost per
event grows with N (it did while every delivery passed through the pending index).

    .venv/bin/python bench/webhooks_backlog_bench.py [N] [--profile]   # cProfile of the deliverer
    KEEP=1 …   # keep the database (EXPLAIN the delivery statements afterwards)
"""
import asyncio
import cProfile
import os
import pstats
import sys
import time
import uuid

from sqlalchemy import func, select

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webhooks_bench as wb  # noqa: E402 - its receiver, seeding and server readings

from outdial.channels.secrets import SecretBox  # noqa: E402
from outdial.clock import SystemClock  # noqa: E402
from outdial.db import Database  # noqa: E402
from outdial.events.outbox import emit_many  # noqa: E402
from outdial.migrations import upgrade_database  # noqa: E402
from outdial.webhooks.delivery import Deliverer, DeliveryConfig  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
PROFILE = "--profile" in sys.argv

# A target as an outdialtarget_updated event carries it.
DATA = {
    "id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()), "outdial_id": str(uuid.uuid4()),
    "name": "", "detail": "", "data": "", "status": "progressing",
    "destination_0": {"type": "tel", "target": "+15550000001", "target_name": "", "name": "",
                      "detail": ""},
    **{f"destination_{n}": None for n in range(1, 5)},
    "try_count_0": 1, **{f"try_count_{n}": 0 for n in range(1, 5)},
    "tm_create": "2026-11-28 06:00:00.000000", "tm_update": "2026-11-28 06:00:01.000000",
    "tm_delete": None,
}


async def main() -> None:
    url = await wb.fresh_database()
    database = Database(url)
    receiver = wb.Receiver()
    try:
        await upgrade_database(database)
        campaign_id = await wb.seed(database, 1)
        async with database.transaction() as s:
            customer_id = (await s.get(wb.Campaign, campaign_id)).customer_id
        webhook_id = await wb.subscribe(database, customer_id, receiver.url)
        ddb = Database(url, role="outdial webhooks")
        deliverer = Deliverer(ddb, SystemClock(), SecretBox(wb.CHANNEL_KEY),
                              DeliveryConfig(allow_private_networks=True))
        async with database.transaction() as s:
            await emit_many(s, [("outdialtarget_updated", customer_id, DATA)])
        await deliverer.step()  # one event through first: connections up
        await deliverer.wait_idle()
        for start in range(0, N, 500):
            async with database.transaction() as s:
                await emit_many(s, [("outdialtarget_updated", customer_id, {**DATA, "n": k})
                                    for k in range(start, min(N, start + 500))])
        server = wb.ServerWork(url)
        before, t0, ot0 = await server.read(), time.monotonic(), os.times()
        profile = cProfile.Profile() if PROFILE else None
        if profile:
            profile.enable()
        done = 0
        while done < N + 1:
            await deliverer.step()
            await deliverer.wait_idle()
            async with database.transaction() as s:
                done = await s.scalar(
                    select(func.count()).select_from(wb.WebhookDelivery)
                    .where(wb.WebhookDelivery.status == "delivered")) or 0
        if profile:
            profile.disable()
        t1, after, ot1 = time.monotonic(), await server.read(), os.times()
        await ddb.dispose()
        receiver.close()
        after["totals"] = (await server.read())["totals"]
        user, system = (1e6 * (ot1.user - ot0.user) / N, 1e6 * (ot1.system - ot0.system) / N)
        print(f"{N} events in {t1 - t0:.2f} s; deliverer CPU {user + system:.0f} ms per 1,000"
              f" (user {user:.0f}, system {system:.0f}); load {os.getloadavg()[0]:.2f}")
        figures = wb.ServerWork.difference(before, after, N, "events")
        print({k: round(v, 1) for k, v in figures.items()})
        print(await server.tables())
        ids = [e for _, e, _ in receiver.arrivals]
        print("arrived", len(ids), "dups", len(ids) - len(set(ids)), "ordered", ids == sorted(ids))
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    finally:
        receiver.close()
        await database.dispose()
        if os.environ.get("KEEP"):
            print("kept", url)
        else:
            await wb.drop_database(url)

if __name__ == "__main__":
    asyncio.run(main())
