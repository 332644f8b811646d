"""The counts per waiting reason (strategy.reasons_counts) equal the reason of every target,
and are made without asking the rules about the targets no rule may hold."""

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outdial.models import Campaign, Outdial, OutdialTarget, Outplan
from outdial.strategy import reasons, reasons_counts
from outdial.strategy.windows import DAYS, zone_key
from tests.engine_support import database  # noqa: F401 - fixture
from tests.engine_support import make_campaign, tel

ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", None]
NUMBERS = ["+12125550100", "+13105550100", "+442071234567", "+16055550100", "+61212345678"]
WINDOW = {"days": list(DAYS[:5]), "start": "09:00", "end": "20:00",
          "timezone_default": "America/New_York", "holidays": []}


def at(clock: Any, moment: dt.datetime) -> None:
    assert moment >= clock.now()
    clock.advance((moment - clock.now()).total_seconds())


async def said_and_counted(scenario: Any, now: dt.datetime) -> tuple[dict[str, int], dict[str, int], Any]:
    """The reasons of every target one by one (the reason's SQL per row), and the counts."""
    async with scenario.database.transaction() as session:
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, now)
        said = await reasons.waiting_of(session, s, scenario.target_ids)
        counted = await reasons.reason_counts(session, s)
    per_target = dict.fromkeys(reasons.reasons(), 0)
    for waiting in said.values():
        if waiting.reason is not None:
            per_target[waiting.reason] += 1
    return per_target, counted, s


@st.composite
def mixed_targets(draw: Any) -> list[dict[str, Any]]:
    return draw(st.lists(st.fixed_dictionaries({
        "numbers": st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=2),
        "timezone": st.sampled_from(ZONES),
        "tries": st.tuples(st.integers(0, 3), st.integers(0, 2)),
        "first_slot": st.sampled_from([0, 0, 0, 1, 2]),
        "ended_ago": st.sampled_from([None, 10, 600, 7200]),  # seconds
        "due_in": st.sampled_from([None, -60, 60, 3600]),  # next_attempt_at, seconds from now
        "status": st.sampled_from(["idle", "idle", "idle", "progressing", "done"]),
        "deleted": st.sampled_from([False, False, False, False, True]),
    }), min_size=10, max_size=50))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=mixed_targets(), hour=st.integers(0, 23), windowed=st.booleans(),
       retry_rules=st.booleans(), running=st.sampled_from(["run", "run", "stop"]))
async def test_the_counts_are_the_reasons_of_the_targets(
    database, clock, specs, hour, windowed, retry_rules, running
) -> None:
    at(clock, dt.datetime.combine(clock.now().date() + dt.timedelta(days=1), dt.time(hour, 7)))
    now = clock.now()
    scenario = await make_campaign(database, clock, max_try_counts=(3, 2, 0, 0, 0),
                                   try_interval=300000, status=running)
    if windowed:
        await scenario.update(Campaign, scenario.campaign_id, calling_window=WINDOW)
    if retry_rules:
        campaign = await scenario.campaign()
        await scenario.update(Outplan, campaign.outplan_id, retry_rules={
            "busy": {"interval": 60000, "max_tries": None, "next": "retry", "backoff": None}})
    async with database.transaction() as session:
        for n, spec in enumerate(specs):
            target = scenario.new_target(*(tel(number) for number in spec["numbers"]))
            target.timezone = spec["timezone"]
            target.status = spec["status"]
            target.try_count_0, target.try_count_1 = spec["tries"]
            target.first_slot = spec["first_slot"]
            if spec["ended_ago"] is not None:
                target.tm_last_end = now - dt.timedelta(seconds=spec["ended_ago"])
            if spec["due_in"] is not None:
                target.next_attempt_at = now + dt.timedelta(seconds=spec["due_in"])
            target.tm_create = now - dt.timedelta(hours=1, seconds=n)
            if spec["deleted"]:
                target.tm_delete = now
            session.add(target)
    per_target, counted, s = await said_and_counted(scenario, now)
    assert counted == per_target
    # Without lists nor caps, only the targets some rule may hold are asked; not those of a
    # closed zone, even when the window is shut everywhere: the counts per shape and zone key
    # tell them.
    assert str(reasons_counts.asked(s)) != "true"


async def test_only_the_targets_a_rule_may_hold_are_asked(database, clock) -> None:
    """The counts over a list with one target in each case: each case is counted, and the
    targets asked are only those some rule may hold (or whose first slot moved on)."""
    now = clock.now()
    scenario = await make_campaign(database, clock, max_try_counts=(2, 1, 0, 0, 0),
                                   try_interval=600000)
    cases = {
        "fresh": {},
        "tried long ago": {"try_count_0": 1, "tm_last_end": now - dt.timedelta(hours=2),
                           "next_attempt_at": now - dt.timedelta(hours=1)},
        "in its interval": {"try_count_0": 1, "tm_last_end": now - dt.timedelta(seconds=30),
                            "next_attempt_at": now + dt.timedelta(seconds=570)},
        "out of tries": {"try_count_0": 2, "try_count_1": 1},
        "moved on": {"first_slot": 1},
        "moved past every slot": {"first_slot": 2},
        "done": {"status": "done"},
        "dialing": {"status": "progressing"},
    }
    ids = {}
    async with database.transaction() as session:
        for name, values in cases.items():
            target = scenario.new_target(tel("+12125550100"), tel("+12125550101"))
            for key, value in values.items():
                setattr(target, key, value)
            ids[name] = target.id
            session.add(target)
    per_target, counted, s = await said_and_counted(scenario, now)
    assert counted == per_target
    assert {k: v for k, v in counted.items() if v} == {
        "dialable": 3, "retry_interval": 1, "exhausted": 3, "in_progress": 1}
    async with database.transaction() as session:
        asked = set(await session.scalars(
            reasons.select(reasons.TARGETS.c.id).where(
                reasons.TARGETS.c.outdial_id == scenario.outdial_id,
                reasons.TARGETS.c.status == "idle", reasons_counts.asked(s))))
    assert asked == {ids["in its interval"], ids["moved on"], ids["moved past every slot"]}


async def test_a_closed_zone_is_counted_from_the_counts_per_zone_key(database, clock) -> None:
    """The window holds whole zone keys, counted per key by the database: a target whose zone
    changes is counted in its new key at once, and none of them is asked the rules."""
    monday = clock.now().date() + dt.timedelta(days=7 - clock.now().weekday())
    at(clock, dt.datetime.combine(monday, dt.time(20, 7)))  # 15:07 in New York, 05:07 in Tokyo
    now = clock.now()
    scenario = await make_campaign(database, clock, max_try_counts=(1, 0, 0, 0, 0))
    await scenario.update(Campaign, scenario.campaign_id, calling_window=WINDOW)
    async with database.transaction() as session:
        for zone in ("America/New_York", "America/New_York", "Asia/Tokyo", None):
            target = scenario.new_target(tel("+12125550100"))
            target.timezone = zone
            session.add(target)
    per_target, counted, s = await said_and_counted(scenario, now)
    assert counted == per_target
    assert {k: v for k, v in counted.items() if v} == {"dialable": 3, "outside_calling_window": 1}
    assert str(reasons_counts.asked(s)) != "true"

    # One New York target moves to Tokyo, the Tokyo one back to New York's number zone.
    async with database.transaction() as session:
        rows = {t.timezone: t for t in await session.scalars(
            reasons.select(OutdialTarget).where(
                OutdialTarget.outdial_id == scenario.outdial_id))}
        moved = rows["America/New_York"]
        moved.timezone, moved.zone_key = "Asia/Tokyo", zone_key("Asia/Tokyo", [tel("+12125550100")])
        back = rows["Asia/Tokyo"]
        back.timezone, back.zone_key = None, zone_key(None, [tel("+12125550100")])
    per_target, counted, s = await said_and_counted(scenario, now)
    assert counted == per_target
    assert {k: v for k, v in counted.items() if v} == {"dialable": 3, "outside_calling_window": 1}

    # Saturday in every zone: all of them from the counts, still none asked.
    at(clock, dt.datetime.combine(monday + dt.timedelta(days=5), dt.time(12, 7)))
    per_target, counted, s = await said_and_counted(scenario, clock.now())
    assert counted == per_target == {**dict.fromkeys(reasons.reasons(), 0),
                                     "outside_calling_window": 4}
    assert str(reasons_counts.asked(s)) != "true"
