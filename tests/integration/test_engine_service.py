"""The engine's SQL agrees with its rules, and `outdial serve` runs the engine in-process."""

import asyncio
import random

from sqlalchemy import select

from outdial.api import create_app
from outdial.engine import choose_destination
from outdial.engine.repository import TARGETS, tries_left
from outdial.models import OutdialTarget
from outdial.settings import Settings
from tests.engine_support import make_campaign, tel


async def test_sql_filter_and_slot_choice_agree_on_which_targets_have_tries_left(
    database, clock
) -> None:
    draw = random.Random(11)
    scenario = await make_campaign(database, clock, status="stop")
    targets: dict = {}
    for n in range(120):
        destinations = [tel(f"+1555{n:04d}{s}") if draw.random() < 0.5 else None for s in range(5)]
        target_id = await scenario.add_target(*destinations)
        counts = [draw.randint(0, 2) for _ in range(5)]
        await scenario.update(
            OutdialTarget, target_id, **{f"try_count_{s}": c for s, c in enumerate(counts)}
        )
        targets[target_id] = (destinations, counts)
    for _ in range(10):
        limits = tuple(draw.randint(0, 2) for _ in range(5))
        async with database.transaction() as session:
            by_sql = set(
                await session.scalars(
                    select(TARGETS.c.id).where(
                        TARGETS.c.outdial_id == scenario.outdial_id, tries_left(limits)
                    )
                )
            )
        by_rule = {
            t for t, (d, c) in targets.items() if choose_destination(d, c, limits) is not None
        }
        assert by_sql == by_rule


async def test_serve_runs_the_engine_in_process_by_default(settings: Settings, clock) -> None:
    assert Settings().engine_in_process is True
    in_process = settings.model_copy(
        update={
            "engine_in_process": True,
            "sim_seed": 1,
            "sim_p_answered": 1.0,
            "sim_p_busy": 0.0,
            "sim_p_no_answer": 0.0,
            "sim_p_rejected": 0.0,
            "sim_p_failed": 0.0,
            "sim_p_unreachable": 0.0,
            "sim_ring_min_ms": 0,
            "sim_ring_max_ms": 0,
            "sim_talk_min_ms": 0,
            "sim_talk_max_ms": 0,
        }
    )
    app = create_app(in_process, clock=clock)
    async with app.router.lifespan_context(app):
        scenario = await make_campaign(app.state.database, clock, targets=[[tel("+15550000001")]])
        statuses: list[str] = []

        async def refresh() -> None:
            statuses.append((await scenario.campaign()).status)

        for _ in range(500):
            await refresh()
            if statuses[-1] == "stop":
                break
            clock.advance(in_process.engine_poll_seconds)  # the idle engine looks again
            await asyncio.sleep(0.01)  # and its database round trips complete
        assert statuses[-1] == "stop"
        assert (await scenario.target(scenario.target_ids[0])).status == "done"
