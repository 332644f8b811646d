"""The outbox's cost to the engine: attempts/s with every change written as an event, against
the same run with emission switched off, and the events written per second.

One in-process engine (the claim, an instant dial that always answers, the record) works a
campaign of N targets with 1–3 destinations to its end, on a fresh PostgreSQL database or
SQLite file per run; runs alternate on/off so that a change in the machine's load hits both.
CPU seconds per 1,000 attempts (this process's) are given beside wall-clock rates: on a shared
machine they are the steadier figure.

    .venv/bin/python bench/events_bench.py [--targets 5000] [--rounds 2] [--db postgresql,sqlite]
"""

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from engine_bench import drop_database, fresh_database, seed, set_status, status_of
from outdial.clock import SystemClock
from outdial.db import Database, Limits
from outdial.dialers import MockDialer, Outcome, OutcomeKind
from outdial.engine import Engine, EngineConfig
from outdial.events.outbox import EVENTS, emission_disabled
from outdial.migrations import upgrade_database
from outdial.models import Campaigncall, OutdialTarget

SLOTS = [getattr(OutdialTarget, f"destination_{n}") for n in range(5)]
ADDRESS_KEYS = {"target_name": "", "name": "", "detail": ""}


async def complete_addresses(database: Database) -> None:
    """Addresses with every key, as the API stores them (the engine bench's seed writes only
    type and target, which the API's target schema, hence the event payload, refuses)."""
    async with database.transaction() as session:
        rows = (await session.execute(select(OutdialTarget.id, *SLOTS))).all()
        for row in rows:
            values = {f"destination_{n}": {**ADDRESS_KEYS, **d} for n, d in enumerate(row[1:]) if d}
            await session.execute(
                update(OutdialTarget).where(OutdialTarget.id == row.id).values(**values))


async def one_run(kind: str, targets: int, emit: bool) -> dict[str, Any]:
    if kind == "postgresql":
        url = await fresh_database()
        workdir = None
    else:
        workdir = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{Path(workdir.name) / 'bench.db'}"
    # A loaded machine can hold SQLite's writer for seconds: the bench waits rather than fails.
    database = Database(url, pool_size=4, limits=Limits(lock_timeout=60))
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, targets, concurrency=400)
        await complete_addresses(database)
        engine = Engine(
            database, MockDialer(lambda _: Outcome(OutcomeKind.ANSWERED)), SystemClock(),
            EngineConfig(poll_seconds=0.01, claim_batch=200),
        )
        await set_status(database, campaign_id, "run")
        stop = asyncio.Event()
        switch = contextlib.nullcontext() if emit else emission_disabled()
        with switch:
            cpu, wall = time.process_time(), time.perf_counter()
            runner = asyncio.create_task(engine.run(stop))
            while await status_of(database, campaign_id) != "stop":
                await asyncio.sleep(0.05)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stop.set()
            await runner
        async with database.transaction() as session:
            attempts = await session.scalar(select(func.count()).select_from(Campaigncall))
            events = await session.scalar(select(func.count()).select_from(EVENTS))
        return {"db": kind, "emit": emit, "attempts": attempts, "events": events,
                "seconds": wall, "attempts_per_s": attempts / wall,
                "events_per_s": events / wall, "cpu_ms_per_1000": cpu * 1e6 / attempts}
    finally:
        await database.dispose()
        if kind == "postgresql":
            await drop_database(url)
        elif workdir is not None:
            workdir.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", default="postgresql,sqlite")
    args = parser.parse_args()
    print("| db | events | attempts | events written | s | attempts/s | events/s "
          "| CPU ms / 1,000 attempts |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    results: list[dict[str, Any]] = []
    for kind in args.db.split(","):
        for _ in range(args.rounds):
            for emit in (True, False):
                r = await one_run(kind, args.targets, emit)
                results.append(r)
                print(f"| {kind} | {'on' if emit else 'off'} | {r['attempts']} | {r['events']} "
                      f"| {r['seconds']:.1f} | {r['attempts_per_s']:.0f} "
                      f"| {r['events_per_s']:.0f} | {r['cpu_ms_per_1000']:.0f} |", flush=True)
    print()
    for kind in args.db.split(","):
        def best(emit: bool, key: str) -> float:
            values = [r[key] for r in results if r["db"] == kind and r["emit"] is emit]
            return max(values) if key == "attempts_per_s" else min(values)
        on, off = best(True, "attempts_per_s"), best(False, "attempts_per_s")
        cpu_on, cpu_off = best(True, "cpu_ms_per_1000"), best(False, "cpu_ms_per_1000")
        print(f"{kind}: best attempts/s on {on:.0f}, off {off:.0f} ({(on / off - 1) * 100:+.0f} %); "
              f"best CPU ms per 1,000 attempts on {cpu_on:.0f}, off {cpu_off:.0f} "
              f"({(cpu_on / cpu_off - 1) * 100:+.0f} %)")


if __name__ == "__main__":
    asyncio.run(main())
