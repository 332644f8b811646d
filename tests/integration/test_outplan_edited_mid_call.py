"""An outplan edited (or switched) while a call rings decides what comes after that call, as it
decides the claims to come: the worker that writes the call down and the reaper of a dead
worker's call read the outplan when the call ends, not the one the claim copied."""

import uuid
from typing import Any

from outdial.dialers import OutcomeKind
from outdial.engine import repository
from outdial.models import Campaign, Outplan
from tests.engine_support import make_campaign, tel

A = tel("+15550000001")
BUSY = OutcomeKind.BUSY


async def _claim(scenario: Any, lease: int = 60) -> Any:
    async with scenario.database.transaction() as session:
        (call,) = await repository.take_turn(
            session, scenario.campaign_id, worker_id="worker", now=scenario.clock.now(),
            lease_seconds=lease, most=10)
    return call


async def _end(scenario: Any, call: Any, outcome: OutcomeKind = BUSY) -> None:
    closing = repository.Closing(call.campaigncall_id, call.target_id, outcome,
                                 scenario.clock.now())
    async with scenario.database.transaction() as session:
        written = await repository.record_outcomes(session, [closing], [], "worker",
                                                   scenario.clock.now())
    assert written == [closing]


async def test_more_tries_given_while_the_call_rang_bring_the_target_back(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(1, 0, 0, 0, 0),
                                   try_interval=0)
    call = await _claim(scenario)
    await scenario.update(Outplan, scenario.outplan_id, max_try_count_0=3)

    await _end(scenario, call)

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("idle", 1)


async def test_tries_taken_away_while_the_call_rang_leave_the_target_done(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(3, 0, 0, 0, 0),
                                   try_interval=0)
    call = await _claim(scenario)
    await scenario.update(Outplan, scenario.outplan_id, max_try_count_0=1)

    await _end(scenario, call)

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("done", 1)  # not idle without tries, for ever


async def test_a_retry_rule_changed_while_the_call_rang_applies_to_its_end(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(3, 0, 0, 0, 0),
                                   try_interval=0)
    await scenario.update(Outplan, scenario.outplan_id,
                          retry_rules={"busy": {"interval": 0, "next": "retry"}})
    call = await _claim(scenario)
    await scenario.update(Outplan, scenario.outplan_id,
                          retry_rules={"busy": {"interval": 0, "next": "finish"}})

    await _end(scenario, call)

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("done", 1)


async def test_the_outplan_the_campaign_switched_to_decides(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(1, 0, 0, 0, 0),
                                   try_interval=0)
    call = await _claim(scenario)
    async with database.transaction() as session:
        old = await session.get(Outplan, scenario.outplan_id)
        assert old is not None
        switched = Outplan(id=uuid.uuid4(), customer_id=old.customer_id, source=old.source,
                           dial_timeout=old.dial_timeout, try_interval=0, max_try_count_0=2,
                           tm_create=clock.now())
        session.add(switched)
    await scenario.update(Campaign, scenario.campaign_id, outplan_id=switched.id)

    await _end(scenario, call)

    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_a_dead_workers_call_is_reaped_by_the_outplan_as_it_is_then(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(1, 0, 0, 0, 0),
                                   try_interval=0)
    await _claim(scenario, lease=10)
    await scenario.update(Outplan, scenario.outplan_id, max_try_count_0=2)
    clock.advance(11)

    async with database.transaction() as session:
        (reaped,) = await repository.reap_expired(session, clock.now())

    assert reaped.outcome is OutcomeKind.FAILED
    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_a_deleted_campaigns_call_ends_by_the_outplan_it_was_claimed_by(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0),
                                   try_interval=0)
    call = await _claim(scenario)
    await scenario.update(Campaign, scenario.campaign_id, tm_delete=clock.now())

    await _end(scenario, call)

    assert (await scenario.target(scenario.target_ids[0])).status == "idle"
