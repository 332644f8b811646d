"""A dialer with no telephony behind it: outcomes and durations drawn at random, reproducibly."""

import random
from dataclasses import dataclass

from outdial.clock import Clock
from outdial.dialers.base import Attempt, Dialer, Outcome, OutcomeKind
from outdial.settings import Settings


@dataclass(frozen=True)
class SimulationPlan:
    """Outcome weights (any non-negative numbers; they are normalized) and duration ranges (ms)."""

    weights: dict[OutcomeKind, float]
    ring_ms: tuple[int, int]
    talk_ms: tuple[int, int]
    seed: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "SimulationPlan":
        return cls(
            weights={
                OutcomeKind.ANSWERED: settings.sim_p_answered,
                OutcomeKind.BUSY: settings.sim_p_busy,
                OutcomeKind.NO_ANSWER: settings.sim_p_no_answer,
                OutcomeKind.REJECTED: settings.sim_p_rejected,
                OutcomeKind.FAILED: settings.sim_p_failed,
                OutcomeKind.UNREACHABLE: settings.sim_p_unreachable,
            },
            ring_ms=(
                settings.sim_ring_min_ms,
                max(settings.sim_ring_min_ms, settings.sim_ring_max_ms),
            ),
            talk_ms=(
                settings.sim_talk_min_ms,
                max(settings.sim_talk_min_ms, settings.sim_talk_max_ms),
            ),
            seed=settings.sim_seed,
        )


class SimulatedDialer(Dialer):
    """Draws each attempt's fate and waits it out on the injected clock.

    With a seed, the draw depends only on the seed, the target, the slot and the try number, so a
    run is reproducible whatever order the attempts happen in and however many workers share it.
    """

    def __init__(self, plan: SimulationPlan, clock: Clock) -> None:
        if sum(plan.weights.values()) <= 0:
            raise ValueError(
                "the simulated dialer needs at least one outcome with a weight above 0"
            )
        self.plan = plan
        self.clock = clock
        self._kinds = list(plan.weights)
        self._weights = [plan.weights[k] for k in self._kinds]
        self._unseeded = random.Random()

    def _random_for(self, attempt: Attempt) -> random.Random:
        if self.plan.seed is None:
            return self._unseeded
        return random.Random(
            f"{self.plan.seed}:{attempt.target_id}:{attempt.destination_index}:{attempt.try_count}"
        )

    async def dial(self, attempt: Attempt) -> Outcome:
        draw = self._random_for(attempt)
        kind = draw.choices(self._kinds, self._weights)[0]
        ring_ms = draw.randint(*self.plan.ring_ms)
        talk_ms = draw.randint(*self.plan.talk_ms)
        if kind is OutcomeKind.NO_ANSWER or (
            kind is OutcomeKind.ANSWERED and ring_ms >= attempt.dial_timeout
        ):
            # Nobody picks up: it rings until the caller gives up.
            await self.clock.sleep(attempt.dial_timeout / 1000)
            return Outcome(OutcomeKind.NO_ANSWER, ring_ms=attempt.dial_timeout)
        ring_ms = min(ring_ms, attempt.dial_timeout)
        await self.clock.sleep(ring_ms / 1000)
        if kind is not OutcomeKind.ANSWERED:
            return Outcome(kind, ring_ms=ring_ms)
        attempt.answered()
        await self.clock.sleep(talk_ms / 1000)
        return Outcome(OutcomeKind.ANSWERED, ring_ms=ring_ms, talk_ms=talk_ms)


def build_dialer(settings: Settings, clock: Clock) -> Dialer:
    """The dialer named by `OUTDIAL_DIALER`."""
    if settings.dialer == "simulated":
        return SimulatedDialer(SimulationPlan.from_settings(settings), clock)
    raise ValueError(f"unknown dialer {settings.dialer!r} (known: simulated)")
