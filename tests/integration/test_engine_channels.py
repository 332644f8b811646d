"""channels.md §1-3 in the engine: each attempt goes to its outplan's channel for its
destination type, channels pace across campaigns and workers, and email campaigns run
end to end against a real relay."""

import asyncio
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
    assert made[0].closed and not made[1].closed
    async with dialers.use(channel_id, 2) as again:
        assert again is made[1] and len(made) == 2
    await dialers.aclose()
    assert made[1].closed
