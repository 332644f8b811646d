"""Several `outdial worker` processes on one PostgreSQL: nothing lost, doubled or rushed, even
when one of them is killed mid-campaign."""

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from outdial.clock import utcnow
from outdial.db import Database
from outdial.engine.audit import audit_campaign
from outdial.migrations import upgrade_database
from outdial.models import Campaign, Campaigncall, OutdialTarget
from tests import databases
from tests.engine_support import make_campaign, tel

pytestmark = pytest.mark.slow
OUTDIAL = str(Path(sys.executable).parent / "outdial")
LEASE_SECONDS = 2.0


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    await databases.truncate_postgres(postgres_url)
    db = Database(postgres_url)
    await upgrade_database(db)
    yield db
    await db.dispose()


class Workers:
    """`outdial worker` subprocesses with short simulated calls and short leases."""

    def __init__(self, url: str, logs: Path, **settings: Any) -> None:
        self.env = {
            **os.environ,
            "OUTDIAL_DATABASE_URL": url,
            "OUTDIAL_LOG_LEVEL": "warning",
            "OUTDIAL_ENGINE_LEASE_SECONDS": str(LEASE_SECONDS),
            "OUTDIAL_ENGINE_POLL_SECONDS": "0.05",
            "OUTDIAL_SIM_SEED": "7",
            "OUTDIAL_SIM_RING_MIN_MS": "0",
            "OUTDIAL_SIM_RING_MAX_MS": "40",
            "OUTDIAL_SIM_TALK_MIN_MS": "0",
            "OUTDIAL_SIM_TALK_MAX_MS": "40",
            **{f"OUTDIAL_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker-{len(self.processes)}.log", "wb") as log:
            process = subprocess.Popen([OUTDIAL, "worker"], env=self.env, stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def assert_running(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None and process.returncode != -signal.SIGKILL:
                log = (self.logs / f"worker-{index}.log").read_text()
                raise AssertionError(f"worker {index} exited with {process.returncode}:\n{log}")

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Workers] = []

    def make(**settings: Any) -> Workers:
        made.append(Workers(postgres_url, tmp_path, **settings))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()


async def seed_campaign(database: Database, targets: int, **options: Any) -> Any:
    """A stopped campaign over `targets` targets with 1–3 destinations each, bulk-inserted."""
    from outdial.clock import SystemClock

    clock: Any = SystemClock()
    scenario = await make_campaign(database, clock, status="stop", **options)
    draw = random.Random(3)
    now = utcnow()
    rows = []
    for n in range(targets):
        count = draw.randint(1, 3)
        rows.append(
            {
                "id": uuid.uuid4(),
                "customer_id": scenario.customer_id,
                "outdial_id": scenario.outdial_id,
                "name": "",
                "detail": "",
                "data": f"row {n}",
                "status": "idle",
                "tm_create": now,
                "tm_update": now,
                **{f"try_count_{s}": 0 for s in range(5)},
                **{
                    f"destination_{s}": tel(f"+1555{n:06d}{s}") if s < count else None
                    for s in range(5)
                },
            }
        )
    async with database.transaction() as session:
        await session.execute(insert(OutdialTarget.__table__), rows)
    return scenario


async def wait_for(check: Any, seconds: float, group: "Workers") -> None:
    """Bounded polling of the workers' progress in the database; a worker that died of itself
    fails the test at once, with its log."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        group.assert_running()
        assert asyncio.get_running_loop().time() < deadline, "the workers did not get there in time"
        await asyncio.sleep(0.2)


async def campaign_stopped(database: Database, campaign_id: uuid.UUID) -> bool:
    async with database.transaction() as session:
        return (await session.get(Campaign, campaign_id)).status == "stop"  # type: ignore[union-attr]


PLAN = {
    "max_try_counts": (2, 1, 1, 0, 0),
    "try_interval": 100,
    "dial_timeout": 1000,
    "concurrency": 150,
    "dial_rate": 2000,
    "end_handle": "stop",
}


async def test_four_workers_dial_every_target_exactly_as_planned(
    database: Database, workers: Any
) -> None:
    scenario = await seed_campaign(database, 1000, **PLAN)
    group = workers()
    for _ in range(4):
        group.start()
    await scenario.set_status("run")

    await wait_for(lambda: campaign_stopped(database, scenario.campaign_id), 180, group)
    async with database.transaction() as session:
        assert await audit_campaign(session, scenario.campaign_id) == []
        by_worker = await session.execute(
            select(Campaigncall.worker_id, func.count()).group_by(Campaigncall.worker_id)
        )
        assert len(by_worker.all()) == 4  # every worker took a share
    group.stop_all()
    assert [p.returncode for p in group.processes] == [0, 0, 0, 0]  # SIGTERM is a clean exit


async def test_a_killed_workers_attempts_are_taken_over_after_their_lease(
    database: Database, workers: Any
) -> None:
    scenario = await seed_campaign(database, 600, **PLAN)
    # Only a reaper writes `failed`, so the dead worker's attempts are easy to tell apart.
    group = workers(sim_p_failed=0)
    victim = group.start()
    group.start()
    await scenario.set_status("run")

    async def under_way() -> bool:
        """200 attempts done and the victim holding some in flight: on a busy machine one worker
        may start late enough that the other has done the first 200 alone."""
        async with database.transaction() as session:
            done = await session.scalar(
                select(func.count()).select_from(Campaigncall).where(Campaigncall.status == "done"))
            victims_in_flight = await session.scalar(
                select(func.count()).select_from(Campaigncall).where(
                    Campaigncall.status != "done",
                    Campaigncall.worker_id.like(f"%:{victim.pid}:%")))
            return (done or 0) >= 200 and (victims_in_flight or 0) > 0

    await wait_for(under_way, 120, group)
    victim.send_signal(signal.SIGKILL)
    killed_at = utcnow()
    victim.wait()
    group.start()

    await wait_for(lambda: campaign_stopped(database, scenario.campaign_id), 180, group)
    async with database.transaction() as session:
        assert await audit_campaign(session, scenario.campaign_id) == []
        victim_ids = {
            w
            for w in await session.scalars(select(Campaigncall.worker_id).distinct())
            if w.split(":")[1] == str(victim.pid)
        }
        assert len(victim_ids) == 1
        taken_over = list(
            await session.scalars(
                select(Campaigncall).where(
                    Campaigncall.worker_id.in_(victim_ids), Campaigncall.outcome == "failed"
                )
            )
        )
    assert taken_over, "the killed worker had attempts in flight"
    # Its last renewal was at most a heartbeat before the kill; nobody moved before the lease ran out.
    earliest = killed_at + dt.timedelta(seconds=LEASE_SECONDS - LEASE_SECONDS / 3 - 0.2)
    assert all(c.tm_end >= earliest for c in taken_over)
    assert all(c.result == "fail" for c in taken_over)
