"""The simulated dialer: weighted outcomes, durations on the injected clock, reproducible seeds."""

import asyncio
import uuid
from collections import Counter

import pytest

from outdial.clock import FakeClock
from outdial.dialers import Attempt, OutcomeKind, SimulatedDialer, build_dialer
from outdial.dialers.simulated import SimulationPlan
from outdial.settings import Settings

ONLY = {k: 0.0 for k in OutcomeKind}


class InstantClock(FakeClock):
    """Time jumps forward by whatever is slept, at once."""

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def attempt(dial_timeout: int = 30000, try_count: int = 1, **extra) -> Attempt:
    return Attempt(
        campaigncall_id=uuid.uuid4(),
        target_id=uuid.UUID(int=7),
        destination={"type": "tel", "target": "+1"},
        destination_index=0,
        try_count=try_count,
        source=None,
        dial_timeout=dial_timeout,
        actions=[],
        outdial_data="",
        target_data="",
        **extra,
    )


def plan(kind: OutcomeKind, ring=(1000, 1000), talk=(5000, 5000), seed=None) -> SimulationPlan:
    return SimulationPlan(weights={**ONLY, kind: 1.0}, ring_ms=ring, talk_ms=talk, seed=seed)


async def run_on(clock: FakeClock, dialer: SimulatedDialer, a: Attempt, seconds: float):
    task = asyncio.create_task(dialer.dial(a))
    elapsed = 0.0
    while not task.done():
        await asyncio.sleep(0)
        clock.advance(0.5)
        elapsed += 0.5
        await asyncio.sleep(0)
        assert elapsed <= seconds + 1, "the simulated call ran longer than planned"
    return task.result(), elapsed


async def test_answered_call_rings_answers_then_talks() -> None:
    clock = FakeClock()
    answers = []
    dialer = SimulatedDialer(plan(OutcomeKind.ANSWERED), clock)
    outcome, elapsed = await run_on(
        clock, dialer, attempt(answered=lambda: answers.append(clock.now())), 6
    )
    assert (outcome.kind, outcome.ring_ms, outcome.talk_ms) == (OutcomeKind.ANSWERED, 1000, 5000)
    assert len(answers) == 1
    assert 6 <= elapsed <= 7


async def test_a_ring_longer_than_dial_timeout_is_no_answer_at_dial_timeout() -> None:
    clock = FakeClock()
    dialer = SimulatedDialer(plan(OutcomeKind.ANSWERED, ring=(20000, 20000)), clock)
    outcome, elapsed = await run_on(clock, dialer, attempt(dial_timeout=3000), 3)
    assert (outcome.kind, outcome.ring_ms) == (OutcomeKind.NO_ANSWER, 3000)
    assert 3 <= elapsed <= 4


async def test_no_answer_rings_until_dial_timeout() -> None:
    clock = FakeClock()
    outcome, elapsed = await run_on(
        clock, SimulatedDialer(plan(OutcomeKind.NO_ANSWER), clock), attempt(dial_timeout=4000), 4
    )
    assert outcome.kind is OutcomeKind.NO_ANSWER
    assert 4 <= elapsed <= 5


@pytest.mark.parametrize(
    "kind", [OutcomeKind.BUSY, OutcomeKind.REJECTED, OutcomeKind.FAILED, OutcomeKind.UNREACHABLE]
)
async def test_other_outcomes_end_after_ringing(kind: OutcomeKind) -> None:
    clock = FakeClock()
    outcome, _ = await run_on(clock, SimulatedDialer(plan(kind), clock), attempt(), 1)
    assert (outcome.kind, outcome.talk_ms) == (kind, 0)


def draws(seed: int | None, tries: int = 200) -> list[tuple[OutcomeKind, int]]:
    plan_ = SimulationPlan(
        weights={OutcomeKind.ANSWERED: 1, OutcomeKind.BUSY: 1},
        ring_ms=(0, 0),
        talk_ms=(0, 1000),
        seed=seed,
    )
    dialer = SimulatedDialer(plan_, InstantClock())

    async def one(n: int):
        o = await dialer.dial(attempt(try_count=n))
        return (o.kind, o.talk_ms)

    async def everything():
        return [await one(n) for n in range(tries)]

    return asyncio.run(everything())


def test_a_seed_makes_runs_reproducible_and_weights_are_honoured() -> None:
    first = draws(42)
    assert first == draws(42)
    assert first != draws(43)
    counts = Counter(kind for kind, _ in first)
    assert 60 < counts[OutcomeKind.ANSWERED] < 140


def test_seeded_draws_do_not_depend_on_order() -> None:
    plan_ = SimulationPlan(
        weights={OutcomeKind.ANSWERED: 1, OutcomeKind.BUSY: 1},
        ring_ms=(0, 100),
        talk_ms=(0, 0),
        seed=5,
    )

    async def both_orders():
        dialer = SimulatedDialer(plan_, InstantClock())
        attempts = [attempt(try_count=n) for n in range(20)]
        forward = [await dialer.dial(a) for a in attempts]
        backward = [await dialer.dial(a) for a in reversed(attempts)]
        return forward, backward[::-1]

    forward, backward = asyncio.run(both_orders())
    assert forward == backward


def test_the_dialer_is_built_from_settings() -> None:
    settings = Settings(
        sim_seed=3,
        sim_p_answered=0,
        sim_p_busy=1,
        sim_p_no_answer=0,
        sim_p_rejected=0,
        sim_p_failed=0,
        sim_p_unreachable=0,
        sim_ring_min_ms=0,
        sim_ring_max_ms=0,
    )
    dialer = build_dialer(settings, FakeClock())
    assert isinstance(dialer, SimulatedDialer)
    assert asyncio.run(dialer.dial(attempt())).kind is OutcomeKind.BUSY
    with pytest.raises(ValueError):
        build_dialer(Settings(dialer="carrier-pigeon"), FakeClock())
