"""channels.md §1-3 in the engine: each attempt goes to its outplan's channel for its
destination type, channels pace across campaigns and workers, and email campaigns run
end to end against a real relay."""

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from outdial.channels.dialing import ChannelConfig, ChannelDialers, DialerBuilder
from outdial.channels.secrets import SecretBox
from outdial.clock import Clock, FakeClock
from outdial.db import Database
from outdial.dialers import Dialer, MockDialer, Outcome, OutcomeKind
from outdial.engine import Engine, EngineConfig
from outdial.engine import repository as repo
from outdial.engine.audit import audit_campaign
from outdial.models import Campaigncall, Channel, Outplan
from outdial.models.base import NIL_UUID
from tests.engine_support import (
    HangingDialer,
    Scenario,
    eventually,
    make_campaign,
    run_round,
    scripted_dialer,
    tel,
)
from tests.smtp_support import Relay

BOX = SecretBox("test channel key")
SIP = {"type": "sip", "target": "sip:bob@example.net", "target_name": "Bob", "name": "",
       "detail": ""}
EMAIL_SEND = {"type": "email_send", "option": {
    "subject": "Your renewal, {{ name }}", "content": "Dear {{ target_name }}: {{ data }}"}}


def email(address: str, name: str = "") -> dict[str, str]:
    return {"type": "email", "target": address, "target_name": name, "name": "", "detail": ""}


async def add_channel(
    scenario: Scenario, kind: str, settings: dict[str, Any], *, slot: str | None = None,
    password: str | None = None,
) -> uuid.UUID:
    """A channel of the scenario's customer, named by its outplan in `slot` when given."""
    channel_id = uuid.uuid4()
    async with scenario.database.transaction() as session:
        session.add(Channel(
            id=channel_id, customer_id=scenario.customer_id, name=kind, detail="", type=kind,
            settings=settings, password_encrypted=BOX.encrypt(password) if password else None,
            revision=1, tm_create=scenario.clock.now(),
        ))
    if slot is not None:
        await scenario.update(Outplan, scenario.outplan_id, **{slot: channel_id})
    return channel_id


SIP_SETTINGS = {"host": "127.0.0.1", "max_calls": 100, "max_calls_per_second": 100}
SMTP_SETTINGS = {"host": "127.0.0.1", "from_address": "news@example.com",
                 "max_messages_per_second": 50}


def builders_of(**dialers: Dialer) -> dict[str, DialerBuilder]:
    """Builders handing out the given dialer for each channel type (and counting builds)."""
    def builder(kind: str) -> DialerBuilder:
        def build(config: ChannelConfig, clock: Clock) -> Dialer:
            built.append(config)
            return dialers[kind]
        return build

    built: list[ChannelConfig] = []
    table = {kind: builder(kind) for kind in dialers}
    table["built"] = built  # type: ignore[assignment]
    return table


def engine_with(
    database: Database, clock: FakeClock, builders: dict[str, Any] | None = None,
    dialer: Dialer | None = None, **config: Any,
) -> Engine:
    channels = ChannelDialers(database, BOX, clock, builders)
    return Engine(database, dialer or scripted_dialer(), clock, EngineConfig(**config),
                  channels=channels)


async def test_an_outplan_without_channels_dials_through_the_servers_dialer(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    server_dialer = scripted_dialer()
    await run_round(engine_with(database, clock, {}, dialer=server_dialer))

    [call] = await scenario.calls()
    assert (call.channel_id, call.channel_type, call.outcome) == (NIL_UUID, "simulated", "answered")
    assert len(server_dialer.attempts) == 1


async def test_each_destination_type_goes_to_its_channel(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(
        database, clock, targets=[[tel("+15550000001")], [SIP], [email("a@example.com")]],
        actions=[EMAIL_SEND],
    )
    trunk = await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    relay_channel = await add_channel(scenario, "smtp", SMTP_SETTINGS,
                                      slot="email_channel_id")
    calls, mails, server = scripted_dialer(), scripted_dialer(), scripted_dialer()
    await run_round(engine_with(database, clock, builders_of(sip=calls, smtp=mails),
                                dialer=server))

    assert sorted(a.destination["type"] for a in calls.attempts) == ["sip", "tel"]
    assert [a.destination["type"] for a in mails.attempts] == ["email"]
    assert server.attempts == []
    by_type = {c.destination["type"]: c for c in await scenario.calls()}
    assert (by_type["tel"].channel_id, by_type["tel"].channel_type) == (trunk, "sip")
    assert (by_type["sip"].channel_id, by_type["sip"].channel_type) == (trunk, "sip")
    assert (by_type["email"].channel_id, by_type["email"].channel_type) == (relay_channel, "smtp")


async def test_a_destination_type_without_a_channel_fails_and_is_never_simulated(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[email("a@example.com")]])
    await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    server = scripted_dialer()
    await run_round(engine_with(database, clock, builders_of(sip=scripted_dialer()),
                                dialer=server))

    [call] = await scenario.calls()
    assert (call.outcome, call.channel_id, call.channel_type) == ("failed", NIL_UUID, "")
    assert server.attempts == []


async def test_a_simulated_channel_draws_from_its_own_weights(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel(f"+1555000000{n}")]
                                                            for n in range(5)])
    await add_channel(scenario, "simulated", {
        "p_answered": 0.0, "p_busy": 1.0, "p_no_answer": 0.0, "p_rejected": 0.0,
        "p_failed": 0.0, "p_unreachable": 0.0, "ring_min_ms": 0, "ring_max_ms": 0,
        "talk_min_ms": 0, "talk_max_ms": 0, "seed": 7}, slot="sip_channel_id")
    server = scripted_dialer()  # would answer everything
    await run_round(engine_with(database, clock, None, dialer=server))

    assert {c.outcome for c in await scenario.calls()} == {"busy"}
    assert {c.channel_type for c in await scenario.calls()} == {"simulated"}
    assert server.attempts == []


async def test_what_the_channel_said_is_recorded_on_the_campaigncall(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    trunk = MockDialer(lambda _: Outcome(OutcomeKind.ANSWERED, sip_code=200, sip_reason="OK",
                                         hangup_by="callee", digits="1"))
    await run_round(engine_with(database, clock, builders_of(sip=trunk)))

    [call] = await scenario.calls()
    assert (call.sip_code, call.sip_reason, call.hangup_by, call.digits) == (200, "OK", "callee", "1")
    assert (call.smtp_code, call.smtp_reply, call.message_id) == (0, "", "")


async def test_a_channels_dialer_is_built_once_and_rebuilt_when_the_channel_changes(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")],
                                                            [tel("+15550000002")]],
                                   concurrency=1, end_handle="continue")
    channel_id = await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    builders = builders_of(sip=scripted_dialer())
    engine = engine_with(database, clock, builders)

    await run_round(engine)
    await run_round(engine)
    assert len(builders["built"]) == 1
    await scenario.update(Channel, channel_id, revision=2,
                          settings={**SIP_SETTINGS, "max_calls": 5})
    await scenario.add_target(tel("+15550000003"))
    await run_round(engine)
    assert [c.revision for c in builders["built"]] == [1, 2]
    assert builders["built"][1].settings.max_calls == 5


async def test_why_an_attempt_ended_is_kept_readable_and_bounded(
    database: Database, clock: FakeClock
) -> None:
    """A trunk chooses its reason phrase and the Contact of its redirect: a NUL (which
    PostgreSQL cannot store), other controls, a lone surrogate or any length must not keep
    the outcome from being written, nor be read back otherwise than said here."""
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    contact = "<sip:elsewhere@example.net>" + "x" * 5000
    trunk = MockDialer(lambda _: Outcome(
        OutcomeKind.FAILED, sip_code=302, sip_reason="Moved\x00Temporarily\r\n\ud800",
        detail=f"redirected to {contact} (not followed)"))
    await run_round(engine_with(database, clock, builders_of(sip=trunk)))

    [call] = await scenario.calls()
    assert call.outcome == "failed" and call.sip_code == 302
    assert call.sip_reason == "Moved Temporarily  ?"
    assert call.outcome_detail.startswith("redirected to <sip:elsewhere@example.net>xxx")
    assert len(call.outcome_detail) == repo.REPORT_CHARS


async def test_an_attempt_reaped_after_its_engine_died_says_so(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    dead = Engine(database, HangingDialer(), clock, EngineConfig(lease_seconds=5))
    assert await dead.step() == 1
    clock.advance(10)
    reaper = Engine(database, scripted_dialer(), clock, EngineConfig())
    assert await reaper.reap_if_due() == 1
    for task in dead._tasks.values():  # the dead engine's dial, never to be written down
        task.cancel()
    [call] = await scenario.calls()
    assert call.outcome == "failed" and "its lease ran out" in call.outcome_detail


async def calls_in_flight(database: Database, channel_id: uuid.UUID) -> int:
    async with database.transaction() as session:
        return await session.scalar(select(func.count()).select_from(Campaigncall).where(
            Campaigncall.channel_id == channel_id, Campaigncall.status != "done")) or 0


async def test_a_trunks_max_calls_hold_across_campaigns_and_engines(
    database: Database, clock: FakeClock
) -> None:
    first = await make_campaign(database, clock, targets=[[tel(f"+155500001{n:02}")]
                                                         for n in range(20)], concurrency=50)
    second = await make_campaign(database, clock, targets=[[tel(f"+155500002{n:02}")]
                                                          for n in range(20)], concurrency=50)
    trunk = await add_channel(first, "sip", {**SIP_SETTINGS, "max_calls": 3},
                              slot="sip_channel_id")
    await second.update(Outplan, second.outplan_id, sip_channel_id=trunk)
    await second.update(Channel, trunk, customer_id=first.customer_id)
    hanging = HangingDialer()
    engines = [engine_with(database, clock, builders_of(sip=hanging)) for _ in range(2)]

    for _ in range(3):  # two engines claiming at the same moment, several times
        await asyncio.gather(*(engine.step() for engine in engines))
    assert await calls_in_flight(database, trunk) == 3
    assert sum(engine.in_flight for engine in engines) == 3

    hanging.release(OutcomeKind.BUSY)
    for engine in engines:
        await engine.wait_dials()
        await engine.record()
    assert await calls_in_flight(database, trunk) == 0
    clock.advance(1)
    await asyncio.gather(*(engine.step() for engine in engines))
    for engine in engines:
        await engine.wait_dials()
        await engine.record()
    async with database.transaction() as session:  # ended calls made room for three more
        assert await session.scalar(select(func.count()).select_from(Campaigncall).where(
            Campaigncall.channel_id == trunk)) == 6


async def test_a_trunks_calls_per_second_hold(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel(f"+15550000{n:03}")]
                                                            for n in range(10)],
                                   concurrency=100, dial_rate=100)
    await add_channel(scenario, "sip", {**SIP_SETTINGS, "max_calls_per_second": 2},
                      slot="sip_channel_id")
    engine = engine_with(database, clock, builders_of(sip=scripted_dialer()))

    assert await run_round(engine) == 2
    assert await run_round(engine) == 0
    clock.advance(1)
    assert await run_round(engine) == 2


async def test_a_relays_messages_per_second_hold(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock, targets=[[email(f"p{n}@example.com")]
                                                            for n in range(10)],
                                   concurrency=100, dial_rate=100, actions=[EMAIL_SEND])
    await add_channel(scenario, "smtp", {**SMTP_SETTINGS, "max_messages_per_second": 3},
                      slot="email_channel_id")
    engine = engine_with(database, clock, builders_of(smtp=scripted_dialer()))

    assert await run_round(engine) == 3
    assert await run_round(engine) == 0
    clock.advance(1)
    assert await run_round(engine) == 3


async def test_a_claim_waits_a_bounded_time_for_a_busy_trunk(
    database: Database, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: no claim can hold the trunk meanwhile")
    monkeypatch.setattr(repo, "CHANNEL_LOCK_TIMEOUT_MS", 200)
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    trunk = await add_channel(scenario, "sip", SIP_SETTINGS, slot="sip_channel_id")
    engine = engine_with(database, clock, builders_of(sip=scripted_dialer()))

    async with database.transaction() as holder:
        await holder.execute(select(Channel).where(Channel.id == trunk).with_for_update())
        async with database.transaction() as session:
            started = asyncio.get_running_loop().time()
            claimed = await repo.take_turn(session, scenario.campaign_id, worker_id="w",
                                           now=clock.now(), lease_seconds=30, most=10)
            waited = asyncio.get_running_loop().time() - started
            # The rest of the transaction runs on without the short lock timeout.
            timeout = await session.scalar(text("SELECT current_setting('lock_timeout')"))
    assert claimed == [] and 0.15 < waited < 5
    assert timeout != "200ms"
    assert await run_round(engine) == 1  # once the trunk is free, the campaign goes on


async def test_an_email_campaign_runs_to_the_end_through_a_real_relay(
    database: Database, clock: FakeClock, relay: Relay
) -> None:
    relay.handler.unknown.add("nobody@example.com")
    relay.handler.busy["later@example.com"] = 1
    scenario = await make_campaign(
        database, clock, max_try_counts=(2, 0, 0, 0, 0), try_interval=0, actions=[EMAIL_SEND],
        targets=[[email("alice@example.com", "Alice L.")], [email("nobody@example.com")],
                 [email("later@example.com", "Later")]],
    )
    async with database.transaction() as session:
        for target_id, (name, data) in zip(scenario.target_ids,
                                           [("Alice", "A-1"), ("Nobody", "N-1"), ("Lee", "L-1")],
                                           strict=True):
            await session.execute(text("UPDATE outdial_targets SET name = :n, data = :d "
                                       "WHERE id = :i"),
                                  {"n": name, "d": data, "i": target_id.hex if database.is_sqlite
                                   else target_id})
    settings = relay.channel_settings()
    password = settings.pop("password")
    channel_id = await add_channel(scenario, "smtp", settings, slot="email_channel_id",
                                   password=password)
    engine = engine_with(database, clock)  # the real channel dialers

    for _ in range(4):
        await run_round(engine)
    await engine.aclose_dialers()

    calls = await scenario.calls()
    outcomes = sorted((c.destination["target"], c.try_count, c.outcome, c.smtp_code)
                      for c in calls)
    assert outcomes == [
        ("alice@example.com", 1, "answered", 250),
        ("later@example.com", 1, "failed", 451),
        ("later@example.com", 2, "answered", 250),
        # The engine retries every outcome but an answer while tries are left (engine.md §2).
        ("nobody@example.com", 1, "invalid_destination", 550),
        ("nobody@example.com", 2, "invalid_destination", 550),
    ]
    assert {c.channel_id for c in calls} == {channel_id}
    delivered = {r.recipients[0]: r.message for r in relay.handler.received}
    assert delivered["alice@example.com"]["Subject"] == "Your renewal, Alice"
    assert delivered["alice@example.com"].get_content() == "Dear Alice L.: A-1"
    assert delivered["later@example.com"]["Subject"] == "Your renewal, Lee"
    answered = [c for c in calls if c.outcome == "answered"]
    assert {c.message_id for c in answered} == {m["Message-ID"] for m in delivered.values()}
    assert (await scenario.campaign()).status == "stop"
    async with database.transaction() as session:
        assert await audit_campaign(session, scenario.campaign_id) == []




class ClosingDialer(MockDialer):
    """A dialer that remembers being closed."""

    def __init__(self) -> None:
        super().__init__(lambda _: Outcome(OutcomeKind.ANSWERED))
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_a_replaced_dialer_is_closed_once_its_last_attempt_ends(
    database: Database, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock)
    channel_id = await add_channel(scenario, "sip", SIP_SETTINGS)
    made: list[ClosingDialer] = []

    def build(config: ChannelConfig, clock: Clock) -> Dialer:
        made.append(ClosingDialer())
        return made[-1]

    dialers = ChannelDialers(database, BOX, clock, {"sip": build})
    async with dialers.use(channel_id, 1) as first:
        await scenario.update(Channel, channel_id, revision=2)
        async with dialers.use(channel_id, 2) as second:
            assert second is not first and not made[0].closed  # still in use by a call
        assert not made[1].closed
    await eventually(lambda: made[0].closed)  # closed in a task of its own, once unused
    assert not made[1].closed
    async with dialers.use(channel_id, 2) as again:
        assert again is made[1] and len(made) == 2
    await dialers.aclose()
    assert made[1].closed


async def test_the_last_attempt_on_a_replaced_dialer_ends_without_waiting_for_its_close(
    database: Database, clock: FakeClock
) -> None:
    """Closing a replaced SIP dialer may take the registrar's time (an un-REGISTER). The last
    attempt on it is not kept waiting meanwhile: its dial_timeout would otherwise replace the
    outcome it had (busy, a wrong number) with no_answer."""
    scenario = await make_campaign(database, clock)
    channel_id = await add_channel(scenario, "sip", SIP_SETTINGS)
    let_close = asyncio.Event()

    class SlowToClose(ClosingDialer):
        async def aclose(self) -> None:
            await let_close.wait()
            self.closed = True

    made: list[SlowToClose] = []

    def build(config: ChannelConfig, clock: Clock) -> Dialer:
        made.append(SlowToClose())
        return made[-1]

    dialers = ChannelDialers(database, BOX, clock, {"sip": build})

    async def last_attempt_on_the_old_settings() -> None:
        async with dialers.use(channel_id, 1):
            await scenario.update(Channel, channel_id, revision=2)
            async with dialers.use(channel_id, 2):
                pass

    ended = asyncio.ensure_future(last_attempt_on_the_old_settings())
    await eventually(ended.done)
    await ended
    assert not made[0].closed  # still closing, apart from the attempt
    let_close.set()
    await dialers.aclose()  # waits for every closing under way
    assert made[0].closed and made[1].closed


async def test_a_trunk_on_a_fixed_local_port_edited_mid_call_waits_for_the_port(
    database: Database, clock: FakeClock, tmp_path
) -> None:
    """A SIP channel bound to a fixed local_port is edited while a call talks: the old
    settings' dialer keeps the port until that call ends. Calls on the new settings wait for
    it (and go out with them) instead of failing to bind; one stopped while it waits fails,
    saying why."""
    from outdial.channels.dialing import sip_trunk
    from outdial.dialers.sip import SipDialer
    from tests.sip.attempts import make_attempt
    from tests.sip.sipp import Sipp, free_port

    scenario = await make_campaign(database, clock)
    async with Sipp("answer.xml", tmp_path, calls=2) as sipp:
        settings = {**SIP_SETTINGS, "port": sipp.port, "local_port": free_port(),
                    "caller_id": "+14155550100"}
        channel_id = await add_channel(scenario, "sip", settings)
        dialers = ChannelDialers(database, BOX, clock,
                                 {"sip": lambda config, clock: SipDialer(sip_trunk(config))})
        talking = asyncio.Event()
        first, _ = make_attempt(actions=[{"type": "sleep", "option": {"duration": 1500}}])
        first = dataclasses.replace(first, answered=talking.set)

        async def call(attempt, revision: int) -> Outcome:
            async with dialers.use(channel_id, revision) as dialer:
                return await dialer.dial(attempt)

        on_old = asyncio.ensure_future(call(first, 1))
        await asyncio.wait_for(talking.wait(), 10)
        await scenario.update(Channel, channel_id, revision=2,
                              settings={**settings, "caller_id": "+14155550199"})
        stopped, _ = make_attempt()
        waiting = asyncio.ensure_future(call(stopped, 2))
        for _ in range(1000):  # until the new settings' dialer is built and held by it
            held = dialers._held.get(channel_id)
            if held is not None and held.revision == 2 and held.users == 1:
                break  # from there, the attempt runs into the wait with no pause between
            await asyncio.sleep(0.01)
        waiting.cancel()  # its dial_timeout, as the engine stops it
        told = await waiting
        assert told.kind is OutcomeKind.FAILED and "still held" in told.detail
        second, second_answered = make_attempt()
        on_new = asyncio.ensure_future(call(second, 2))
        old_outcome = await asyncio.wait_for(on_old, 20)
        new_outcome = await asyncio.wait_for(on_new, 20)
        await dialers.aclose()
        assert await sipp.finished() == 0, sipp.explain()
    assert old_outcome.kind is OutcomeKind.ANSWERED and old_outcome.talk_ms >= 1400
    assert new_outcome.kind is OutcomeKind.ANSWERED and second_answered
    invites = [block for block in sipp.messages().split("\n\n") if block.lstrip().startswith(
        "INVITE ") or "\nINVITE " in block]
    froms = " ".join(invites)
    assert "+14155550100" in froms and "+14155550199" in froms


async def test_every_edit_while_the_port_is_held_waits_for_its_holder(
    database: Database, clock: FakeClock
) -> None:
    """Edited twice while a call on the first settings holds the fixed port: the third
    settings' dialer waits for that first one too, not only for the second (which never
    bound it)."""
    from outdial.channels.dialing import sip_trunk
    from outdial.dialers.sip import SipDialer
    from tests.sip.sipp import free_port

    scenario = await make_campaign(database, clock)
    settings = {**SIP_SETTINGS, "port": free_port(), "local_port": free_port()}
    channel_id = await add_channel(scenario, "sip", settings)
    dialers = ChannelDialers(database, BOX, clock,
                             {"sip": lambda config, clock: SipDialer(sip_trunk(config))})
    talking, hang_up = asyncio.Event(), asyncio.Event()

    async def call_on_the_first_settings() -> None:
        async with dialers.use(channel_id, 1) as first:
            await first.start()  # the port is bound
            talking.set()
            await hang_up.wait()

    call = asyncio.ensure_future(call_on_the_first_settings())
    await asyncio.wait_for(talking.wait(), 10)
    for revision in (2, 3):
        await scenario.update(Channel, channel_id, revision=revision,
                              settings={**settings, "caller_id": f"+1415555010{revision}"})
        async with dialers.use(channel_id, revision) as dialer:
            assert isinstance(dialer, SipDialer)
            assert dialer.port_held_by_predecessor, revision
    hang_up.set()
    await asyncio.wait_for(call, 10)
    async with dialers.use(channel_id, 3) as third:
        assert isinstance(third, SipDialer) and not third.port_held_by_predecessor
        await third.start()  # the port is free: it binds
    await dialers.aclose()


async def test_an_idle_replaced_dialer_is_waited_for_while_it_unregisters(
    database: Database, clock: FakeClock, tmp_path
) -> None:
    """A channel edited while no call runs: its old dialer closes at once, but unregistering
    takes the registrar's time, with the fixed port still bound. Attempts on the new settings
    in the meantime wait for it, instead of failing to bind."""
    from outdial.channels.dialing import sip_trunk
    from outdial.dialers.sip import SipDialer
    from tests.sip.sipp import Sipp, free_port

    async with Sipp("register_slow_unregister.xml", tmp_path) as sipp:
        scenario = await make_campaign(database, clock)
        settings = {**SIP_SETTINGS, "port": sipp.port, "local_port": free_port(),
                    "register": True}
        channel_id = await add_channel(scenario, "sip", settings)
        dialers = ChannelDialers(database, BOX, clock,
                                 {"sip": lambda config, clock: SipDialer(sip_trunk(config))})
        try:
            async with dialers.use(channel_id, 1) as first:
                await asyncio.wait_for(first.start(), 10)  # registered, the port bound
            await scenario.update(Channel, channel_id, revision=2,
                                  settings={**settings, "register": False})

            async def attempt() -> None:
                async with dialers.use(channel_id, 2) as dialer:
                    await asyncio.wait_for(dialer.start(), 10)  # binds the fixed port

            await asyncio.gather(attempt(), attempt())
        finally:
            await dialers.aclose()
        assert await sipp.finished() == 0, sipp.explain()


def port_is_bound(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


async def test_a_replaced_dialer_stopped_while_it_registers_lets_its_port_go(
    database: Database, clock: FakeClock
) -> None:
    """The old settings' dialer bound the fixed port and waits for a registrar that does not
    answer; its attempt is stopped (dial_timeout). Closing it stops its registration too, so
    the port goes to the new settings' dialer instead of staying bound for good."""
    import socket

    from outdial.channels.dialing import sip_trunk
    from outdial.dialers.sip import SipDialer
    from tests.sip.sipp import free_port

    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # reads, never answers
    registrar.bind(("127.0.0.1", 0))
    registrar.setblocking(False)
    scenario = await make_campaign(database, clock)
    local = free_port()
    settings = {**SIP_SETTINGS, "port": registrar.getsockname()[1], "local_port": local,
                "register": True}
    channel_id = await add_channel(scenario, "sip", settings)
    dialers = ChannelDialers(database, BOX, clock,
                             {"sip": lambda config, clock: SipDialer(sip_trunk(config))})

    async def start(revision: int) -> None:
        async with dialers.use(channel_id, revision) as dialer:
            await dialer.start()

    try:
        old = asyncio.ensure_future(start(1))
        register = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recv(registrar, 65535), 10)
        assert register.startswith(b"REGISTER ")  # sent from the bound fixed port
        await scenario.update(Channel, channel_id, revision=2,
                              settings={**settings, "register": False})
        new = asyncio.ensure_future(start(2))  # waits for the old dialer's port
        for _ in range(1000):  # until the new dialer is built and follows the old one
            held = dialers._held.get(channel_id)
            if held is not None and held.revision == 2:
                break
            await asyncio.sleep(0.01)
        assert not new.done()
        old.cancel()  # its dial_timeout
        await asyncio.gather(old, return_exceptions=True)
        await asyncio.wait_for(new, 10)  # bound the port: no "Address already in use"
    finally:
        await dialers.aclose()
        registrar.close()
    assert not port_is_bound(local)


async def test_an_attempt_stopped_while_the_old_dialer_unregisters_does_not_keep_the_port(
    database: Database, clock: FakeClock, tmp_path
) -> None:
    """The first attempt on new settings closes the idle old dialer, which takes the
    registrar's time to unregister; the attempt is stopped meanwhile. The closing goes on,
    and lets the port go: later attempts bind it."""
    from outdial.channels.dialing import sip_trunk
    from outdial.dialers.sip import SipDialer
    from tests.sip.sipp import Sipp, free_port

    async with Sipp("register_slow_unregister.xml", tmp_path) as sipp:
        scenario = await make_campaign(database, clock)
        local = free_port()
        settings = {**SIP_SETTINGS, "port": sipp.port, "local_port": local, "register": True}
        channel_id = await add_channel(scenario, "sip", settings)
        dialers = ChannelDialers(database, BOX, clock,
                                 {"sip": lambda config, clock: SipDialer(sip_trunk(config))})

        async def start(revision: int) -> None:
            async with dialers.use(channel_id, revision) as dialer:
                await asyncio.wait_for(dialer.start(), 10)

        try:
            await start(1)  # registered, the port bound
            await scenario.update(Channel, channel_id, revision=2,
                                  settings={**settings, "register": False})
            stopped = asyncio.ensure_future(start(2))
            for _ in range(1000):  # until the old dialer is closing (unregistering)
                held = dialers._held.get(channel_id)
                if held is not None and held.revision == 2:
                    break
                await asyncio.sleep(0.01)
            stopped.cancel()  # its dial_timeout
            await asyncio.gather(stopped, return_exceptions=True)
            await start(2)  # waits for the closing, then binds
            await start(2)
        finally:
            await dialers.aclose()
        assert await sipp.finished() == 0, sipp.explain()
    assert not port_is_bound(local)
