"""engine.md §2: claim, slot choice, outcome recording, try_interval, exhaustion, no blocking."""

import datetime as dt

from sqlalchemy import text

from outdial.dialers import MockDialer, Outcome, OutcomeKind
from outdial.engine.repository import claim_query
from outdial.strategy.reasons import Situation
from outdial.models import OutdialTarget
from tests.engine_support import (
    HangingDialer,
    advance,
    make_campaign,
    make_engine,
    run_round,
    scripted_dialer,
    tel,
)

A, B, C = tel("+15550000001"), tel("+15550000002"), tel("+15550000003")
BUSY, NO_ANSWER, ANSWERED = OutcomeKind.BUSY, OutcomeKind.NO_ANSWER, OutcomeKind.ANSWERED


async def test_claim_moves_target_to_progressing_and_opens_a_dialing_call(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]])
    engine = make_engine(database, HangingDialer(), clock, lease_seconds=30)

    assert await engine.step() == 1

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("progressing", 1)
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("dialing", "", "")
    assert (call.destination, call.destination_index, call.try_count) == (A, 0, 1)
    assert call.source == tel("+15550000000")
    assert call.outplan_id == scenario.outplan_id and call.outdial_id == scenario.outdial_id
    assert call.worker_id == engine.worker_id
    assert call.tm_lease_expire == clock.now() + dt.timedelta(seconds=30)


async def test_answered_attempt_is_a_success_and_the_target_is_done(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], end_handle="continue")
    await run_round(make_engine(database, scripted_dialer(), clock))

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0, target.tm_last_end) == ("done", 1, clock.now())
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "success", "answered")
    assert call.tm_end == clock.now() and call.tm_lease_expire is None


async def test_failed_attempt_with_tries_left_returns_the_target_to_idle(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0))
    await run_round(make_engine(database, scripted_dialer({A["target"]: [BUSY]}), clock))

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0, target.tm_last_end) == ("idle", 1, clock.now())
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "fail", "busy")


async def test_exhausted_target_becomes_done(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(1, 0, 0, 0, 0))
    await run_round(make_engine(database, scripted_dialer({A["target"]: [BUSY]}), clock))

    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("done", 1)


async def test_worked_example_of_the_spec(database, clock) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A, B]],
        max_try_counts=(2, 1, 0, 0, 0),
        try_interval=600000,
        end_handle="continue",
    )
    engine = make_engine(database, scripted_dialer({A["target"]: [BUSY, NO_ANSWER]}), clock)
    target_id = scenario.target_ids[0]

    assert await run_round(engine) == 1  # A busy
    target = await scenario.target(target_id)
    assert (target.status, target.try_count_0, target.try_count_1) == ("idle", 1, 0)

    clock.advance(599)
    assert await run_round(engine) == 0  # not yet 10 minutes
    clock.advance(1)
    assert await run_round(engine) == 1  # A no answer
    target = await scenario.target(target_id)
    assert (target.status, target.try_count_0, target.try_count_1) == ("idle", 2, 0)

    clock.advance(600)
    assert await run_round(engine) == 1  # B answered
    target = await scenario.target(target_id)
    assert (target.status, target.try_count_0, target.try_count_1) == ("done", 2, 1)
    calls = await scenario.calls(target_id)
    assert [(c.destination_index, c.try_count, c.outcome, c.result) for c in calls] == [
        (0, 1, "busy", "fail"),
        (0, 2, "no_answer", "fail"),
        (1, 1, "answered", "success"),
    ]


async def test_worked_example_with_b_failing_ends_done_with_every_slot_exhausted(
    database, clock
) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A, B]],
        max_try_counts=(2, 1, 0, 0, 0),
        try_interval=600000,
    )
    dialer = scripted_dialer({A["target"]: [BUSY, NO_ANSWER], B["target"]: [BUSY]})
    engine = make_engine(database, dialer, clock)
    for _ in range(3):
        assert await run_round(engine) == 1
        clock.advance(600)
    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0, target.try_count_1) == ("done", 2, 1)
    assert await run_round(engine) == 0


async def test_a_slot_without_destination_is_skipped(database, clock) -> None:
    scenario = await make_campaign(
        database, clock, targets=[[None, B]], max_try_counts=(3, 1, 0, 0, 0)
    )
    dialer = scripted_dialer()
    await run_round(make_engine(database, dialer, clock))

    assert [a.destination_index for a in dialer.attempts] == [1]
    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0, target.try_count_1) == ("done", 0, 1)


async def test_target_with_no_destination_allowed_by_the_plan_is_never_dialed(
    database, clock
) -> None:
    scenario = await make_campaign(
        database, clock, targets=[[None, B]], max_try_counts=(1, 0, 0, 0, 0), end_handle="continue"
    )
    assert await run_round(make_engine(database, scripted_dialer(), clock)) == 0
    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_try_interval_runs_from_the_end_of_the_last_attempt(database, clock) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A]],
        max_try_counts=(2, 0, 0, 0, 0),
        try_interval=600000,
        dial_timeout=600000,
    )

    async def rings_long_then_busy(_):
        await clock.sleep(100)
        return Outcome(BUSY)

    engine = make_engine(database, MockDialer(rings_long_then_busy), clock, lease_seconds=1000)
    assert await engine.step() == 1
    await advance(clock, 100)
    await engine.wait_dials()
    await engine.record()
    ended = clock.now()
    assert (await scenario.target(scenario.target_ids[0])).tm_last_end == ended

    clock.advance(599)  # 699 s after the start, 599 s after the end
    assert await engine.step() == 0
    clock.advance(1)
    assert await engine.step() == 1
    calls = await scenario.calls()
    assert calls[1].tm_create - calls[0].tm_end == dt.timedelta(seconds=600)


async def test_a_target_waiting_out_its_interval_never_blocks_others(database, clock) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A], [B]],
        concurrency=1,
        max_try_counts=(2, 0, 0, 0, 0),
        try_interval=600000,
    )
    engine = make_engine(
        database, scripted_dialer({A["target"]: [BUSY], B["target"]: [BUSY]}), clock
    )

    assert await run_round(engine) == 1  # one target busy, now waiting 10 minutes
    assert await run_round(engine) == 1  # the other is dialed at once, no waiting behind it
    statuses = {(await scenario.target(t)).try_count_0 for t in scenario.target_ids}
    assert statuses == {1}


async def test_outdial_and_target_data_and_actions_reach_the_dialer(database, clock) -> None:
    actions = [{"type": "talk", "option": {"text": "hello"}}]
    scenario = await make_campaign(
        database, clock, actions=actions, outdial_data="list data", dial_timeout=12000
    )
    target_id = await scenario.add_target(A, data="target data")
    dialer = scripted_dialer()
    await run_round(make_engine(database, dialer, clock))

    [attempt] = dialer.attempts
    assert attempt.actions == actions
    assert (attempt.outdial_data, attempt.target_data) == ("list data", "target data")
    assert (attempt.destination, attempt.source, attempt.dial_timeout) == (
        A,
        tel("+15550000000"),
        12000,
    )
    assert (attempt.target_id, attempt.destination_index, attempt.try_count) == (target_id, 0, 1)


async def test_deleted_targets_are_never_dialed(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A], [B]], end_handle="continue")
    await scenario.update(OutdialTarget, scenario.target_ids[0], tm_delete=clock.now())
    dialer = scripted_dialer()
    assert await run_round(make_engine(database, dialer, clock)) == 1
    assert [a.destination for a in dialer.attempts] == [B]


async def test_targets_of_a_deleted_outdial_are_never_dialed(database, clock) -> None:
    from outdial.models import Outdial

    scenario = await make_campaign(database, clock, targets=[[A], [B]], end_handle="continue")
    await scenario.update(Outdial, scenario.outdial_id, tm_delete=clock.now())
    assert await run_round(make_engine(database, scripted_dialer(), clock)) == 0
    assert await scenario.calls() == []


async def test_targets_of_other_outdials_are_not_dialed(database, clock) -> None:
    mine = await make_campaign(database, clock, targets=[[A]], end_handle="continue")
    other = await make_campaign(database, clock, targets=[[B]], status="stop")
    assert await run_round(make_engine(database, scripted_dialer(), clock)) == 1
    assert (await other.target(other.target_ids[0])).status == "idle"
    assert (await mine.target(mine.target_ids[0])).status == "done"


async def test_targets_are_claimed_earliest_due_first_retries_and_new_ones_alike(
    database, clock
) -> None:
    """A never-tried target is due since its creation, a retry at its last end + try_interval;
    claims go by that time, so a due retry neither jumps ahead of targets due before it nor
    waits behind targets that became due after it."""
    scenario = await make_campaign(
        database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0), try_interval=10000
    )
    retry = scenario.target_ids[0]
    engine = make_engine(
        database, scripted_dialer({A["target"]: [BUSY]}), clock, claim_batch=1
    )
    assert await run_round(engine) == 1  # A busy at t0: due again at t0 + 10 s
    assert (await scenario.target(retry)).next_attempt_at == clock.now() + dt.timedelta(seconds=10)
    clock.advance(5)
    earlier = await scenario.add_target(B)  # due at t0 + 5 s
    clock.advance(7)
    later = await scenario.add_target(C)  # due at t0 + 12 s

    order, seen = [], {c.id for c in await scenario.calls()}
    for _ in range(3):  # one claim a round, all at the same instant t0 + 12 s
        assert await run_round(engine) == 1
        [new] = [c for c in await scenario.calls() if c.id not in seen]
        seen.add(new.id)
        order.append(new.outdial_target_id)
    assert order == [earlier, retry, later]


async def test_the_claim_reads_the_due_index_in_order(database, clock) -> None:
    """The claim is one query along ix_outdial_targets_due, in its order: no sort."""
    scenario = await make_campaign(database, clock, targets=[[A], [B]])
    situation = Situation(clock.now(), scenario.customer_id, scenario.outdial_id,
                          limits=(1, 0, 0, 0, 0), try_interval=60000)
    query = claim_query(situation, 5)
    async with database.transaction() as session:
        sql = str(query.compile(session.bind, compile_kwargs={"literal_binds": True}))
        if database.is_sqlite:
            rows = (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
            plan = " ".join(str(r) for r in rows)
            assert "ix_outdial_targets_due" in plan and "TEMP B-TREE" not in plan, plan
        else:
            await session.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table
            plan = " ".join(r[0] for r in (await session.execute(text(f"EXPLAIN {sql}"))).all())
            assert "ix_outdial_targets_due" in plan and "Sort" not in plan, plan
