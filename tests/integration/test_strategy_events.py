"""The rules' statements are shared by situations of one shape, and the engine's target events
carry the waiting fields it can tell without the rules."""

import uuid
from typing import Any

from sqlalchemy import select

from outdial.dialers import OutcomeKind
from outdial.events.outbox import EVENTS
from outdial.models import Outdial
from outdial.strategy import reasons
from tests.engine_support import make_campaign, make_engine, run_round, scripted_dialer, tel
from tests.integration.test_dnc import add_entry, new_list

A, B = tel("+12125550101"), tel("+12125550102")


async def waiting(scenario: Any, target_id: uuid.UUID) -> reasons.Waiting:
    async with scenario.database.transaction() as session:
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, scenario.clock.now())
        return (await reasons.waiting_of(session, s, [target_id]))[target_id]


async def target_events(database: Any) -> list[dict[str, Any]]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(EVENTS.c.data).where(EVENTS.c.type == "outdialtarget_updated")
            .order_by(EVENTS.c.id))
        return [row.data for row in rows]


async def test_situations_of_one_shape_each_get_their_own_answer(database, clock) -> None:
    """Two campaigns shaped alike (one list each): one statement, each list and outdial its
    own — whichever asks first."""
    first = await make_campaign(database, clock, targets=[[A]])
    second = await make_campaign(database, clock, targets=[[A]])
    first_list, second_list = await new_list(first), await new_list(second)
    await add_entry(first, first_list, A["target"])
    for scenario in (second, first, second):
        said = await waiting(scenario, scenario.target_ids[0])
        if scenario is first:
            assert (said.reason, said.detail) == ("dnc", str(first_list))
        else:
            assert (said.reason, said.detail) == ("dialable", None)
    clock.advance(1)
    await add_entry(second, second_list, A["target"])
    said = await waiting(second, second.target_ids[0])
    assert (said.reason, said.detail) == ("dnc", str(second_list))
    # The claim too: the first campaign passes its target over, the second as well, now.
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert [c.outcome for c in await first.calls()] == ["dnc"]
    assert [c.outcome for c in await second.calls()] == ["dnc"]


async def test_engine_target_events_say_in_progress_answered_and_exhausted(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A], [B]],
                                   max_try_counts=(2, 0, 0, 0, 0))
    listed = await new_list(scenario)
    await add_entry(scenario, listed, B["target"])
    engine = make_engine(database, scripted_dialer(), clock)
    await engine.step()
    claimed = await target_events(database)
    by_target = {e["id"]: e for e in claimed}
    dialed, passed = (by_target[str(t)] for t in scenario.target_ids)
    assert dialed["status"] == "progressing" and dialed["waiting_reason"] == "in_progress"
    assert passed["status"] == "done" and passed["waiting_reason"] == "exhausted"
    # What GET …/targets/{id} says at that moment, too.
    for target_id, event in zip(scenario.target_ids, (dialed, passed), strict=True):
        said = await waiting(scenario, target_id)
        assert (said.reason, said.next_attempt_at, said.detail) == (
            event["waiting_reason"], event["next_attempt_at"], event["waiting_detail"])
    await engine.wait_dials()
    await engine.record()
    [ended] = (await target_events(database))[len(claimed):]
    assert ended["status"] == "done" and ended["waiting_reason"] == "answered"


async def test_a_target_idle_again_leaves_its_waiting_to_the_rules(database, clock) -> None:
    """After a failed attempt the target is idle: its event does not guess the reason."""
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0))
    engine = make_engine(database, scripted_dialer({A["target"]: [OutcomeKind.BUSY]}), clock)
    assert await run_round(engine) == 1
    last = (await target_events(database))[-1]
    assert last["status"] == "idle" and last["waiting_reason"] is None
    assert (await waiting(scenario, scenario.target_ids[0])).reason == "retry_interval"
