"""Helpers for engine tests: a migrated database, campaigns made with the ORM, scripted dialers."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.dialers import Attempt, MockDialer, Outcome, OutcomeKind
from outdial.engine import Engine, EngineConfig
from outdial.migrations import upgrade_database
from outdial.models import Campaign, Campaigncall, Customer, Outdial, OutdialTarget, Outplan


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await upgrade_database(db)
    yield db
    await db.dispose()


def tel(number: str) -> dict[str, str]:
    return {"type": "tel", "target": number, "target_name": "", "name": "", "detail": ""}


@dataclass
class Scenario:
    database: Database
    clock: FakeClock
    customer_id: uuid.UUID
    outplan_id: uuid.UUID
    outdial_id: uuid.UUID
    campaign_id: uuid.UUID
    target_ids: list[uuid.UUID] = field(default_factory=list)

    def new_target(self, *destinations: dict[str, Any] | None, data: str = "") -> OutdialTarget:
        now = self.clock.now()
        target = OutdialTarget(
            id=uuid.uuid4(),
            customer_id=self.customer_id,
            outdial_id=self.outdial_id,
            name="",
            detail="",
            data=data,
            status="idle",
            tm_create=now,
            tm_update=now,
            **{f"destination_{n}": d for n, d in enumerate(destinations)},
        )
        self.target_ids.append(target.id)
        return target

    async def add_target(self, *destinations: dict[str, Any] | None, data: str = "") -> uuid.UUID:
        target = self.new_target(*destinations, data=data)
        async with self.database.transaction() as session:
            session.add(target)
        return target.id

    async def target(self, target_id: uuid.UUID) -> OutdialTarget:
        async with self.database.transaction() as session:
            row = await session.get(OutdialTarget, target_id)
            assert row is not None
            return row

    async def calls(self, target_id: uuid.UUID | None = None) -> list[Campaigncall]:
        query = select(Campaigncall).where(Campaigncall.campaign_id == self.campaign_id)
        if target_id is not None:
            query = query.where(Campaigncall.outdial_target_id == target_id)
        async with self.database.transaction() as session:
            return list(await session.scalars(query.order_by(Campaigncall.tm_create)))

    async def campaign(self) -> Campaign:
        async with self.database.transaction() as session:
            row = await session.get(Campaign, self.campaign_id)
            assert row is not None
            return row

    async def update(self, model: type, row_id: uuid.UUID, **values: Any) -> None:
        async with self.database.transaction() as session:
            row = await session.get(model, row_id)
            for key, value in values.items():
                setattr(row, key, value)

    async def set_status(self, status: str) -> None:
        await self.update(Campaign, self.campaign_id, status=status)


async def make_campaign(
    database: Database,
    clock: FakeClock,
    *,
    targets: Sequence[Sequence[dict[str, Any] | None]] = (),
    max_try_counts: Sequence[int] = (1, 0, 0, 0, 0),
    try_interval: int = 60000,
    dial_timeout: int = 30000,
    concurrency: int = 10,
    dial_rate: int = 10,
    end_handle: str = "stop",
    status: str = "run",
    actions: list[Any] | None = None,
    outdial_data: str = "",
    source: dict[str, Any] | None = None,
) -> Scenario:
    now = clock.now()
    customer = Customer(id=uuid.uuid4(), name="acme", detail="", tm_create=now)
    outplan = Outplan(
        id=uuid.uuid4(),
        customer_id=customer.id,
        source=source or tel("+15550000000"),
        dial_timeout=dial_timeout,
        try_interval=try_interval,
        tm_create=now,
        tm_update=now,
        **{f"max_try_count_{n}": m for n, m in enumerate(max_try_counts)},
    )
    outdial = Outdial(
        id=uuid.uuid4(), customer_id=customer.id, data=outdial_data, tm_create=now, tm_update=now
    )
    campaign = Campaign(
        id=uuid.uuid4(),
        customer_id=customer.id,
        type="call",
        status=status,
        end_handle=end_handle,
        actions=actions or [],
        outplan_id=outplan.id,
        outdial_id=outdial.id,
        concurrency=concurrency,
        dial_rate=dial_rate,
        tm_create=now,
        tm_update=now,
    )
    outdial.campaign_id = campaign.id
    scenario = Scenario(database, clock, customer.id, outplan.id, outdial.id, campaign.id)
    # One transaction, so that an engine already running never sees the campaign without targets.
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([outplan, outdial])
        await session.flush()
        session.add_all([scenario.new_target(*d) for d in targets])
        session.add(campaign)
    return scenario


def scripted_dialer(script: dict[str, list[OutcomeKind]] | None = None) -> MockDialer:
    """Each destination's outcomes in order; answered once its script runs out."""
    remaining = {k: list(v) for k, v in (script or {}).items()}

    def handle(attempt: Attempt) -> Outcome:
        queue = remaining.get(attempt.destination["target"], [])
        return Outcome(queue.pop(0) if queue else OutcomeKind.ANSWERED)

    return MockDialer(handle)


class HangingDialer(MockDialer):
    """Attempts that never end by themselves until `release` says how they end."""

    def __init__(self) -> None:
        self.release_outcome = OutcomeKind.ANSWERED
        self.released = asyncio.Event()

        async def handle(_: Attempt) -> Outcome:
            await self.released.wait()
            return Outcome(self.release_outcome)

        super().__init__(handle)

    def release(self, outcome: OutcomeKind = OutcomeKind.ANSWERED) -> None:
        self.release_outcome = outcome
        self.released.set()


def make_engine(database: Database, dialer: Any, clock: FakeClock, **config: Any) -> Engine:
    return Engine(database, dialer, clock, EngineConfig(**config))


async def run_round(engine: Engine) -> int:
    """Claim, let every attempt end, and write the outcomes down; returns attempts started."""
    started = await engine.step()
    await engine.wait_dials()
    await engine.record()
    return started


async def eventually(condition: Callable[[], bool], attempts: int = 500) -> None:
    """Bounded wait for work done by other tasks (database I/O), never for clock time."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def advance(clock: FakeClock, seconds: float) -> None:
    """Move the clock once the attempts just started have reached their waits on it."""
    for _ in range(10):  # each attempt is a few tasks deep before it sleeps on the clock
        await asyncio.sleep(0)
    clock.advance(seconds)
