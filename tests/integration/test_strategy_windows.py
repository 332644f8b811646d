"""Calling windows, contact limits and waiting reasons, with the engine and an injected clock."""

import datetime as dt
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from outdial.dialers import OutcomeKind
from outdial.engine import repository
from outdial.models import (
    Campaign, Channel, Contact, Customer, DncEntry, Dnclist, Outdial, Outplan,
)
from outdial.strategy import reasons
from outdial.strategy.windows import DAYS, zone_key
from tests.engine_support import make_campaign, make_engine, run_round, scripted_dialer, tel

EVERY_DAY = list(DAYS)
WEEKDAYS = DAYS[:5]


def window(start: str, end: str, *, days: Any = EVERY_DAY, zone: str = "America/New_York",
           holidays: Any = ()) -> dict[str, Any]:
    return {"days": list(days), "start": start, "end": end, "timezone_default": zone,
            "holidays": list(holidays)}


def at(clock: Any, moment: dt.datetime) -> None:
    """Move the fake clock forward to `moment`."""
    assert moment >= clock.now()
    clock.advance((moment - clock.now()).total_seconds())


async def waiting(scenario: Any, target_id: uuid.UUID) -> reasons.Waiting:
    async with scenario.database.transaction() as session:
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, scenario.clock.now())
        return (await reasons.waiting_of(session, s, [target_id]))[target_id]


async def counts(scenario: Any) -> dict[str, int]:
    async with scenario.database.transaction() as session:
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, scenario.clock.now())
        return await reasons.reason_counts(session, s)


async def test_a_window_across_the_spring_forward_hour(database, clock) -> None:
    """New York, 8 March 2026: 02:00 EST jumps to 03:00 EDT. A window from 02:30 opens at the
    jump (07:00 UTC), the first local time past 02:30; the day before it opened at 07:30 UTC."""
    at(clock, dt.datetime(2026, 3, 8, 6, 30))  # 01:30 EST
    scenario = await make_campaign(database, clock, targets=[[tel("+12125550100")]])
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window("02:30", "04:00"))
    target = scenario.target_ids[0]
    engine = make_engine(database, scripted_dialer(), clock)

    assert await run_round(engine) == 0
    assert await waiting(scenario, target) == reasons.Waiting(
        "outside_calling_window", dt.datetime(2026, 3, 8, 7, 0), "America/New_York")
    at(clock, dt.datetime(2026, 3, 8, 6, 59, 59))
    assert await run_round(engine) == 0
    at(clock, dt.datetime(2026, 3, 8, 7, 0))  # 03:00 EDT
    assert (await waiting(scenario, target)).reason == "dialable"
    assert await run_round(engine) == 1
    assert (await waiting(scenario, target)).reason == "answered"


async def test_a_window_closes_at_its_end_in_summer_time(database, clock) -> None:
    at(clock, dt.datetime(2026, 3, 9, 0, 0))  # 20:00 EDT, the window's end
    scenario = await make_campaign(database, clock, targets=[[tel("+12125550100")]])
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window("08:00", "20:00"))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert (await waiting(scenario, scenario.target_ids[0])).next_attempt_at == dt.datetime(
        2026, 3, 9, 12, 0)  # 08:00 EDT


async def test_a_number_whose_area_code_spans_two_zones_waits_for_both(database, clock) -> None:
    """+1 605 (South Dakota) is in Denver's and North Dakota's Central zone: the window must be
    open in both (fail closed). At 14:30 UTC Central is 09:30, Mountain 08:30."""
    at(clock, dt.datetime(2026, 6, 1, 14, 30))  # a Monday
    dakota, manhattan = tel("+16055550100"), tel("+12125550100")
    assert zone_key(None, [dakota]) == "America/Denver America/North_Dakota/Center"
    scenario = await make_campaign(database, clock, targets=[[dakota], [manhattan]])
    await scenario.update(Campaign, scenario.campaign_id,
                          calling_window=window("09:00", "17:00", days=WEEKDAYS))
    engine = make_engine(database, scripted_dialer(), clock)

    assert await run_round(engine) == 1
    assert [c.destination["target"] for c in await scenario.calls()] == ["+12125550100"]
    assert await waiting(scenario, scenario.target_ids[0]) == reasons.Waiting(
        "outside_calling_window", dt.datetime(2026, 6, 1, 15, 0), "America/Denver")
    at(clock, dt.datetime(2026, 6, 1, 15, 0))
    assert await run_round(engine) == 1


async def test_a_target_timezone_overrides_the_number(database, clock) -> None:
    at(clock, dt.datetime(2026, 6, 1, 14, 30))  # 15:30 in London, 10:30 in New York
    scenario = await make_campaign(database, clock)
    async with database.transaction() as session:
        target = scenario.new_target(tel("+12125550100"))
        target.timezone = "Asia/Tokyo"  # 23:30 there
        session.add(target)
    await scenario.update(Campaign, scenario.campaign_id,
                          calling_window=window("09:00", "20:00", days=WEEKDAYS))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert await waiting(scenario, target.id) == reasons.Waiting(
        "outside_calling_window", dt.datetime(2026, 6, 2, 0, 0), "Asia/Tokyo")


async def test_a_holiday_keeps_the_window_shut_all_day(database, clock) -> None:
    """Christmas 2026 is a Friday: a London number waits for Monday 28 December, 09:00."""
    at(clock, dt.datetime(2026, 12, 25, 12, 0))
    scenario = await make_campaign(database, clock, targets=[[tel("+442071234567")]])
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window(
        "09:00", "20:00", days=WEEKDAYS, zone="Europe/London", holidays=["2026-12-25"]))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert await waiting(scenario, scenario.target_ids[0]) == reasons.Waiting(
        "outside_calling_window", dt.datetime(2026, 12, 28, 9, 0), "Europe/London")
    assert (await counts(scenario))["outside_calling_window"] == 1
    at(clock, dt.datetime(2026, 12, 28, 9, 0))
    assert await run_round(engine) == 1


async def test_an_email_destination_follows_the_default_zone(database, clock) -> None:
    at(clock, dt.datetime(2026, 6, 1, 12, 0))  # 08:00 in New York, 05:00 in Los Angeles
    email = {"type": "email", "target": "a@example.com", "target_name": "", "name": "", "detail": ""}
    scenario = await make_campaign(database, clock, targets=[[email]])
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window(
        "08:00", "20:00", zone="America/Los_Angeles"))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert await waiting(scenario, scenario.target_ids[0]) == reasons.Waiting(
        "outside_calling_window", dt.datetime(2026, 6, 1, 15, 0), "America/Los_Angeles")


async def test_an_attempt_in_flight_when_the_window_closes_runs_to_its_end(database, clock) -> None:
    at(clock, dt.datetime(2026, 6, 1, 23, 59, 50))  # 19:59:50 in New York
    scenario = await make_campaign(database, clock, targets=[[tel("+12125550100")]])
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window("08:00", "20:00"))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await engine.step() == 1
    at(clock, dt.datetime(2026, 6, 2, 0, 0, 30))  # the window has closed meanwhile
    assert (await waiting(scenario, scenario.target_ids[0])).reason == "in_progress"
    await engine.wait_dials()
    await engine.record()
    assert [c.result for c in await scenario.calls()] == ["success"]


# -- contact limits ---------------------------------------------------------------------------


async def second_campaign(first: Any, targets: list[Any], *, channel: bool) -> Any:
    """Another campaign of the same customer, its outplan dialing through a channel of its own."""
    from tests.engine_support import Scenario

    now = first.clock.now()
    outplan = Outplan(id=uuid.uuid4(), customer_id=first.customer_id, source=tel("+15550000000"),
                      try_interval=0, max_try_count_0=3, tm_create=now)
    outdial = Outdial(id=uuid.uuid4(), customer_id=first.customer_id, tm_create=now)
    campaign = Campaign(id=uuid.uuid4(), customer_id=first.customer_id, status="run",
                        outplan_id=outplan.id, outdial_id=outdial.id, actions=[], tm_create=now)
    outdial.campaign_id = campaign.id
    scenario = Scenario(first.database, first.clock, first.customer_id, outplan.id, outdial.id,
                        campaign.id)
    async with first.database.transaction() as session:
        if channel:
            outplan.sip_channel_id = uuid.uuid4()
            session.add(Channel(id=outplan.sip_channel_id, customer_id=first.customer_id,
                                name="trunk", type="simulated", settings={}, tm_create=now))
            await session.flush()
        session.add_all([outplan, outdial])
        await session.flush()
        session.add_all([scenario.new_target(*d) for d in targets])
        session.add(campaign)
    return scenario


async def test_a_cap_counts_attempts_across_two_campaigns_and_two_channels(database, clock) -> None:
    """At most 2 attempts a day to one number: one by campaign A (the simulated dialer), one by
    campaign B (its own channel), then B's retry of that number waits while B's other number
    gets its second attempt; the day after, the number is free again."""
    number = "+12125550100"
    a = await make_campaign(database, clock, targets=[[tel(number)]])
    await a.update(Customer, a.customer_id,
                   contact_limits=[{"max": 2, "window": 24 * 3600 * 1000}])
    b = await second_campaign(a, [[tel(number)], [tel("+12125550111")]], channel=True)
    engine = make_engine(database, scripted_dialer({number: [OutcomeKind.BUSY] * 5}), clock)

    assert await run_round(engine) == 3  # A's target, and both of B's
    calls = [*await a.calls(), *await b.calls()]
    assert {(c.campaign_id, c.channel_type) for c in calls} == {
        (a.campaign_id, "simulated"), (b.campaign_id, "simulated")}
    assert len({c.channel_id for c in calls}) == 2  # the server's dialer and B's channel
    clock.advance(60)
    first_contact = clock.now() - dt.timedelta(seconds=60)
    assert await run_round(engine) == 1  # B's second number only (one attempt ended failed)
    held = await waiting(b, b.target_ids[0])
    assert held == reasons.Waiting(
        "contact_limit", first_contact + dt.timedelta(days=1), None)
    # B's other number has had its two attempts now too.
    assert (await counts(b))["contact_limit"] == 2
    assert await run_round(engine) == 0

    at(clock, first_contact + dt.timedelta(days=1, seconds=1))
    assert (await waiting(b, b.target_ids[0])).reason == "dialable"
    assert await run_round(engine) >= 1
    assert sum(c.destination["target"] == number for c in await b.calls()) == 2


async def test_two_targets_of_one_number_in_one_claim_stay_under_the_cap(database, clock) -> None:
    """The claim counts the attempts it takes: with 1 a day, one of the two is dialed."""
    number = "+12125550100"
    scenario = await make_campaign(database, clock, targets=[[tel(number)], [tel(number)]])
    await scenario.update(Customer, scenario.customer_id,
                          contact_limits=[{"max": 1, "window": 24 * 3600 * 1000}])
    engine = make_engine(database, scripted_dialer(), clock)

    assert await run_round(engine) == 1
    (dialed,) = [c.outdial_target_id for c in await scenario.calls()]
    (other,) = set(scenario.target_ids) - {dialed}
    assert (await waiting(scenario, other)).reason == "contact_limit"
    assert await run_round(engine) == 0


async def test_a_slot_reached_past_a_listed_one_is_checked_against_the_cap(
    database, clock
) -> None:
    """Slot 0 is listed, slot 1's number is at its cap: slot 0 is passed over (dnc) and the
    target waits for slot 1's cap, it is not dialed past it."""
    listed, capped = "+12125550101", "+12125550102"
    scenario = await make_campaign(database, clock, targets=[[tel(capped)]],
                                   max_try_counts=(1, 1, 0, 0, 0))
    await scenario.update(Customer, scenario.customer_id,
                          contact_limits=[{"max": 1, "window": 24 * 3600 * 1000}])
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 1  # the capped number's one contact of the day
    clock.advance(5)
    target = await scenario.add_target(tel(listed), tel(capped))
    async with database.transaction() as session:
        opted_out = Dnclist(id=uuid.uuid4(), customer_id=scenario.customer_id, name="dnc",
                            applies_to_all=True, tm_create=clock.now())
        session.add(opted_out)
        await session.flush()
        session.add(DncEntry(id=uuid.uuid4(), customer_id=scenario.customer_id,
                             dnclist_id=opted_out.id, type="tel", value=listed,
                             tm_create=clock.now()))
    await scenario.set_status("run")

    assert await run_round(engine) == 0
    calls = [(c.destination["target"], c.outcome) for c in await scenario.calls()
             if c.outdial_target_id == target]
    assert calls == [(listed, "dnc")]
    assert (await waiting(scenario, target)).reason == "contact_limit"


async def test_a_target_whose_zones_windows_never_meet_says_so(database, clock) -> None:
    """A New York and a Tokyo number, 09:00-17:00 every day: never open in both at once (the
    window must be open in every zone a target may reach), so the target waits with no time
    and both zones named."""
    at(clock, dt.datetime(2026, 1, 6, 15, 0))  # 10:00 in New York, midnight in Tokyo
    scenario = await make_campaign(database, clock,
                                   targets=[[tel("+12125550100"), tel("+81312345678")]],
                                   max_try_counts=(1, 1, 0, 0, 0))
    await scenario.update(Campaign, scenario.campaign_id,
                          calling_window=window("09:00", "17:00", zone="America/New_York"))
    assert await waiting(scenario, scenario.target_ids[0]) == reasons.Waiting(
        "outside_calling_window", None, "America/New_York Asia/Tokyo")
    assert await run_round(make_engine(database, scripted_dialer(), clock)) == 0


async def test_a_capped_number_is_said_to_wait_until_every_limit_lets_it_go(
    database, clock
) -> None:
    """1 an hour and 2 a day, contacts 23 h and 10 min ago: both limits are reached. The hour's
    lets go in 50 minutes, the day's in 1 hour: the target waits until the later, and the
    claim takes it then, not before."""
    number = "+12125550100"
    scenario = await make_campaign(database, clock, targets=[[tel(number)]])
    now = clock.now()
    await scenario.update(Customer, scenario.customer_id, contact_limits=[
        {"max": 1, "window": 3600 * 1000}, {"max": 2, "window": 24 * 3600 * 1000}])
    async with database.transaction() as session:
        for ago in (dt.timedelta(hours=23), dt.timedelta(minutes=10)):
            session.add(Contact(id=uuid.uuid4(), customer_id=scenario.customer_id,
                                address=number, tm_create=now - ago))
    target = scenario.target_ids[0]
    said = await waiting(scenario, target)
    assert said == reasons.Waiting("contact_limit", now + dt.timedelta(hours=1), None)
    engine = make_engine(database, scripted_dialer(), clock)
    at(clock, now + dt.timedelta(minutes=50, seconds=1))
    assert await run_round(engine) == 0
    at(clock, now + dt.timedelta(hours=1, seconds=1))
    assert await run_round(engine) == 1


async def test_contacts_are_pruned_past_the_longest_window_allowed(database, clock) -> None:
    a = await make_campaign(database, clock, targets=[[tel("+12125550100")], [tel("+12125550101")]])
    await a.update(Customer, a.customer_id, contact_limits=[{"max": 5, "window": 3600 * 1000}])
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 2
    async with database.transaction() as session:
        assert len((await session.scalars(select(Contact.id))).all()) == 2
    clock.advance(31 * 24 * 3600 + 1)  # older than any limit may count (31 days)
    async with database.transaction() as session:
        await session.execute(
            text("UPDATE outdial_targets SET status = 'idle', try_count_0 = 0")
        )  # give the campaign work again, so that it takes a turn
    await run_round(engine)
    async with database.transaction() as session:
        # The two old contacts are gone; the two new attempts are the history now.
        times = (await session.scalars(select(Contact.tm_create))).all()
    assert len(times) == 2 and all(t == clock.now() for t in times)


# -- the claim and the reasons agree ---------------------------------------------------------

ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Tokyo", None]
NUMBERS = ["+12125550100", "+13105550100", "+442071234567", "+16055550100", "+61212345678"]


@st.composite
def mixed_targets(draw: Any) -> list[dict[str, Any]]:
    return draw(st.lists(st.fixed_dictionaries({
        "number": st.sampled_from(NUMBERS),
        "suffix": st.integers(0, 3),  # a few targets share a number: caps across them
        "timezone": st.sampled_from(ZONES),
        "tries": st.integers(0, 3),
        "ended_ago": st.sampled_from([None, 10, 600, 7200]),  # seconds
        "status": st.sampled_from(["idle", "idle", "idle", "progressing", "done"]),
    }), min_size=20, max_size=60))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=mixed_targets(), hour=st.integers(0, 23), running=st.sampled_from(["run", "run", "stop"]))
async def test_every_waiting_target_s_reason_is_what_the_claim_does(
    database, clock, specs, hour, running
) -> None:
    """A large mixed list (zones, tries, intervals, caps, states): the claim takes exactly the
    targets said to be dialable, and each reason counted is the reason of its targets."""
    # Each example a day later (the clock only moves forward): weekdays and weekends alike.
    at(clock, dt.datetime.combine(clock.now().date() + dt.timedelta(days=1), dt.time(hour, 7)))
    now = clock.now()
    scenario = await make_campaign(database, clock, max_try_counts=(3, 0, 0, 0, 0),
                                   try_interval=300000, concurrency=1000, dial_rate=1000,
                                   status=running)
    await scenario.update(Campaign, scenario.campaign_id, calling_window=window(
        "09:00", "20:00", days=WEEKDAYS))
    await scenario.update(Customer, scenario.customer_id,
                          contact_limits=[{"max": 1, "window": 3600 * 1000}])
    numbers: dict[uuid.UUID, str] = {}
    async with database.transaction() as session:
        for n, spec in enumerate(specs):
            number = spec["number"][:-1] + str(spec["suffix"])
            target = scenario.new_target(tel(number))
            numbers[target.id] = number
            target.timezone = spec["timezone"]
            target.status = spec["status"]
            target.try_count_0 = spec["tries"]
            if spec["ended_ago"] is not None and spec["tries"]:
                target.tm_last_end = now - dt.timedelta(seconds=spec["ended_ago"])
                target.next_attempt_at = target.tm_last_end + dt.timedelta(seconds=300)
            target.tm_create = now - dt.timedelta(hours=1, seconds=n)
            session.add(target)
            if n % 7 == 0:  # a recent contact with this number
                session.add(Contact(id=uuid.uuid4(), customer_id=scenario.customer_id,
                                    address=number, tm_create=now - dt.timedelta(minutes=30)))
    async with database.transaction() as session:
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, now)
        said = await reasons.waiting_of(session, s, scenario.target_ids)
        counted = await reasons.reason_counts(session, s)
    for name, count in counted.items():
        assert count == sum(w.reason == name for w in said.values()), name
    async with database.transaction() as session:
        claimed = await repository.take_turn(session, scenario.campaign_id, worker_id="w",
                                             now=now, lease_seconds=60, most=1000)
    dialable = {t for t, w in said.items() if w.reason == "dialable"}
    # Two dialable targets with one number: the cap (1 an hour) lets the claim take one of
    # them, the first in its order; it counts its own attempts as it takes them.
    taken = [c.target_id for c in claimed]
    assert set(taken) <= dialable
    assert sorted(numbers[t] for t in taken) == sorted({numbers[t] for t in dialable})
    for w in said.values():
        if w.reason in ("retry_interval", "outside_calling_window", "contact_limit"):
            assert w.next_attempt_at is not None and w.next_attempt_at > now, w


async def test_two_campaigns_claiming_at_once_never_pass_a_cap(database, clock) -> None:
    """Cap 1 a day: two campaigns of one customer claim the same number at the same moment;
    the customer's lock makes the second see the first's contact, so only one attempt starts."""
    import asyncio

    number = "+12125550100"
    a = await make_campaign(database, clock, targets=[[tel(number)]])
    await a.update(Customer, a.customer_id, contact_limits=[{"max": 1, "window": 24 * 3600 * 1000}])
    b = await second_campaign(a, [[tel(number)]], channel=False)
    now = clock.now()

    async def claim(campaign_id: uuid.UUID) -> int:
        async with database.transaction() as session:
            claimed = await repository.take_turn(session, campaign_id, worker_id=str(campaign_id),
                                                 now=now, lease_seconds=60, most=10)
            await asyncio.sleep(0.05)  # hold the claim open while the other one runs
            return len(claimed)

    started = await asyncio.gather(claim(a.campaign_id), claim(b.campaign_id))
    assert sorted(started) == [0, 1]
    async with database.transaction() as session:
        assert len((await session.scalars(select(Contact.id))).all()) == 1


async def test_each_capped_number_is_said_to_wait_for_its_own_contacts(database, clock) -> None:
    """1 attempt an hour: X was called at t, Y ten minutes later. Each target waits until its
    own number's contact leaves the window (the time was once read from any number's)."""
    x, y = "+12125550100", "+12125550101"
    a = await make_campaign(database, clock, targets=[[tel(x)], [tel(y)]])
    for limits in ([{"max": 1, "window": 3600 * 1000}],
                   [{"max": 1, "window": 3600 * 1000}, {"max": 5, "window": 24 * 3600 * 1000}]):
        await a.update(Customer, a.customer_id, contact_limits=limits)
        called = {x: clock.now() - dt.timedelta(minutes=30), y: clock.now() - dt.timedelta(minutes=20)}
        async with database.transaction() as session:
            await session.execute(text("DELETE FROM contacts"))
            session.add_all(Contact(id=uuid.uuid4(), customer_id=a.customer_id, address=number,
                                    tm_create=moment) for number, moment in called.items())
        for target_id, number in zip(a.target_ids, (x, y), strict=True):
            assert await waiting(a, target_id) == reasons.Waiting(
                "contact_limit", called[number] + dt.timedelta(hours=1), None)


async def _turn(scenario: Any, worker: str, lease: int = 60) -> list[Any]:
    async with scenario.database.transaction() as session:
        return await repository.take_turn(session, scenario.campaign_id, worker_id=worker,
                                          now=scenario.clock.now(), lease_seconds=lease, most=10)


async def _one_answered_contact_a_day(database, clock) -> tuple[Any, Any]:
    """Campaigns A and B of one customer, each with a target of the same number, and a limit
    of 1 answered contact a day."""
    number = "+12125550100"
    a = await make_campaign(database, clock, targets=[[tel(number)]])
    await a.update(Customer, a.customer_id, contact_limits=[
        {"max": 1, "window": 24 * 3600 * 1000, "count": "answered"}])
    return a, await second_campaign(a, [[tel(number)]], channel=False)


async def test_an_answered_call_counts_while_the_person_is_still_talking(database, clock) -> None:
    """1 answered contact a day: campaign A's call to a number is answered and still going on;
    campaign B's target of that number waits from that moment, not from the call's end."""
    a, b = await _one_answered_contact_a_day(database, clock)
    (call,) = await _turn(a, "worker-a")
    clock.advance(5)
    async with database.transaction() as session:  # answered: dialing → progressing
        await repository.record_outcomes(session, [], [call.campaigncall_id], "worker-a",
                                         clock.now())
    clock.advance(5)
    assert await _turn(b, "worker-b") == []
    assert (await waiting(b, b.target_ids[0])).reason == "contact_limit"


async def test_a_call_answered_and_ended_in_one_batch_still_counts_as_answered(
    database, clock
) -> None:
    """The person picks up, then the call fails (an unusable answer) before the recorder ran:
    the answer and the end are written together. The person was reached: the contact is
    answered, and another campaign's target of the number waits."""
    a, b = await _one_answered_contact_a_day(database, clock)
    (call,) = await _turn(a, "worker-a")
    clock.advance(5)
    failed = repository.Closing(call.campaigncall_id, call.target_id, OutcomeKind.FAILED,
                                clock.now())
    async with database.transaction() as session:
        await repository.record_outcomes(session, [failed], [call.campaigncall_id], "worker-a",
                                         clock.now())
    async with database.transaction() as session:
        assert (await session.scalars(select(Contact.answered))).all() == [True]
    assert await _turn(b, "worker-b") == []
    assert (await waiting(b, b.target_ids[0])).reason == "contact_limit"


async def test_an_answered_call_whose_worker_died_still_counts_as_answered(database, clock) -> None:
    """The worker dies mid-call; the reaper closes the attempt `failed`. The person was reached:
    the contact stays answered, and another campaign's target of the number waits."""
    a, b = await _one_answered_contact_a_day(database, clock)
    (call,) = await _turn(a, "dies", lease=30)
    async with database.transaction() as session:
        await repository.record_outcomes(session, [], [call.campaigncall_id], "dies", clock.now())
    clock.advance(31)  # its lease ran out
    async with database.transaction() as session:
        reaped = await repository.reap_expired(session, clock.now())
    assert [r.outcome for r in reaped] == [OutcomeKind.FAILED]
    async with database.transaction() as session:
        assert (await session.scalars(select(Contact.answered))).all() == [True]
    assert await _turn(b, "worker-b") == []


async def test_a_claim_never_waits_for_another_customer_s_pruning(database, clock) -> None:
    """Customer Y's claim, held open, has pruned the old contacts; customer X's claim, which
    would prune the same rows, skips them instead of waiting for Y's transaction to end."""
    import asyncio

    if database.is_sqlite:
        pytest.skip("SQLite has one writer at a time: two claims never overlap there")
    x = await make_campaign(database, clock, targets=[[tel("+12125550100")]])
    y = await make_campaign(database, clock, targets=[[tel("+12125550199")]])
    for scenario in (x, y):
        await scenario.update(Customer, scenario.customer_id,
                              contact_limits=[{"max": 1, "window": 24 * 3600 * 1000}])
    async with database.transaction() as session:  # older than any window: to be pruned
        session.add_all(Contact(id=uuid.uuid4(), customer_id=x.customer_id, address=f"+1{n}",
                                tm_create=clock.now() - dt.timedelta(days=40)) for n in range(5))
    y_pruned, x_done = asyncio.Event(), asyncio.Event()

    async def y_claim() -> None:
        async with database.transaction() as session:
            await repository.take_turn(session, y.campaign_id, worker_id="y", now=clock.now(),
                                       lease_seconds=60, most=10)
            y_pruned.set()
            await asyncio.wait_for(x_done.wait(), 10)  # a slow claim, held open

    held = asyncio.create_task(y_claim())
    await y_pruned.wait()
    try:
        # y's transaction stays open until this claim ends: had the claim waited for a lock y
        # holds, it would have failed at the engine's lock_timeout instead of claiming.
        claimed = await _turn(x, "x")
    finally:
        x_done.set()
        await held
    assert len(claimed) == 1


async def test_a_campaign_runs_an_outdial_only_when_they_name_each_other(database, clock) -> None:
    """The engine passes the campaign it holds: when the outdial names another campaign (or
    none), the targets' campaign does not run, as a new target's INSERT says in SQL."""
    scenario = await make_campaign(database, clock, targets=[[tel("+442071838750")]])
    async with database.transaction() as session:
        campaign = await session.get(Campaign, scenario.campaign_id)
        outdial = await session.get(Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, clock.now(), campaign=campaign)
        assert s.running
        outdial.campaign_id = uuid.uuid4()
        s = await reasons.situation(session, outdial, clock.now(), campaign=campaign)
        assert not s.running
        assert (await reasons.waiting_of(session, s, scenario.target_ids))[
            scenario.target_ids[0]].reason == "campaign_not_running"
