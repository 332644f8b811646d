"""Several `outdial worker` processes on one PostgreSQL: nothing lost, doubled or rushed, even
when one of them is killed mid-campaign, or frozen while it holds a campaign's lock."""

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from outdial.clock import SystemClock, utcnow
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
            "OUTDIAL_MAX_CLOCK_OFFSET_SECONDS": str(LEASE_SECONDS / 4),
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
    victim.wait()
    # The dead worker's leases as it left them: on a busy machine its last renewal may have come
    # late, so the bound is each attempt's own lease, not the time of the kill.
    async with database.transaction() as session:
        leases = dict((await session.execute(
            select(Campaigncall.id, Campaigncall.tm_lease_expire).where(
                Campaigncall.status != "done",
                Campaigncall.worker_id.like(f"%:{victim.pid}:%")))).all())
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
    # Nobody moved before the lease ran out (one whose lease had run out before the snapshot may
    # already have been taken over then).
    held = [c for c in taken_over if leases.get(c.id) is not None]
    assert held, "the killed worker held leases when it died"
    assert all(c.tm_end > leases[c.id] for c in held)
    assert all(c.result == "fail" for c in taken_over)


# -- a hung worker -------------------------------------------------------------------------------

IDLE_IN_TRANSACTION_SECONDS = 2.0


async def campaign_row_is_locked(database: Database, campaign_id: uuid.UUID) -> bool:
    async with database.engine.connect() as connection:
        try:
            await connection.execute(
                text("SELECT 1 FROM campaigns WHERE id = :id FOR UPDATE NOWAIT"), {"id": campaign_id}
            )
        except DBAPIError as error:
            assert getattr(error.orig, "sqlstate", None) == "55P03", error
            return True
        finally:
            await connection.rollback()
    return False


async def in_flight_of(database: Database, pid: int) -> int:
    async with database.transaction() as session:
        workers = await session.scalars(
            select(Campaigncall.worker_id).where(Campaigncall.status != "done").distinct()
        )
        mine = [w for w in workers if w.split(":")[1] == str(pid)]
        return (
            await session.scalar(
                select(func.count())
                .select_from(Campaigncall)
                .where(Campaigncall.worker_id.in_(mine), Campaigncall.status != "done")
            )
            or 0
        )


async def session_ended(database: Database, pid: int) -> dt.datetime:
    """When the worker's session idle in its transaction is gone (polled every 50 ms)."""
    async with database.engine.connect() as connection:
        while True:
            left = await connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND state = 'idle in transaction'"), {"name": f"outdial engine {pid}"})
            await connection.rollback()  # a transaction sees one snapshot of pg_stat_activity
            if not left:
                return utcnow()
            await asyncio.sleep(0.05)


async def resumed_without(
    database: Database, campaign_id: uuid.UUID, frozen: int, other: int, frozen_at: dt.datetime
) -> bool:
    """The frozen worker holds no attempt any more and the other one dials: 100 attempts, or
    the rest of the list (on a slow machine the list may be nearly done by the time the worker
    is caught; the campaign cannot end while the frozen worker still holds attempts)."""
    if await in_flight_of(database, frozen):
        return False
    async with database.transaction() as session:
        workers = await session.scalars(select(Campaigncall.worker_id).distinct())
        mine = [w for w in workers if w.split(":")[1] == str(other)]
        started = await session.scalar(
            select(func.count())
            .select_from(Campaigncall)
            .where(Campaigncall.worker_id.in_(mine), Campaigncall.tm_create > frozen_at)
        )
    return (started or 0) >= 100 or bool(started) and await campaign_stopped(database, campaign_id)


async def stall_report(database: Database, group: "Workers", frozen: int) -> str:
    """What the workers' sessions wait on, and how far each worker got: said when the campaign
    does not resume, so that a stall on a slow machine can be told from a slow machine."""
    async with database.engine.connect() as connection:
        sessions = (await connection.execute(text(
            "SELECT application_name, state, wait_event_type, wait_event, "
            "now() - xact_start AS open_for, left(query, 120) FROM pg_stat_activity "
            "WHERE application_name LIKE 'outdial%' AND state <> 'idle'"))).all()
        calls = (await connection.execute(text(
            "SELECT split_part(worker_id, ':', 2), status, count(*) FROM campaigncalls "
            "GROUP BY 1, 2 ORDER BY 1, 2"))).all()
    logs = [(group.logs / f"worker-{n}.log").read_text()[-2000:] for n in range(len(group.processes))]
    return "\n".join([f"frozen worker {frozen}", *map(str, sessions), *map(str, calls), *logs])


async def holds_the_campaign(database: Database, pid: int, campaign_id: uuid.UUID) -> bool:
    """Whether the worker's session sits idle inside the transaction that locked the campaign's
    row (the row's xmax is that transaction's id)."""
    async with database.engine.connect() as connection:
        found = await connection.scalar(text(
            "SELECT count(*) FROM campaigns c JOIN pg_stat_activity a ON a.backend_xid = c.xmax "
            "WHERE c.id = :id AND a.application_name = :name "
            "AND a.state = 'idle in transaction'"),
            {"id": campaign_id, "name": f"outdial engine {pid}"})
    return bool(found)


async def freeze_while_holding_the_campaign(
    database: Database, worker: subprocess.Popen[bytes], campaign_id: uuid.UUID
) -> dt.datetime:
    """SIGSTOP the worker at a moment it holds the campaign's row lock and attempts in flight:
    stopped at random, it is caught inside its claim transaction often enough."""
    draw = random.Random(5)
    for _ in range(300):
        worker.send_signal(signal.SIGSTOP)
        stopped_at = utcnow()
        await asyncio.sleep(0.02)  # its last statement reaches the server
        if (
            await holds_the_campaign(database, worker.pid, campaign_id)
            and await campaign_row_is_locked(database, campaign_id)
            and await in_flight_of(database, worker.pid)
        ):
            # Still idle a moment later: on a loaded machine the server may not yet have read
            # the bytes the worker wrote just before it stopped. Caught in the middle of a
            # message, its session waits on the client ('active', ClientRead), where no
            # timeout of the server applies: that case is not this test's (see the README).
            await asyncio.sleep(0.3)
            if await holds_the_campaign(database, worker.pid, campaign_id):
                return stopped_at
        worker.send_signal(signal.SIGCONT)
        await asyncio.sleep(draw.uniform(0.0, 0.05))
    raise AssertionError("never caught the worker holding the campaign's lock")


async def test_a_frozen_worker_never_freezes_its_campaign_or_the_api(
    database: Database, workers: Any, postgres_url: str, tmp_path: Path
) -> None:
    from outdial.auth.service import AuthService, Permission
    from tests.e2e.test_serve import Server

    scenario = await seed_campaign(database, 1500, **PLAN)
    server = Server(
        {**os.environ, "OUTDIAL_DATABASE_URL": postgres_url, "OUTDIAL_ENGINE_IN_PROCESS": "false",
         "OUTDIAL_ADMIN_PASSWORD": "admin-pw-123"},
        tmp_path / "serve.log",
    )
    try:
        async with database.transaction() as session:  # an admin of the campaign's customer
            await AuthService(session, SystemClock()).create_agent(
                scenario.customer_id, "ops", "ops-password-1", Permission.ADMIN
            )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            login = await http.post("/auth/login", json={"username": "ops", "password": "ops-password-1"})
            http.params = httpx.QueryParams({"token": login.json()["token"]})
            await frozen_worker_scenario(database, workers, scenario, http)
    finally:
        server.stop()


async def frozen_worker_scenario(
    database: Database, workers: Any, scenario: Any, http: httpx.AsyncClient
) -> None:
    # Only a reaper writes `failed`, so the frozen worker's attempts are easy to tell apart.
    group = workers(sim_p_failed=0, engine_idle_in_transaction_seconds=IDLE_IN_TRANSACTION_SECONDS)
    victim, other = group.start(), group.start()
    await scenario.set_status("run")

    async def under_way() -> bool:
        async with database.transaction() as session:
            done = select(func.count()).select_from(Campaigncall).where(Campaigncall.status == "done")
            return (await session.scalar(done) or 0) >= 50

    await wait_for(under_way, 120, group)
    campaign = f"/v1.0/campaigns/{scenario.campaign_id}"
    reads = ["/v1.0/outdials", f"/v1.0/outdials/{scenario.outdial_id}/targets", campaign,
             f"{campaign}/campaigncalls", "/v1.0/campaigncalls"]
    # A server that has been serving a while: its pools hold open connections.
    await asyncio.gather(*[http.get(path) for path in reads * 4],
                         *[http.put(f"{campaign}/status", json={"status": "run"}) for _ in range(20)])

    frozen_at = await freeze_while_holding_the_campaign(database, victim, scenario.campaign_id)
    try:
        slowest: dict[str, float] = {}

        async def timed(method: str, path: str, **kwargs: Any) -> httpx.Response:
            started = time.perf_counter()
            response = await http.request(method, path, **kwargs)
            took = time.perf_counter() - started
            slowest[path] = max(slowest.get(path, 0.0), took)
            return response

        # Status changes wait for the campaign's lock, which the frozen worker holds until the
        # server ends its session: they answer (200, or 503 to retry) instead of hanging, and
        # never hold up the reads.
        changes = [
            asyncio.create_task(timed("PUT", f"{campaign}/status", json={"status": "run"}))
            for _ in range(25)
        ]
        await asyncio.sleep(0.3)  # they reach the server and queue on the lock
        released = asyncio.create_task(session_ended(database, victim.pid))
        while not await resumed_without(
            database, scenario.campaign_id, victim.pid, other.pid, frozen_at
        ):
            if (utcnow() - frozen_at).total_seconds() > 120:
                raise AssertionError("the campaign did not resume:\n"
                                     + await stall_report(database, group, victim.pid))
            group.assert_running()
            for path in reads:
                response = await timed("GET", path)
                assert response.status_code == 200, response.text
            health = await timed("GET", "/health")
            assert health.status_code == 200, health.text
            await asyncio.sleep(0.1)
        for change in await asyncio.gather(*changes):
            assert change.status_code in (200, 503), change.text
            if change.status_code == 503:
                assert change.json()["error"]["reason"] == "SERVICE_UNAVAILABLE"
        assert all(slowest[path] < 1 for path in [*reads, "/health"]), slowest
        # Bounded, if not by one lock timeout: 25 requests queue on one row, and PostgreSQL
        # counts the lock timeout per wait (the row's queue, then its holder), for each of the
        # three rows a `run` locks (campaign, outplan, outdial); plus the pool's 3 s.
        assert slowest[f"{campaign}/status"] < 3 + 3 * 2 * 3 + 3
        # The server ended the frozen worker's transaction, and with it its locks.
        assert (await released - frozen_at).total_seconds() < IDLE_IN_TRANSACTION_SECONDS + 2
    finally:
        victim.send_signal(signal.SIGCONT)

    # The frozen worker wakes up to find its attempts taken over: its late outcomes are dropped,
    # and it works on beside the other one until the campaign ends.
    await wait_for(lambda: campaign_stopped(database, scenario.campaign_id), 180, group)
    group.stop_all()
    assert [p.returncode for p in group.processes] == [0, 0]
    async with database.transaction() as session:
        assert await audit_campaign(session, scenario.campaign_id) == []
        calls = list(await session.scalars(select(Campaigncall)))
    by_pid: dict[str, list[Campaigncall]] = {}
    for call in calls:
        by_pid.setdefault(call.worker_id.split(":")[1], []).append(call)
    taken_over = [c for c in by_pid[str(victim.pid)] if c.outcome == "failed"]
    assert taken_over, "the frozen worker had attempts in flight"
    # (Some may have been taken over earlier: stopped and woken again and again until caught,
    # the worker may have missed a renewal before the freeze that counts.)
    assert any(c.tm_end > frozen_at for c in taken_over)
    assert all(c.result == "fail" for c in taken_over)
    resumed = [c for c in by_pid[str(other.pid)] if c.tm_create > frozen_at]
    assert resumed, "the other worker never dialed"
