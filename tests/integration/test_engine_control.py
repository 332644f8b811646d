"""engine.md §2: pacing, dial_timeout, leases, stop/stopping, end_handle, failures, shutdown."""

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

from outdial.dialers import (
    Attempt,
    DialerUnavailable,
    InvalidDestination,
    MockDialer,
    Outcome,
    OutcomeKind,
)
from outdial.engine import repository
from tests.engine_support import (
    HangingDialer,
    advance,
    eventually,
    make_campaign,
    make_engine,
    run_round,
    scripted_dialer,
    tel,
)

A, B = tel("+15550000001"), tel("+15550000002")


def many(count: int) -> list[list[dict]]:
    return [[tel(f"+1555100{n:04d}")] for n in range(count)]


# -- pacing ------------------------------------------------------------------------------------


async def test_concurrency_caps_attempts_in_flight_across_every_worker(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=many(10), concurrency=3, dial_rate=100)
    first = make_engine(database, HangingDialer(), clock)
    second = make_engine(database, HangingDialer(), clock)

    assert await first.step() == 3
    assert await second.step() == 0
    assert await first.step() == 0
    assert len([c for c in await scenario.calls() if c.status != "done"]) == 3


async def test_a_freed_slot_is_used_again(database, clock) -> None:
    await make_campaign(database, clock, targets=many(5), concurrency=2, dial_rate=100)
    dialer = HangingDialer()
    engine = make_engine(database, dialer, clock)
    assert await engine.step() == 2
    dialer.release()
    await engine.wait_dials()
    await engine.record()
    assert await engine.step() == 2


async def test_dial_rate_caps_new_attempts_per_second(database, clock) -> None:
    await make_campaign(database, clock, targets=many(10), concurrency=100, dial_rate=4)
    engine = make_engine(database, HangingDialer(), clock)
    other = make_engine(database, HangingDialer(), clock)

    assert await engine.step() == 4
    assert await other.step() == 0
    clock.advance(0.999)
    assert await engine.step() == 0
    clock.advance(0.001)
    assert await other.step() == 4


async def test_claim_batch_and_max_in_flight_bound_one_worker(database, clock) -> None:
    await make_campaign(database, clock, targets=many(10), concurrency=100, dial_rate=100)
    engine = make_engine(database, HangingDialer(), clock, claim_batch=3, max_in_flight=5)
    assert await engine.step() == 3
    assert await engine.step() == 2
    assert await engine.step() == 0


# -- dial_timeout ------------------------------------------------------------------------------


async def test_dial_timeout_is_enforced_on_a_dialer_that_hangs(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=5000)
    engine = make_engine(database, HangingDialer(), clock, lease_seconds=60)
    started = clock.now()
    assert await engine.step() == 1

    await advance(clock, 4.999)
    await asyncio.sleep(0)
    assert engine.in_flight == 1
    await advance(clock, 0.001)
    await engine.wait_dials()
    await engine.record()

    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "fail", "no_answer")
    assert call.tm_end == started + dt.timedelta(seconds=5)


async def test_a_dialer_stopped_at_dial_timeout_may_tell_what_the_attempt_was(database, clock) -> None:
    # The SIP dialer does: a trunk that has not said a word by then is `unreachable`.
    async def silent_trunk(_: Attempt) -> Outcome:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return Outcome(OutcomeKind.UNREACHABLE, detail="no response from the trunk")
        raise AssertionError("unreachable")

    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=5000)
    engine = make_engine(database, MockDialer(silent_trunk), clock, lease_seconds=60)
    assert await engine.step() == 1

    await advance(clock, 5)
    await engine.wait_dials()
    await engine.record()

    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "fail", "unreachable")


async def test_an_email_the_relay_did_not_take_in_time_fails_saying_so(database, clock) -> None:
    email = {"type": "email", "target": "alice@example.org", "target_name": "", "name": "",
             "detail": ""}
    scenario = await make_campaign(database, clock, targets=[[email]], dial_timeout=5000)
    engine = make_engine(database, HangingDialer(), clock, lease_seconds=60)
    assert await engine.step() == 1

    await advance(clock, 5)
    await engine.wait_dials()
    await engine.record()

    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "fail", "failed")
    assert call.smtp_reply == "the relay did not take the recipient within dial_timeout (5000 ms)"


async def test_an_answer_stops_the_dial_timeout(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=5000)
    hang_up = asyncio.Event()

    async def answers_then_talks(attempt: Attempt) -> Outcome:
        await clock.sleep(2)
        attempt.answered()
        await hang_up.wait()
        return Outcome(OutcomeKind.ANSWERED)

    engine = make_engine(database, MockDialer(answers_then_talks), clock, lease_seconds=60)
    await engine.step()
    await advance(clock, 2)
    await advance(clock, 10)  # well past dial_timeout, in conversation
    await engine.record()
    [call] = await scenario.calls()
    assert (call.status, call.result) == ("progressing", "")

    hang_up.set()
    await engine.wait_dials()
    await engine.record()
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "success", "answered")


# -- leases ------------------------------------------------------------------------------------


async def test_expired_lease_closes_the_attempt_as_failed_and_frees_the_target(
    database, clock
) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A]],
        max_try_counts=(2, 0, 0, 0, 0),
        try_interval=60000,
        dial_timeout=600000,
    )
    dead = make_engine(database, HangingDialer(), clock, lease_seconds=30)
    assert await dead.step() == 1  # …and this worker never renews its lease again

    clock.advance(29)
    survivor = make_engine(database, scripted_dialer(), clock, lease_seconds=30)
    assert await survivor.step() == 0
    assert (await scenario.target(scenario.target_ids[0])).status == "progressing"

    clock.advance(8)  # past the lease, and a quarter lease after the survivor last looked
    assert await survivor.step() == 0  # reaped now; the retry interval runs from the reaping
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome, call.tm_end) == (
        "done",
        "fail",
        "failed",
        clock.now(),
    )
    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0, target.tm_last_end) == ("idle", 1, clock.now())

    clock.advance(60)
    assert await run_round(survivor) == 1
    target = await scenario.target(scenario.target_ids[0])
    assert (target.status, target.try_count_0) == ("done", 2)


async def test_expired_lease_of_an_exhausted_target_makes_it_done(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    assert await make_engine(database, HangingDialer(), clock, lease_seconds=30).step() == 1
    clock.advance(31)
    await make_engine(database, scripted_dialer(), clock).step()
    assert (await scenario.target(scenario.target_ids[0])).status == "done"


async def test_a_late_outcome_after_the_lease_was_taken_over_is_dropped(database, clock) -> None:
    scenario = await make_campaign(
        database, clock, targets=[[A]], max_try_counts=(2, 0, 0, 0, 0), dial_timeout=600000
    )
    dialer = HangingDialer()
    slow = make_engine(database, dialer, clock, lease_seconds=30)
    await slow.step()
    clock.advance(31)
    await make_engine(database, scripted_dialer(), clock).reap_if_due()

    dialer.release(OutcomeKind.ANSWERED)
    await slow.wait_dials()
    assert await slow.record() == 0
    [call] = await scenario.calls()
    assert (call.result, call.outcome) == ("fail", "failed")
    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_heartbeat_keeps_a_long_attempt_leased(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    holder = make_engine(database, HangingDialer(), clock, lease_seconds=30)
    await holder.step()
    for _ in range(5):
        clock.advance(20)
        await holder.heartbeat()
    assert await make_engine(database, scripted_dialer(), clock).reap_if_due() == 0
    [call] = await scenario.calls()
    assert call.status == "dialing"
    assert call.tm_lease_expire == clock.now() + dt.timedelta(seconds=30)


async def test_a_worker_that_lost_its_lease_hangs_up(database, clock) -> None:
    await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    slow = make_engine(database, HangingDialer(), clock, lease_seconds=30)
    await slow.step()
    await advance(clock, 31)
    await make_engine(database, scripted_dialer(), clock).reap_if_due()
    await slow.heartbeat()
    await slow.wait_dials()
    assert slow.in_flight == 0
    assert await slow.record() == 0


async def test_a_worker_that_cannot_renew_hangs_up_before_another_may_take_over(
    database, clock, monkeypatch
) -> None:
    """The database stops answering this worker's renewals (a partition, a busy pool): it hangs
    up once its lease could run out before the next try, so the call is over by the time
    another worker may reap the attempt and dial the person again."""
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    cut_off = make_engine(database, HangingDialer(), clock, lease_seconds=30)
    await cut_off.step()

    async def unreachable(*_: object, **__: object) -> set:
        raise OSError("the database is unreachable")

    monkeypatch.setattr(repository, "renew_leases", unreachable)
    for expected in (1, 0):  # one renewal missed: still leased for 20 s; two: 10 s, hang up
        await advance(clock, 10)
        with pytest.raises(OSError):
            await cut_off.heartbeat()
        cut_off.hang_up_unrenewed()
        if not expected:
            await cut_off.wait_dials()
        assert cut_off.in_flight == expected
    assert clock.now() < (await scenario.calls())[0].tm_lease_expire  # before any reaper could
    monkeypatch.undo()
    # Once the lease has run out, a worker closes the attempt as failed.
    await advance(clock, 11)
    assert await make_engine(database, scripted_dialer(), clock).reap_if_due() == 1
    [call] = await scenario.calls()
    assert (call.status, call.outcome) == ("done", "failed")


@contextlib.asynccontextmanager
async def heartbeats_on_a_silent_network(engine: Any, monkeypatch: Any) -> AsyncIterator[None]:
    """The engine's heartbeat task running while the database never answers a renewal (no
    error, no answer: a network gone silent); stopped, and the renewal let go, at the end."""
    silent = asyncio.Event()

    async def no_answer(*_: object, **__: object) -> set:
        await silent.wait()
        return set()

    monkeypatch.setattr(repository, "renew_leases", no_answer)
    stop = asyncio.Event()
    beats = asyncio.create_task(engine._heartbeats(stop))
    try:
        yield
    finally:
        stop.set()
        silent.set()
        await beats


async def test_a_renewal_that_never_answers_is_given_up_and_the_call_hung_up_in_time(
    database, clock, monkeypatch, caplog
) -> None:
    """The network to the database goes silent under a renewal (no error, no answer): the
    renewal is given up at its timeout, and the call is hung up before its lease can end for
    another worker — not kept going while that one dials the person again."""
    scenario = await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    cut_off = make_engine(database, HangingDialer(), clock, lease_seconds=30,
                          renewal_timeout=0.05)
    await cut_off.step()
    [call] = await scenario.calls()
    async with heartbeats_on_a_silent_network(cut_off, monkeypatch):
        while cut_off.in_flight:
            assert clock.now() < call.tm_lease_expire  # no other worker could take it yet
            # The call's dial_timeout, and the heartbeat's next look.
            await eventually(lambda: len(clock.deadlines()) == 2 or not cut_off.in_flight)
            if cut_off.in_flight:
                clock.advance((clock.deadlines()[0] - clock.now()).total_seconds())
        given_up = [r for r in caplog.records if "no answer within" in r.getMessage()]
        assert given_up  # the renewal was tried, and given up at its timeout
    await cut_off.wait_dials()


async def test_a_worker_woken_past_its_leases_hangs_up_before_it_tries_to_renew(
    database, clock, monkeypatch
) -> None:
    """Frozen (SIGSTOP, a starved machine) past its leases: another worker may have taken the
    attempts over already, so on waking the calls end at once — not after a renewal that may
    take its whole timeout."""
    await make_campaign(database, clock, targets=[[A]], dial_timeout=600000)
    frozen = make_engine(database, HangingDialer(), clock, lease_seconds=6,
                         renewal_timeout=600)  # were it waited for, eventually() would fail
    await frozen.step()
    async with heartbeats_on_a_silent_network(frozen, monkeypatch):
        await eventually(lambda: len(clock.deadlines()) == 2)  # the heartbeat's first look
        clock.advance(8)  # woken 2 s past the leases
        await eventually(lambda: frozen.in_flight == 0)
    await frozen.wait_dials()


# -- stop, stopping, end_handle ------------------------------------------------------------------


async def test_a_stopped_campaign_is_not_dialed(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], status="stop")
    assert await run_round(make_engine(database, scripted_dialer(), clock)) == 0
    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_stopping_finishes_attempts_in_flight_then_stops(database, clock) -> None:
    scenario = await make_campaign(
        database, clock, targets=many(4), concurrency=2, end_handle="continue"
    )
    dialer = HangingDialer()
    engine = make_engine(database, dialer, clock)
    assert await engine.step() == 2
    await scenario.set_status("stopping")  # what the API does on stop with attempts in flight

    assert await engine.step() == 0
    assert (await scenario.campaign()).status == "stopping"
    dialer.release(OutcomeKind.BUSY)
    await engine.wait_dials()
    await engine.record()
    assert (await scenario.campaign()).status == "stopping"  # moves on the engine's next round
    assert await engine.step() == 0
    assert (await scenario.campaign()).status == "stop"
    calls = await scenario.calls()
    assert [(c.status, c.outcome) for c in calls] == [("done", "busy")] * 2
    idle = [t for t in scenario.target_ids if (await scenario.target(t)).try_count_0 == 0]
    assert len(idle) == 2


async def test_run_again_after_stop_resumes_dialing(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=many(2), status="stop")
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    await scenario.set_status("run")
    assert await run_round(engine) == 2


async def test_end_handle_stop_stops_once_every_target_is_done(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=many(3), end_handle="stop")
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 3
    assert (await scenario.campaign()).status == "run"
    await engine.step()
    assert (await scenario.campaign()).status == "stop"


async def test_end_handle_stop_never_stops_with_an_attempt_in_flight(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], end_handle="stop")
    dialer = HangingDialer()
    engine = make_engine(database, dialer, clock)
    await engine.step()
    await engine.step()
    assert (await scenario.campaign()).status == "run"
    dialer.release()
    await run_round(engine)
    await engine.step()
    assert (await scenario.campaign()).status == "stop"


async def test_end_handle_stop_waits_for_targets_waiting_out_their_interval(
    database, clock
) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A]],
        end_handle="stop",
        max_try_counts=(2, 0, 0, 0, 0),
        try_interval=600000,
    )
    engine = make_engine(database, scripted_dialer({A["target"]: [OutcomeKind.BUSY]}), clock)
    await run_round(engine)
    assert await run_round(engine) == 0
    assert (await scenario.campaign()).status == "run"  # the retry is still owed

    clock.advance(600)
    assert await run_round(engine) == 1
    await engine.step()
    assert (await scenario.campaign()).status == "stop"


async def test_end_handle_stop_with_nothing_to_dial_stops(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[], end_handle="stop")
    await make_engine(database, scripted_dialer(), clock).step()
    assert (await scenario.campaign()).status == "stop"


async def test_end_handle_continue_keeps_running_and_dials_targets_added_later(
    database, clock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], end_handle="continue")
    engine = make_engine(database, scripted_dialer(), clock)
    await run_round(engine)
    await run_round(engine)
    assert (await scenario.campaign()).status == "run"

    added = await scenario.add_target(B)
    assert await run_round(engine) == 1
    assert (await scenario.target(added)).status == "done"


# -- failures ----------------------------------------------------------------------------------


async def test_one_failed_attempt_never_stops_the_campaign(database, clock) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A], [B]],
        end_handle="continue",
        max_try_counts=(2, 0, 0, 0, 0),
        try_interval=0,
    )

    def handle(attempt: Attempt) -> Outcome:
        if attempt.destination == A and attempt.try_count == 1:
            raise RuntimeError("the line dropped")
        return Outcome(OutcomeKind.ANSWERED)

    engine = make_engine(database, MockDialer(handle), clock)
    assert await run_round(engine) == 2
    assert (await scenario.campaign()).status == "run"
    first = await scenario.calls(scenario.target_ids[0])
    assert [(c.result, c.outcome) for c in first] == [("fail", "failed")]
    assert await run_round(engine) == 1  # the failed target is retried
    assert {(await scenario.target(t)).status for t in scenario.target_ids} == {"done"}


async def test_dialer_errors_map_to_outcomes(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A], [B]], end_handle="continue")

    def handle(attempt: Attempt) -> Outcome:
        if attempt.destination == A:
            raise InvalidDestination("not a number this channel can dial")
        raise DialerUnavailable("no trunk")

    await run_round(make_engine(database, MockDialer(handle), clock))
    outcomes = {(await scenario.calls(t))[0].outcome for t in scenario.target_ids}
    assert outcomes == {"invalid_destination", "failed"}


# -- running as a service ------------------------------------------------------------------------


async def test_shutdown_lets_attempts_end_within_the_grace_period(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], end_handle="continue")
    dialer = HangingDialer()
    engine = make_engine(database, dialer, clock, shutdown_grace_seconds=10)
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    await eventually(lambda: engine.in_flight == 1)
    stop.set()
    await asyncio.sleep(0.05)
    dialer.release()
    await asyncio.wait_for(running, 5)
    [call] = await scenario.calls()
    assert (call.status, call.outcome) == ("done", "answered")


async def test_shutdown_cancels_attempts_still_running_after_the_grace_period(
    database, clock
) -> None:
    scenario = await make_campaign(
        database,
        clock,
        targets=[[A]],
        end_handle="continue",
        max_try_counts=(2, 0, 0, 0, 0),
        dial_timeout=600000,
    )
    # The grace period differs from every other wait of the engine (heartbeats: 10 s), so
    # its deadline tells when the engine has reached it.
    engine = make_engine(database, HangingDialer(), clock, shutdown_grace_seconds=7)
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    await eventually(lambda: engine.in_flight == 1)
    stop.set()
    grace_ends = clock.now() + dt.timedelta(seconds=7)
    await eventually(lambda: grace_ends in clock.deadlines())
    clock.advance(7)
    await asyncio.wait_for(running, 5)
    [call] = await scenario.calls()
    assert (call.status, call.result, call.outcome) == ("done", "fail", "canceled")
    assert (await scenario.target(scenario.target_ids[0])).status == "idle"


async def test_run_dials_until_stopped(database, clock) -> None:
    scenario = await make_campaign(
        database, clock, targets=many(25), end_handle="stop", concurrency=5, dial_rate=1000
    )
    engine = make_engine(database, scripted_dialer(), clock)
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    campaign_status = ""

    async def poll() -> str:
        return (await scenario.campaign()).status

    for _ in range(500):
        campaign_status = await poll()
        if campaign_status == "stop":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert campaign_status == "stop"
    assert {(await scenario.target(t)).status for t in scenario.target_ids} == {"done"}
