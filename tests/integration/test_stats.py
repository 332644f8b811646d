"""Outdial statistics equal a direct count of the rows."""

import datetime as dt
import uuid
from typing import Any

import pytest

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import asyncpg

from outdial.clock import FakeClock
from outdial.db import Database
from outdial.models import Campaign, Campaigncall, Outdial, OutdialTarget, Outplan
from outdial.outdials.stats import _waiting_query
from tests.conftest import Api


async def direct_count(app: Any, outdial_id: uuid.UUID, outplan: Outplan, now: dt.datetime) -> dict:
    async with app.state.database.sessions() as session:
        targets = (await session.scalars(select(OutdialTarget).where(
            OutdialTarget.outdial_id == outdial_id, OutdialTarget.tm_delete.is_(None)))).all()
        answered_ids = set((await session.scalars(select(Campaigncall.outdial_target_id).where(
            Campaigncall.result == "success"))).all())
    cutoff = now - dt.timedelta(milliseconds=outplan.try_interval)

    def tries_left(t: OutdialTarget) -> bool:
        return any(t.destination(n) is not None and t.try_count(n) < outplan.max_try_count(n)
                   for n in range(5))

    idle = [t for t in targets if t.status == "idle"]
    done = [t for t in targets if t.status == "done"]
    answered = sum(1 for t in done if t.id in answered_ids)
    return {
        "targets": len(targets), "idle": len(idle),
        "progressing": sum(t.status == "progressing" for t in targets), "done": len(done),
        "answered": answered, "exhausted": len(done) - answered,
        **{f"attempts_{n}": sum(t.try_count(n) for t in targets) for n in range(5)},
        "dialable_now": sum(tries_left(t) and (t.tm_last_end is None or t.tm_last_end <= cutoff)
                            for t in idle),
        "waiting_retry": sum(tries_left(t) and t.tm_last_end is not None and t.tm_last_end > cutoff
                             for t in idle),
    }


async def test_stats_equal_a_direct_count(api: Api, app: Any, clock: FakeClock) -> None:
    outdial_id = (await api.post("/v1.0/outdials", json={})).json()["id"]
    for i in range(40):
        body = {"destination_0": {"type": "tel", "target": f"+1555000{i:04d}"}}
        if i % 3 == 0:
            body["destination_1"] = {"type": "email", "target": f"t{i}@example.com"}
        assert (await api.post(f"/v1.0/outdials/{outdial_id}/targets", json=body)).status_code == 200
    oid = uuid.UUID(outdial_id)
    now = clock.now()
    async with app.state.database.transaction() as session:
        customer_id = (await session.scalars(select(OutdialTarget.customer_id).limit(1))).one()
        outplan = Outplan(id=uuid.uuid4(), customer_id=customer_id, try_interval=600_000,
                          max_try_count_0=2, max_try_count_1=1, tm_create=now)
        campaign = Campaign(id=uuid.uuid4(), customer_id=customer_id, outplan_id=outplan.id,
                            outdial_id=oid, tm_create=now)
        session.add_all([outplan, campaign])
        await session.flush()
        (await session.get(Outdial, oid)).campaign_id = campaign.id
        targets = (await session.scalars(select(OutdialTarget).where(
            OutdialTarget.outdial_id == oid).order_by(OutdialTarget.id))).all()
        # A mix of histories: untried, retried long ago or just now, exhausted, answered, in flight.
        for i, target in enumerate(targets):
            kind = i % 6
            if kind == 1:
                target.try_count_0, target.tm_last_end = 1, now - dt.timedelta(minutes=30)
            elif kind == 2:
                target.try_count_0, target.tm_last_end = 1, now - dt.timedelta(minutes=2)
            elif kind == 3:
                target.status, target.try_count_0, target.try_count_1 = "done", 2, 1
            elif kind == 4:
                target.status, target.try_count_0 = "done", 1
                session.add(Campaigncall(
                    id=uuid.uuid4(), customer_id=customer_id, campaign_id=campaign.id,
                    outplan_id=outplan.id, outdial_id=oid, outdial_target_id=target.id,
                    status="done", result="success", destination_index=0, try_count=1, tm_create=now))
            elif kind == 5:
                target.status, target.try_count_0 = "progressing", 1
            if i == 39:
                target.tm_delete = now
    stats = (await api.get(f"/v1.0/outdials/{outdial_id}/stats")).json()
    expected = await direct_count(app, oid, outplan, now)
    assert {key: stats[key] for key in expected} == expected
    assert stats["attempts"] == sum(expected[f"attempts_{n}"] for n in range(5))
    assert stats["outplan_id"] == str(outplan.id)
    assert stats["waiting_retry"] > 0 and stats["answered"] > 0 and stats["exhausted"] > 0

    clock.advance(600)  # every retry interval has passed
    later = (await api.get(f"/v1.0/outdials/{outdial_id}/stats")).json()
    assert later["waiting_retry"] == 0
    assert later["dialable_now"] == stats["dialable_now"] + stats["waiting_retry"]


async def test_without_a_campaign_every_idle_target_is_dialable(api: Api) -> None:
    outdial_id = (await api.post("/v1.0/outdials", json={})).json()["id"]
    for i in range(3):
        body = {"destination_0": {"type": "tel", "target": f"+1555000{i:04d}"}}
        await api.post(f"/v1.0/outdials/{outdial_id}/targets", json=body)
    stats = (await api.get(f"/v1.0/outdials/{outdial_id}/stats")).json()
    assert (stats["targets"], stats["idle"], stats["dialable_now"], stats["waiting_retry"]) == (3, 3, 3, 0)
    assert stats["campaign_id"] == "00000000-0000-0000-0000-000000000000"


async def test_the_waiting_count_reads_its_partial_index_in_a_generic_plan(
    database: Database, clock: FakeClock
) -> None:
    """asyncpg prepares the stats' statement, and from its sixth run PostgreSQL may plan it once
    for any parameters: the count of targets in their retry interval must still read
    ix_outdial_targets_retry_wait, whose predicate (status = 'idle') a bound value cannot match."""
    if database.is_sqlite:
        pytest.skip("SQLite plans each statement with its values")
    query = _waiting_query(uuid.uuid4(), None, clock.now())
    sql = str(query.compile(dialect=asyncpg.dialect()))
    assert "$3" not in sql, sql  # the outdial and the cutoff are the only parameters
    async with database.transaction() as session:
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table
        await session.execute(text(f"PREPARE waiting_count AS {sql}"))
        rows = await session.execute(text(  # EXECUTE takes its arguments as SQL text
            f"EXPLAIN EXECUTE waiting_count('{uuid.uuid4()}', '{clock.now().isoformat()}')"))
        plan = " ".join(r[0] for r in rows)
        await session.execute(text("DEALLOCATE waiting_count"))
    assert "ix_outdial_targets_retry_wait" in plan, plan
