"""A process whose machine's clock disagrees with the database server's takes nothing over by
lease: an engine stops claiming and taking over attempts (and hangs up the calls whose leases
its slow clock cut short), a webhook deliverer claims no deliveries, a server fails no other
server's import job."""

import datetime as dt
import logging
import uuid

import pytest

from outdial.channels.secrets import SecretBox
from outdial.clock import SystemClock
from outdial.clock_check import clock_offset
from outdial.engine.worker import Engine, EngineConfig
from outdial.events.outbox import emit
from outdial.imports.service import ImportRunner
from outdial.models import ImportJob, Webhook
from outdial.webhooks.delivery import Deliverer, DeliveryConfig
from outdial.webhooks.signing import generate_secret
from tests.engine_support import HangingDialer, eventually, make_campaign, tel
from tests.webhook_support import Receiver

A = tel("+15550000001")
ALLOWED = 5.0


class MachineClock(SystemClock):
    """This machine's real time, set `offset` seconds off (an NTP-less machine)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> dt.datetime:
        return super().now() + dt.timedelta(seconds=self.offset)


def engine_on(database, clock: MachineClock) -> Engine:
    # Compared every 10 s, and at once when the clock was stepped: the tests step it.
    config = EngineConfig(max_clock_offset_seconds=ALLOWED)
    return Engine(database, HangingDialer(), clock, config)


def needs_a_server(database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server clock: its processes share one machine's")


async def test_the_offset_is_read_from_the_database_servers_clock(database) -> None:
    needs_a_server(database)
    offset = await clock_offset(database, MachineClock(-42.0))
    assert offset is not None
    # The server runs on this machine: its clock is this machine's, 42 s ahead of ours.
    assert offset.seconds == pytest.approx(-42.0, abs=1.0)
    assert offset.beyond(ALLOWED)
    in_time = await clock_offset(database, MachineClock())
    assert in_time is not None and not in_time.beyond(ALLOWED)


async def test_a_wait_for_a_pooled_connection_is_not_taken_for_uncertainty(database) -> None:
    """Only the statement's round trip is timed: were the wait for a connection timed too (a
    busy pool), `within` would grow with it and hide an offset as large."""
    from sqlalchemy import event

    needs_a_server(database)
    clock = MachineClock()

    def a_busy_pool(*_: object) -> None:
        clock.offset += 10  # the checkout took 10 s of this clock's time

    event.listen(database.engine.sync_engine.pool, "checkout", a_busy_pool)
    try:
        offset = await clock_offset(database, clock)
    finally:
        event.remove(database.engine.sync_engine.pool, "checkout", a_busy_pool)
    assert offset is not None and offset.within < 1
    assert offset.seconds == pytest.approx(clock.offset, abs=1.0)
    assert offset.beyond(ALLOWED)


async def test_a_clock_ahead_stops_claims_until_it_agrees_again(database, caplog) -> None:
    needs_a_server(database)
    caplog.set_level(logging.INFO, logger="outdial.engine")
    scenario = await make_campaign(database, MachineClock(), targets=[[A]])
    clock = MachineClock(60.0)
    engine = engine_on(database, clock)

    assert await engine.step() == 0
    assert await engine.step() == 0  # said once, not at every round
    [said] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "60.0 s ahead of the database server's" in said.getMessage()
    assert "NTP" in said.getMessage()
    assert [c.status for c in await scenario.calls()] == []

    clock.offset = 0.0
    assert await engine.step() == 1
    assert any("agrees with the database server's again" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("offset", [-60.0, 3600.0])
async def test_a_clock_found_off_renews_its_leases_on_the_servers_time(
    database, offset: float
) -> None:
    """Renewed by a clock 60 s behind, a lease of 30 s would have ended already for every
    other worker, which would dial the person again while the call goes on; by a clock an
    hour ahead, it would keep the attempt from every reaper for an hour after this worker
    died. Found off, the engine renews on the server's time: the call goes on, covered, and
    nothing new is claimed until the clocks agree."""
    needs_a_server(database)
    clock = MachineClock()
    scenario = await make_campaign(database, clock, targets=[[A], [tel("+15550000002")]])
    engine = engine_on(database, clock)
    assert await engine.step() == 2

    clock.offset = offset  # stepped, seconds after the last comparison
    await engine.heartbeat()
    engine.hang_up_unrenewed()
    assert engine.in_flight == 2
    expected = MachineClock().now() + dt.timedelta(seconds=30)  # the server's, on this machine
    for call in await scenario.calls():
        assert abs((call.tm_lease_expire - expected).total_seconds()) < 2
    assert await engine.step() == 0


async def test_a_clock_behind_by_less_than_it_can_tell_hangs_up_early(database) -> None:
    """Within the allowed offset the clock is not corrected, but each lease ends sooner for
    the others by as much as it is behind: the calls are hung up that much earlier."""
    needs_a_server(database)
    clock = MachineClock()
    await make_campaign(database, clock, targets=[[A]])
    engine = engine_on(database, clock)
    assert await engine.step() == 1
    clock.offset = -4.5  # allowed (5 s), not stepped enough to be compared again at once
    engine.clock_guard._next_check = 0.0
    await engine.heartbeat()
    # 30 s leases, a check every 10 s and a renewal's 5 s: hung up 5 s (peers ahead) + 4.5 s
    # (this clock behind) sooner than a clock in time would be.
    engine.hang_up_unrenewed(30 - 15)
    assert engine.in_flight == 1
    engine.hang_up_unrenewed(30 - 9)
    await eventually(lambda: engine.in_flight == 0)


async def test_a_clock_behind_within_the_allowed_offset_keeps_its_calls(database) -> None:
    """A 6 s lease with 1.9 s allowed (under a third, as the settings require) and this clock
    1.5 s behind: not corrected, so every lease nears its end for the others sooner. The
    heartbeat renews sooner too, and keeps its calls for a whole lease and more — it does not
    hang them up while it renews."""
    import asyncio

    needs_a_server(database)
    clock = MachineClock(-1.5)
    scenario = await make_campaign(database, clock, targets=[[A]])
    config = EngineConfig(lease_seconds=6.0, max_clock_offset_seconds=1.9)
    engine = Engine(database, HangingDialer(), clock, config)
    assert await engine.step() == 1
    [claimed] = await scenario.calls()
    stop = asyncio.Event()
    beats = asyncio.create_task(engine._heartbeats(stop))
    try:
        await clock.sleep(config.lease_seconds * 1.5)  # this machine's time: the loop's own
    finally:
        stop.set()
        await beats
    assert engine.clock_guard.problem is None and engine.clock_guard.behind >= 1.5
    assert engine.in_flight == 1
    [renewed] = await scenario.calls()
    assert renewed.tm_lease_expire > claimed.tm_lease_expire + dt.timedelta(seconds=6)


async def test_a_small_offset_neither_stops_claims_nor_hangs_up(database) -> None:
    needs_a_server(database)
    clock = MachineClock(-3.0)
    await make_campaign(database, clock, targets=[[A], [tel("+15550000002")]])
    engine = engine_on(database, clock)
    assert await engine.step() == 2
    await engine.heartbeat()
    engine.hang_up_unrenewed()
    assert engine.in_flight == 2


async def test_sqlite_has_no_server_clock_to_disagree_with(database) -> None:
    if database.engine.dialect.name != "sqlite":
        pytest.skip("the PostgreSQL cases are above")
    clock = MachineClock(3600.0)
    await make_campaign(database, clock, targets=[[A]])
    engine = engine_on(database, clock)
    assert await clock_offset(database, clock) is None
    assert await engine.step() == 1


async def test_a_deliverer_whose_clock_is_off_claims_no_deliveries(database) -> None:
    needs_a_server(database)
    box = SecretBox("test channel key")
    scenario = await make_campaign(database, MachineClock())
    receiver = Receiver(SystemClock().now).start()
    try:
        async with database.transaction() as session:
            session.add(Webhook(
                id=uuid.uuid4(), customer_id=scenario.customer_id, url=receiver.url,
                event_types=[], secret_encrypted=box.encrypt(generate_secret()),
                status="enabled", detail="", event_cursor=0, failures=0,
                tm_create=SystemClock().now()))
            await emit(session, "campaign_updated", scenario.customer_id, {"n": 1})
        clock = MachineClock(-60.0)
        deliverer = Deliverer(database, clock, box, DeliveryConfig(
            allow_private_networks=True, max_clock_offset_seconds=ALLOWED))
        assert await deliverer.step() == 0
        clock.offset = 0.0
        assert await deliverer.step() == 1
        await deliverer.wait_idle()
        assert len(receiver.received) == 1
        await deliverer.aclose()
    finally:
        receiver.stop()


async def test_a_deliverer_whose_clock_is_found_off_renews_on_the_servers_time(
    database,
) -> None:
    """A deliverer's clock stepped back 60 s while it sends a run: renewed by that clock, the
    run's lease would be over for the others, which would send it again meanwhile."""
    needs_a_server(database)
    box = SecretBox("test channel key")
    scenario = await make_campaign(database, MachineClock())
    clock = MachineClock()
    deliverer = Deliverer(database, clock, box, DeliveryConfig(
        allow_private_networks=True, max_clock_offset_seconds=ALLOWED))
    webhook = Webhook(
        id=uuid.uuid4(), customer_id=scenario.customer_id, url="http://127.0.0.1:9/",
        event_types=[], secret_encrypted=box.encrypt(generate_secret()), status="enabled",
        detail="", event_cursor=0, failures=0, tm_create=clock.now(),
        owner=deliverer.worker_id, tm_lease_expire=clock.now() + dt.timedelta(seconds=30))
    async with database.transaction() as session:
        session.add(webhook)
    try:
        clock.offset = -60.0  # stepped back, seconds after the last comparison
        await deliverer.heartbeat()
    finally:
        await deliverer.aclose()
    async with database.transaction() as session:
        until = (await session.get(Webhook, webhook.id)).tm_lease_expire
    expected = MachineClock().now() + dt.timedelta(seconds=30)  # the server's, on this machine
    assert abs((until - expected).total_seconds()) < 2


async def test_a_server_whose_clock_is_off_fails_no_other_servers_import(
    database, settings
) -> None:
    needs_a_server(database)
    scenario = await make_campaign(database, MachineClock())
    job_id = uuid.uuid4()
    now = SystemClock().now()
    async with database.transaction() as session:
        session.add(ImportJob(
            id=job_id, customer_id=scenario.customer_id, outdial_id=scenario.outdial_id,
            status="running", format="csv", default_region="", validation="possible",
            dedupe=False, rows_total=5, rows_imported=0, rows_rejected=0, rows_duplicate=0,
            errors=[], tm_create=now, owner="another-host/1234/abc",
            # Alive for the others: its lease ends in 30 s, but 60 s ahead it looks expired.
            tm_lease_expire=now + dt.timedelta(seconds=30)))

    async def status() -> str:
        async with database.transaction() as session:
            return (await session.get(ImportJob, job_id)).status

    guarded = settings.model_copy(update={"max_clock_offset_seconds": ALLOWED})
    for offset, expected in [(60.0, "running"), (3600.0 * 24, "running")]:
        runner = ImportRunner(guarded, MachineClock(offset))
        await runner.start()
        await runner.close()
        assert await status() == expected, offset
    unguarded = settings.model_copy(update={"max_clock_offset_seconds": 0.0})
    runner = ImportRunner(unguarded, MachineClock(60.0))  # the check off: taken as abandoned
    await runner.start()
    await runner.close()
    assert await status() == "failed"


async def test_a_server_whose_clock_is_far_ahead_takes_no_live_imports_dedupe_turn(
    database, settings
) -> None:
    """Another server's deduping import is alive (its lease ends in 30 s); to a clock an hour
    ahead it looks abandoned. Taking its turn would let both imports add the same number."""
    from outdial.errors import FailedPrecondition

    needs_a_server(database)
    scenario = await make_campaign(database, MachineClock())
    now = SystemClock().now()

    def job(owner: str, turn: bool) -> ImportJob:
        return ImportJob(
            id=uuid.uuid4(), customer_id=scenario.customer_id, outdial_id=scenario.outdial_id,
            status="running", format="csv", default_region="", validation="possible",
            dedupe=True, dedupe_turn=turn, rows_total=5, rows_imported=0, rows_rejected=0,
            rows_duplicate=0, errors=[], tm_create=now, owner=owner,
            tm_lease_expire=now + dt.timedelta(seconds=30))

    live, mine = job("another-host/1234/abc", True), job("this-host/1/def", False)
    async with database.transaction() as session:
        session.add_all([live, mine])
    guarded = settings.model_copy(update={"max_clock_offset_seconds": ALLOWED,
                                          "import_dedupe_wait_seconds": 0})
    runner = ImportRunner(guarded, MachineClock(3600.0))
    try:
        with pytest.raises(FailedPrecondition) as refused:
            await runner._take_dedupe_turn(mine)
    finally:
        await runner.close()
    assert str(live.id) in str(refused.value)
    async with database.transaction() as session:
        assert (await session.get(ImportJob, mine.id)).dedupe_turn is False
