"""Engine throughput and footprint on PostgreSQL.

1. Sustained attempts/s (claim, instant simulated dial, record) with 1, 2 and 4 `outdial worker`
   processes over N targets with 1–3 destinations, then the full invariant audit.
2. The same claim/record SQL in a bare loop, no service around it: the database's limit.
3. One worker holding 10,000 simulated calls in flight: CPU time and peak RSS.

    .venv/bin/python bench/engine_bench.py [--targets 20000] [--workers 1,2,4] [--in-flight 10000]
"""

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select

from outdial.clock import SystemClock, utcnow
from outdial.db import Database
from outdial.dialers import OutcomeKind
from outdial.engine import repository as repo
from outdial.engine.audit import audit_campaign
from outdial.engine.repository import Closing
from outdial.migrations import upgrade_database
from outdial.models import Campaign, Campaigncall, Customer, Outdial, OutdialTarget, Outplan

ROOT = Path(__file__).resolve().parent.parent
OUTDIAL = str(Path(sys.executable).parent / "outdial")
ADMIN_URL = os.environ.get(
    "OUTDIAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PLAN = {"max_try_count_0": 2, "max_try_count_1": 1, "max_try_count_2": 1}


async def fresh_database() -> str:
    name = f"outdial_bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(ADMIN_URL)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return f"{ADMIN_URL.rpartition('/')[0]}/{name}"


async def drop_database(url: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    await connection.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    await connection.close()


async def seed(
    database: Database, targets: int, *, concurrency: int, try_interval: int = 0
) -> uuid.UUID:
    """A stopped campaign over `targets` targets with 1–3 destinations; returns its id."""
    now = utcnow()
    customer = Customer(id=uuid.uuid4(), name="bench", detail="", tm_create=now)
    outplan = Outplan(
        id=uuid.uuid4(),
        customer_id=customer.id,
        source=None,
        dial_timeout=30000,
        try_interval=try_interval,
        tm_create=now,
        **PLAN,
    )
    outdial = Outdial(id=uuid.uuid4(), customer_id=customer.id, tm_create=now)
    campaign = Campaign(
        id=uuid.uuid4(),
        customer_id=customer.id,
        status="stop",
        end_handle="stop",
        outplan_id=outplan.id,
        outdial_id=outdial.id,
        concurrency=concurrency,
        dial_rate=1_000_000,
        actions=[],
        tm_create=now,
    )
    outdial.campaign_id = campaign.id
    draw = random.Random(1)
    rows = []
    for n in range(targets):
        count = draw.randint(1, 3)
        rows.append(
            {
                "id": uuid.uuid4(),
                "customer_id": customer.id,
                "outdial_id": outdial.id,
                "name": "",
                "detail": "",
                "data": "",
                "status": "idle",
                "tm_create": now,
                **{f"try_count_{s}": 0 for s in range(5)},
                **{
                    f"destination_{s}": {"type": "tel", "target": f"+1555{n:06d}{s}"}
                    if s < count
                    else None
                    for s in range(5)
                },
            }
        )
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([outplan, outdial, campaign])
        await session.flush()
        for start in range(0, len(rows), 2000):
            await session.execute(insert(OutdialTarget.__table__), rows[start : start + 2000])
    return campaign.id


async def set_status(database: Database, campaign_id: uuid.UUID, status: str) -> None:
    async with database.transaction() as session:
        (await session.get(Campaign, campaign_id)).status = status  # type: ignore[union-attr]


async def status_of(database: Database, campaign_id: uuid.UUID) -> str:
    async with database.transaction() as session:
        return (await session.get(Campaign, campaign_id)).status  # type: ignore[union-attr]


def start_workers(url: str, count: int, **settings: Any) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "OUTDIAL_DATABASE_URL": url,
        "OUTDIAL_LOG_LEVEL": "warning",
        **{f"OUTDIAL_{k.upper()}": str(v) for k, v in settings.items()},
    }
    return [subprocess.Popen([OUTDIAL, "worker"], env=env) for _ in range(count)]


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


# No `no_answer`: it rings for the whole dial_timeout, and these dials must be instant.
INSTANT = {
    "sim_seed": 1,
    "sim_p_no_answer": 0,
    "sim_ring_min_ms": 0,
    "sim_ring_max_ms": 0,
    "sim_talk_min_ms": 0,
    "sim_talk_max_ms": 0,
    "engine_claim_batch": 500,
    "engine_poll_seconds": 0.05,
}


async def throughput(targets: int, workers: int) -> dict[str, Any]:
    url = await fresh_database()
    database = Database(url)
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, targets, concurrency=100_000)
        processes = start_workers(url, workers, **INSTANT)
        await asyncio.sleep(3)  # let the workers import and connect before the clock starts
        await set_status(database, campaign_id, "run")
        while await status_of(database, campaign_id) != "stop":
            await asyncio.sleep(0.2)
        stop_workers(processes)
        async with database.transaction() as session:
            first, last, attempts = (
                await session.execute(
                    select(
                        func.min(Campaigncall.tm_create),
                        func.max(Campaigncall.tm_end),
                        func.count(),
                    ).where(Campaigncall.campaign_id == campaign_id)
                )
            ).one()
            problems = await audit_campaign(session, campaign_id)
        seconds = (last - first).total_seconds()
        return {
            "workers": workers,
            "attempts": attempts,
            "seconds": seconds,
            "per_second": attempts / seconds,
            "problems": len(problems),
            "sample": problems[:3],
        }
    finally:
        await database.dispose()
        await drop_database(url)


async def bare_loop(targets: int) -> dict[str, Any]:
    """Claim 500, close them at once as answered/busy, repeat: the engine's SQL and nothing else."""
    url = await fresh_database()
    database = Database(url)
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, targets, concurrency=100_000)
        await set_status(database, campaign_id, "run")
        clock, draw, attempts = SystemClock(), random.Random(1), 0
        started = time.perf_counter()
        while True:
            async with database.transaction() as session:
                claimed = await repo.take_turn(
                    session,
                    campaign_id,
                    worker_id="bare",
                    now=clock.now(),
                    lease_seconds=30,
                    most=500,
                )
            if not claimed and await status_of(database, campaign_id) == "stop":
                break
            closings = [
                Closing(
                    c.campaigncall_id,
                    c.target_id,
                    OutcomeKind.ANSWERED if draw.random() < 0.55 else OutcomeKind.BUSY,
                    clock.now(),
                )
                for c in claimed
            ]
            async with database.transaction() as session:
                await repo.record_outcomes(session, closings, [], "bare", clock.now())
            attempts += len(claimed)
        seconds = time.perf_counter() - started
        return {"attempts": attempts, "seconds": seconds, "per_second": attempts / seconds}
    finally:
        await database.dispose()
        await drop_database(url)


def cpu_and_peak(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system) and peak RSS in KiB of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )
    return cpu, peak


async def in_flight(calls: int, hold: float) -> dict[str, Any]:
    url = await fresh_database()
    database = Database(url)
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, calls, concurrency=calls)
        [worker] = start_workers(
            url,
            1,
            sim_seed=1,
            sim_p_answered=1,
            sim_p_busy=0,
            sim_p_no_answer=0,
            sim_p_rejected=0,
            sim_p_failed=0,
            sim_p_unreachable=0,
            sim_ring_min_ms=0,
            sim_ring_max_ms=0,
            sim_talk_min_ms=3_600_000,
            sim_talk_max_ms=3_600_000,
            engine_claim_batch=500,
            engine_max_in_flight=calls,
            engine_shutdown_grace_seconds=0,
        )
        await asyncio.sleep(3)
        cpu_idle, _ = cpu_and_peak(worker.pid)
        await set_status(database, campaign_id, "run")
        started = time.perf_counter()
        while True:
            async with database.transaction() as session:
                up = await session.scalar(
                    select(func.count())
                    .select_from(Campaigncall)
                    .where(Campaigncall.status != "done")
                )
            if up >= calls:
                break
            await asyncio.sleep(0.2)
        ramp = time.perf_counter() - started
        cpu_ramped, _ = cpu_and_peak(worker.pid)
        await asyncio.sleep(hold)
        cpu_held, peak = cpu_and_peak(worker.pid)
        stop_workers([worker])
        return {
            "calls": calls,
            "ramp_seconds": ramp,
            "ramp_cpu": cpu_ramped - cpu_idle,
            "hold_seconds": hold,
            "hold_cpu": cpu_held - cpu_ramped,
            "peak_rss_mib": peak / 1024,
        }
    finally:
        await database.dispose()
        await drop_database(url)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--in-flight", type=int, default=10000)
    parser.add_argument("--hold", type=float, default=30.0)
    args = parser.parse_args()

    bare = await bare_loop(args.targets)
    print(
        f"bare claim/record loop: {bare['attempts']} attempts in {bare['seconds']:.1f} s "
        f"= {bare['per_second']:.0f}/s",
        flush=True,
    )
    for count in (int(w) for w in args.workers.split(",")):
        run = await throughput(args.targets, count)
        print(
            f"{count} worker(s): {run['attempts']} attempts in {run['seconds']:.1f} s = "
            f"{run['per_second']:.0f}/s ({run['per_second'] / bare['per_second']:.2f} of bare); "
            f"invariant violations: {run['problems']} {run['sample']}",
            flush=True,
        )
    if args.in_flight:
        held = await in_flight(args.in_flight, args.hold)
        print(
            f"one worker, {held['calls']} calls in flight: reached in {held['ramp_seconds']:.1f} s "
            f"({held['ramp_cpu']:.1f} s CPU); holding them {held['hold_seconds']:.0f} s cost "
            f"{held['hold_cpu']:.1f} s CPU; peak RSS {held['peak_rss_mib']:.0f} MiB",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
