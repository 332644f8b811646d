"""Retry rules per outcome and the campaign's priority, on the engine with an injected clock."""

import datetime as dt

from sqlalchemy import text

from outdial.dialers import OutcomeKind
from outdial.engine.repository import claim_query
from outdial.strategy.reasons import Situation
from outdial.models import Campaign, Outplan
from tests.engine_support import database  # noqa: F401 - fixture
from tests.engine_support import make_campaign, make_engine, run_round, scripted_dialer, tel

A, B, C = tel("+15550000001"), tel("+15550000002"), tel("+15550000003")
BUSY, NO_ANSWER, REJECTED = OutcomeKind.BUSY, OutcomeKind.NO_ANSWER, OutcomeKind.REJECTED
INVALID = OutcomeKind.INVALID_DESTINATION


def rule(interval: int, max_tries: int | None = None, next: str = "retry",
         backoff: float | None = None) -> dict:
    return {"interval": interval, "max_tries": max_tries, "next": next, "backoff": backoff}


async def with_rules(scenario, **rules) -> None:
    await scenario.update(Outplan, scenario.outplan_id, retry_rules=rules)


async def test_an_outcomes_interval_replaces_try_interval(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(3, 0, 0, 0, 0),
                                   try_interval=600_000)
    await with_rules(scenario, busy=rule(10_000))
    engine = make_engine(database, scripted_dialer({A["target"]: [BUSY, NO_ANSWER]}), clock)
    assert await run_round(engine) == 1
    target = await scenario.target(scenario.target_ids[0])
    assert target.next_attempt_at == clock.now() + dt.timedelta(seconds=10)
    clock.advance(9)
    assert await run_round(engine) == 0
    clock.advance(1)
    assert await run_round(engine) == 1  # 10 s after busy, not 600 s
    # no_answer has no rule: the outplan's try_interval
    target = await scenario.target(scenario.target_ids[0])
    assert target.next_attempt_at == clock.now() + dt.timedelta(seconds=600)


async def test_finish_ends_the_target_with_tries_left(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A, B]], max_try_counts=(5, 5, 0, 0, 0))
    await with_rules(scenario, rejected=rule(0, next="finish"))
    engine = make_engine(database, scripted_dialer({A["target"]: [REJECTED]}), clock)
    assert await run_round(engine) == 1
    clock.advance(3600)
    assert await run_round(engine) == 0
    target = await scenario.target(scenario.target_ids[0])
    assert target.status == "done" and target.try_count_0 == 1 and target.try_count_1 == 0
    assert [c.outcome for c in await scenario.calls()] == ["rejected"]


async def test_next_destination_moves_on_at_once(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A, B]], max_try_counts=(5, 1, 0, 0, 0),
                                   try_interval=600_000)
    await with_rules(scenario, invalid_destination=rule(600_000, next="next_destination"))
    engine = make_engine(database, scripted_dialer({A["target"]: [INVALID]}), clock)
    assert await run_round(engine) == 1
    assert await run_round(engine) == 1  # no time passed: slot 1 at once
    calls = sorted(await scenario.calls(), key=lambda c: c.destination_index)  # one instant
    assert [(c.destination_index, c.outcome) for c in calls] == [(0, "invalid_destination"),
                                                                (1, "answered")]
    target = await scenario.target(scenario.target_ids[0])
    assert target.status == "done" and target.first_slot == 1 and target.try_count_0 == 1


async def test_max_tries_caps_one_outcome_on_a_destination(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A, B]], max_try_counts=(5, 1, 0, 0, 0))
    await with_rules(scenario, busy=rule(1000, max_tries=2))
    engine = make_engine(database, scripted_dialer({A["target"]: [BUSY, NO_ANSWER, BUSY, BUSY]}),
                         clock)
    for _ in range(4):
        assert await run_round(engine) == 1
        clock.advance(60)
    calls = await scenario.calls()
    # busy, no_answer (no rule), busy: the second busy on A moves on to B
    assert [(c.destination_index, c.outcome) for c in calls] == [
        (0, "busy"), (0, "no_answer"), (0, "busy"), (1, "answered")]
    target = await scenario.target(scenario.target_ids[0])
    assert target.outcome_tries == {"0": {"busy": 2, "no_answer": 1}, "1": {"answered": 1}}


async def test_backoff_multiplies_the_interval_per_try(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(4, 0, 0, 0, 0))
    await with_rules(scenario, busy=rule(10_000, backoff=2.0))
    engine = make_engine(database, scripted_dialer({A["target"]: [BUSY, BUSY, BUSY]}), clock)
    waits = []
    for _ in range(3):
        assert await run_round(engine) == 1
        target = await scenario.target(scenario.target_ids[0])
        waits.append((target.next_attempt_at - clock.now()).total_seconds())
        clock.advance(waits[-1] - 1)
        assert await run_round(engine) == 0  # not a second early
        clock.advance(1)
    assert waits == [10, 20, 40]


async def test_without_rules_the_floor_of_try_interval_holds(database, clock) -> None:
    """Today's behaviour: an interval that grew after a failure still holds the retry back."""
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0),
                                   try_interval=10_000)
    engine = make_engine(database, scripted_dialer({A["target"]: [BUSY]}), clock)
    assert await run_round(engine) == 1
    await scenario.update(Outplan, scenario.outplan_id, try_interval=60_000)
    clock.advance(30)
    assert await run_round(engine) == 0
    clock.advance(30)
    assert await run_round(engine) == 1


async def test_fresh_first_dials_untried_targets_before_due_retries(database, clock) -> None:
    for priority in ("due_first", "fresh_first"):
        scenario = await make_campaign(database, clock, targets=[[A]],
                                       max_try_counts=(2, 0, 0, 0, 0), try_interval=10_000)
        await scenario.update(Campaign, scenario.campaign_id, priority=priority)
        engine = make_engine(database, scripted_dialer({A["target"]: [BUSY]}), clock,
                             claim_batch=1)
        assert await run_round(engine) == 1  # A busy: due again in 10 s
        retry = scenario.target_ids[0]
        clock.advance(12)
        fresh = await scenario.add_target(B)  # created after the retry became due
        order, seen = [], {c.id for c in await scenario.calls()}
        for _ in range(2):
            assert await run_round(engine) == 1
            [new] = [c for c in await scenario.calls() if c.id not in seen]
            seen.add(new.id)
            order.append(new.outdial_target_id)
        expected = [retry, fresh] if priority == "due_first" else [fresh, retry]
        assert order == expected, priority
        await scenario.set_status("stop")


async def test_the_fresh_first_claim_reads_its_index_in_order(database, clock) -> None:
    """fresh_first is one query too, along ix_outdial_targets_fresh: no sort."""
    scenario = await make_campaign(database, clock, targets=[[A], [B]])
    await scenario.update(Campaign, scenario.campaign_id, priority="fresh_first")
    situation = Situation(clock.now(), scenario.customer_id, scenario.outdial_id,
                          limits=(1, 0, 0, 0, 0), try_interval=60000,
                          campaign=await scenario.campaign())
    query = claim_query(situation, 5)
    async with database.transaction() as session:
        sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
        if database.is_sqlite:
            rows = (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
            plan = " ".join(str(r) for r in rows)
            assert "ix_outdial_targets_fresh" in plan and "TEMP B-TREE" not in plan, plan
        else:
            await session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table
            plan = " ".join(r[0] for r in (await session.execute(text(f"EXPLAIN {sql}"))).all())
            assert "ix_outdial_targets_fresh" in plan and "Sort" not in plan, plan
