"""observe.md §2: delivery from the outbox to real receivers — signed by the Standard Webhooks
convention, at least once, in event order per endpoint, with backoff and jitter, disabled
after failures in a row, guarded against private addresses, and never slowing the dialing."""

import asyncio
import datetime as dt
import random
import socket
import ssl
from pathlib import Path
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from outdial import metrics
from outdial.channels.secrets import SecretBox
from outdial.clock import FakeClock, SystemClock, utcnow
from outdial.db import Database
from outdial.dialers import MockDialer, Outcome, OutcomeKind
from outdial.events.outbox import EVENTS, emit, event_json
from outdial.models import Campaigncall, Customer, Webhook, WebhookDelivery
from outdial.webhooks import sending
from outdial.webhooks.delivery import Deliverer, DeliveryConfig
from outdial.webhooks.sending import Message, Sender
from outdial.webhooks.signing import generate_secret
from tests.integration.test_metrics import Scrape
from tests.engine_support import make_campaign, make_engine, tel
from tests.smtp_support import self_signed_certificate
from tests.webhook_support import Receiver

BOX = SecretBox("test channel key")
LOCAL = DeliveryConfig(allow_private_networks=True, timeout_seconds=5.0)


@pytest.fixture
def clock() -> FakeClock:
    # Receivers check the signature's timestamp against the real time: start there.
    return FakeClock(utcnow().replace(microsecond=0))


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[Receiver]:
    found = Receiver(clock.now).start()
    yield found
    found.stop()


@pytest.fixture(autouse=True)
async def close_deliverers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Every deliverer a test makes has its receiver connections closed at the end."""
    made: list[Deliverer] = []
    original = Deliverer.__init__

    def init(self: Deliverer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Deliverer, "__init__", init)
    yield
    for deliverer in made:
        await deliverer.aclose()


@pytest.fixture
async def customer_id(database: Database, clock: FakeClock) -> uuid.UUID:
    found = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Customer(id=found, name="c", tm_create=clock.now()))
    return found


async def add_webhook(
    database: Database, customer_id: uuid.UUID, url: str, secret: str, clock: FakeClock,
    event_types: list[str] | None = None,
) -> uuid.UUID:
    webhook_id = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Webhook(
            id=webhook_id, customer_id=customer_id, url=url, event_types=event_types or [],
            secret_encrypted=BOX.encrypt(secret), status="enabled", detail="", event_cursor=0,
            failures=0, tm_create=clock.now()))
    return webhook_id


async def add_events(database: Database, customer_id: uuid.UUID, *types: str) -> None:
    for n, event_type in enumerate(types):
        async with database.transaction() as session:
            await emit(session, event_type, customer_id, {"n": n})


async def deliver(deliverer: Deliverer) -> None:
    """One round, and every send it started ended and written down."""
    await deliverer.step()
    await deliverer.wait_idle()


async def deliveries(database: Database, webhook_id: uuid.UUID) -> list[WebhookDelivery]:
    async with database.transaction() as session:
        return list(await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.event_id)))


async def test_every_message_verifies_with_the_standardwebhooks_package(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    secret = generate_secret()
    receiver.secret = secret  # the receiver raises, answering nothing, on a bad signature
    webhook_id = await add_webhook(database, customer_id, receiver.url, secret, clock)
    filtered = Receiver(clock.now, secret=secret).start()
    try:
        await add_webhook(database, customer_id, filtered.url, secret, clock,
                          event_types=["campaign_updated"])
        await add_events(database, customer_id, "campaign_updated", "campaigncall_created",
                         "campaign_updated", "import_updated")
        await deliver(Deliverer(database, clock, BOX, LOCAL))
    finally:
        filtered.stop()
    async with database.transaction() as session:
        events = (await session.execute(select(EVENTS).order_by(EVENTS.c.id))).all()
    assert [r.verified for r in receiver.received] == [True] * 4
    # webhook-id is the event's id; the body is the event as GET /v1.0/events shows it.
    assert [r.message_id for r in receiver.received] == [str(e.id) for e in events]
    assert [r.json for r in receiver.received] == [event_json(e) for e in events]
    assert [r.json["type"] for r in filtered.received] == ["campaign_updated"] * 2
    assert all(r.verified for r in filtered.received)
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts, d.response_code, d.error) for d in log] == [
        ("delivered", 1, 200, "")] * 4


async def test_an_answer_without_a_length_is_read_to_the_connection_s_end(
    database: Database, clock: FakeClock, customer_id: uuid.UUID
) -> None:
    """Python's http.server as it answers by default (HTTP/1.0, no Content-Length, closed
    after): a 2xx is delivered, a 4xx is the receiver's refusal with its code — not a dropped
    connection."""
    plain = Receiver(clock.now, plain=True, status=lambda n: 200 if n < 2 else 400).start()
    try:
        webhook_id = await add_webhook(database, customer_id, plain.url, generate_secret(),
                                       clock)
        await add_events(database, customer_id, "campaign_updated", "campaign_updated",
                         "campaign_updated")
        await deliver(Deliverer(database, clock, BOX, LOCAL))
    finally:
        plain.stop()
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.response_code, d.error) for d in log] == [
        ("delivered", 200, ""), ("delivered", 200, ""),
        ("pending", 400, "the receiver answered 400")], log


@pytest.mark.parametrize("url", ["http://a..b/hook", f"http://{'a' * 70}.example/hook"])
async def test_a_url_no_resolver_can_look_up_is_a_failed_attempt_not_a_loop(
    database: Database, clock: FakeClock, customer_id: uuid.UUID, url: str
) -> None:
    """A URL stored before hosts were checked: each attempt fails, is written down and waits
    for its backoff (the deliverer once logged a traceback, released the claim and took it
    again, hundreds of times a second, writing nothing)."""
    webhook_id = await add_webhook(database, customer_id, url, generate_secret(), clock)
    await add_events(database, customer_id, "campaign_updated")
    deliverer = Deliverer(database, clock, BOX, LOCAL)
    await deliver(deliverer)
    await deliver(deliverer)  # not due again yet: nothing more is tried
    [logged] = await deliveries(database, webhook_id)
    assert (logged.status, logged.attempts, logged.response_code) == ("pending", 1, 0)
    assert "does not resolve" in logged.error or "Error" in logged.error, logged.error


async def test_a_receiver_failing_three_times_gets_each_event_in_order_after_backoff(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    receiver.status = lambda n: 500 if n < 3 else 200
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, "campaign_updated", "campaign_updated",
                     "campaign_updated")
    config = DeliveryConfig(allow_private_networks=True, first_delay_seconds=30)
    deliverer = Deliverer(database, clock, BOX, config, rng=random.Random(7))
    await deliver(deliverer)
    for _ in range(3):
        [head, *_] = await deliveries(database, webhook_id)
        assert head.status == "pending"
        # Just before it is due, nothing is sent: the others wait behind it.
        clock.advance((head.next_attempt_at - clock.now()).total_seconds() - 1)
        sent = len(receiver.received)
        await deliver(deliverer)
        assert len(receiver.received) == sent
        clock.advance(1)
        await deliver(deliverer)
    ids = [int(r.message_id) for r in receiver.received]
    first, second, third = sorted(set(ids))
    assert ids == [first, first, first, first, second, third]
    times = [r.at for r in receiver.received[:4]]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    # Doubling from 30 s, each delay within a fifth of it either way (the jitter).
    for gap, nominal in zip(gaps, (30, 60, 120), strict=True):
        assert nominal * 0.8 <= gap <= nominal * 1.2, gaps
    assert len(set(g / n for g, n in zip(gaps, (30, 60, 120)))) == 3  # jittered, not fixed
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts) for d in log] == [
        ("delivered", 4), ("delivered", 1), ("delivered", 1)]
    async with database.transaction() as session:
        assert (await session.get(Webhook, webhook_id)).failures == 0  # a success resets it


async def test_a_receiver_failing_mid_run_loses_nothing_and_gets_the_rest_again_in_order(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """The first message of a run goes alone, the rest pipelined on the same connection. The
    receiver rejects the fourth: the three before it are delivered, the four written behind it
    count as not sent (they reached the receiver) and go again after it, in order."""
    receiver.status = lambda n: 500 if n == 3 else 200
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 8)
    deliverer = Deliverer(database, clock, BOX, LOCAL, rng=random.Random(3))
    await deliver(deliverer)
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts) for d in log] == [("delivered", 1)] * 3 + [
        ("pending", 1)] + [("pending", 0)] * 4
    assert log[3].response_code == 500
    first_round = [int(r.message_id) for r in receiver.received]
    ids = [d.event_id for d in log]
    # All eight were written, in order, on one connection; the sender hangs up on the rejection,
    # so the receiver may not have read the last of those behind it.
    assert 4 <= len(first_round) <= 8 and first_round == ids[:len(first_round)]
    clock.advance((log[3].next_attempt_at - clock.now()).total_seconds())
    await deliver(deliverer)
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts) for d in log] == [("delivered", 1)] * 3 + [
        ("delivered", 2)] + [("delivered", 1)] * 4
    # The rejected one and everything behind it again, in order, once each.
    second_round = receiver.received[len(first_round):]
    assert [int(r.message_id) for r in second_round] == ids[3:]
    assert all(r.answered == 200 for r in second_round)


async def test_a_receiver_closing_connections_mid_run_gets_each_event_once_in_order(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """A receiver that closes the connection after each answer (dropping the pipelined
    requests it had not answered) is not failing: the rest go again on new connections, in
    the same round, each request taken once."""
    receiver.status = lambda n: "close"
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 6)
    await deliver(Deliverer(database, clock, BOX, LOCAL))
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts, d.response_code) for d in log] == [("delivered", 1, 200)] * 6
    assert [int(r.message_id) for r in receiver.received] == [d.event_id for d in log]


async def test_retries_stop_at_the_window_then_the_next_event_goes(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    receiver.status = lambda n: 502
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, "campaign_updated", "import_updated")
    config = DeliveryConfig(allow_private_networks=True, first_delay_seconds=30,
                            retry_window_seconds=100)
    deliverer = Deliverer(database, clock, BOX, config, rng=random.Random(1))
    for _ in range(10):
        await deliver(deliverer)
        if (await deliveries(database, webhook_id))[0].status != "pending":
            break
        clock.advance(40)
    first, second = await deliveries(database, webhook_id)
    assert (first.status, first.response_code, first.error) == (
        "failed", 502, "the receiver answered 502")
    assert 2 <= first.attempts <= 3  # 30 s then 60 s (±20 %) fit in 100 s at most
    # The next event waited behind it, its own window untouched: it goes now.
    assert (second.status, second.attempts) == ("pending", 0)
    receiver.status = lambda n: 200
    await deliver(deliverer)
    first, second = await deliveries(database, webhook_id)
    assert (first.status, second.status, second.attempts) == ("failed", "delivered", 1)


async def test_failures_in_a_row_disable_the_webhook_with_an_event_saying_why(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    receiver.status = lambda n: 500
    failing = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    watcher = Receiver(clock.now).start()
    try:
        await add_webhook(database, customer_id, watcher.url, generate_secret(), clock,
                          event_types=["webhook_disabled"])
        await add_events(database, customer_id, "campaign_updated")
        config = DeliveryConfig(allow_private_networks=True, disable_after_failures=3)
        deliverer = Deliverer(database, clock, BOX, config)
        for _ in range(6):
            await deliver(deliverer)
            clock.advance(3600)
        await deliver(deliverer)  # the webhook_disabled event goes out to the watcher
    finally:
        watcher.stop()
    assert len(receiver.received) == 3  # nothing once disabled
    async with database.transaction() as session:
        webhook = await session.get(Webhook, failing)
        events = (await session.execute(
            select(EVENTS).where(EVENTS.c.type == "webhook_disabled"))).all()
    assert webhook.status == "disabled"
    assert webhook.detail == ("disabled after 3 failed attempts in a row; the last: the "
                              "receiver answered 500")
    [event] = events
    assert event.data["id"] == str(failing) and event.data["status"] == "disabled"
    assert event.data["detail"] == webhook.detail and "secret" not in event.data
    assert [r.json["type"] for r in watcher.received] == ["webhook_disabled"]


async def test_the_guard_refuses_private_addresses_at_delivery(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    port = receiver.server.server_address[1]
    by_address = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    by_name = await add_webhook(database, customer_id, f"http://localhost:{port}/hook",
                                generate_secret(), clock)
    await add_events(database, customer_id, "campaign_updated")
    await deliver(Deliverer(database, clock, BOX, DeliveryConfig()))
    assert receiver.received == []  # nothing reached it
    [refused] = await deliveries(database, by_address)
    assert refused.error.startswith("refused: 127.0.0.1 is a loopback address")
    [by_name_refused] = await deliveries(database, by_name)
    assert by_name_refused.error.startswith("refused: localhost resolves to ")
    assert "loopback address" in by_name_refused.error
    # Allowed by the setting, the same deliveries arrive once due.
    clock.advance(3600)
    await deliver(Deliverer(database, clock, BOX, LOCAL))
    assert len(receiver.received) == 2


async def test_two_deliverers_fan_out_and_deliver_each_event_exactly_once_in_order(
    database_url: str, database: Database, clock: FakeClock, receiver: Receiver,
    customer_id: uuid.UUID
) -> None:
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 60)
    other = Database(database_url)
    try:
        config = DeliveryConfig(allow_private_networks=True, claim_batch=7)
        pair = [Deliverer(database, clock, BOX, config), Deliverer(other, clock, BOX, config)]
        made = await asyncio.gather(*(d.fan_out() for d in pair))
        assert sum(made) == 60
        for _ in range(30):
            await asyncio.gather(*(deliver(d) for d in pair))
            if len(receiver.received) >= 60:
                break
    finally:
        await other.dispose()
    log = await deliveries(database, webhook_id)
    assert len(log) == 60 and {d.status for d in log} == {"delivered"}
    ids = [int(r.message_id) for r in receiver.received]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 60


async def test_a_killed_claim_is_sent_again_after_its_lease_with_the_same_id(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """In process: a deliverer whose task dies mid-request (the -9 case runs as a process in
    tests/e2e/test_webhooks_worker.py); its lease runs out and another sends it again. What
    arrived but was not yet written down goes again too: at most the one claimed run."""
    receiver.status = lambda n: "hang" if n == 2 else 200
    await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 4)
    dying = Deliverer(database, clock, BOX, LOCAL)
    await dying.step()
    await asyncio.to_thread(receiver.arrived.wait, 10)
    while len(receiver.received) < 3:  # two answered, the third held
        await asyncio.sleep(0.01)
    for task in list(dying._tasks.values()):
        task.cancel()  # as if the process were gone: nothing written, nothing released
    await asyncio.gather(*dying._tasks.values(), return_exceptions=True)
    survivor = Deliverer(database, clock, BOX, LOCAL)
    await deliver(survivor)
    assert len(receiver.received) == 3  # the lease still holds
    clock.advance(LOCAL.lease_seconds + 1)
    await deliver(survivor)
    ids = [int(r.message_id) for r in receiver.received]
    # The clock stood still, so the two that arrived were still waiting to be written down
    # together: the whole run (≤ claim_batch) goes again, in order, then the fourth.
    assert ids[3:] == sorted(set(ids)) and ids[:3] == ids[3:6] and len(ids) == 7
    assert len(ids) - len(set(ids)) <= LOCAL.claim_batch


async def test_https_goes_to_the_checked_address_with_the_hosts_name_for_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TLS handshake names the URL's host (SNI) and checks the certificate for it, while the
    connection goes to the address the guard checked; one connection carries every request."""
    key, certificate = self_signed_certificate(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(certificate, key)
    names: list[str | None] = []
    served.sni_callback = lambda _socket, name, _context: names.append(name)
    receiver = Receiver(utcnow).start(tls=served)
    url = f"https://localhost:{receiver.server.server_address[1]}/hook"
    try:
        # The system's trust store refuses the self-signed certificate: nothing is delivered.
        untrusting = Sender(SystemClock(), 5.0, allow_private=True)
        [refused] = await untrusting.send(url, [Message(b"{}", {"webhook-id": "1"})])
        await untrusting.aclose()
        assert (refused.kind, refused.ok) == ("unreachable", False)
        assert "CERTIFICATE_VERIFY_FAILED" in refused.error
        trusting = ssl.create_default_context(cafile=str(certificate))
        monkeypatch.setattr(sending, "tls_context", lambda: trusting)
        sender = Sender(SystemClock(), 5.0, allow_private=True)
        sent = [outcome for n in range(3)
                for outcome in await sender.send(url, [Message(b"{}", {"webhook-id": str(n)})])]
        await sender.aclose()
    finally:
        receiver.stop()
    assert [(s.kind, s.status_code) for s in sent] == [("delivered", 200)] * 3
    assert [r.headers["host"] for r in receiver.received] == [url.split("/")[2]] * 3
    assert names == ["localhost"] * 2  # the refused handshake, then one kept-alive connection


async def test_delivery_results_are_counted_in_the_metrics(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    receiver.status = lambda n: 200 if n < 2 else 500
    await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    await add_webhook(database, customer_id, f"http://127.0.0.1:{port}/", generate_secret(),
                      clock)
    await add_events(database, customer_id, *["campaign_updated"] * 3)
    before = Scrape(metrics.exposition(None)[0].decode())
    config = DeliveryConfig(allow_private_networks=True, disable_after_failures=1)
    await deliver(Deliverer(database, clock, BOX, config))
    # A webhook the guard refuses (private addresses not allowed): one refused attempt.
    await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await deliver(Deliverer(database, clock, BOX, DeliveryConfig()))
    after = Scrape(metrics.exposition(None)[0].decode())
    assert after.minus(before, "outdial_webhook_deliveries_total", "result") == {
        ("delivered",): 2, ("rejected",): 1, ("unreachable",): 1, ("refused",): 1}
    # Both failing webhooks were disabled after their first failure.
    assert after.minus(before, "outdial_webhooks_disabled_total") == {(): 2}
    assert len(receiver.received) == 3


async def test_another_customer_s_silent_receivers_hold_up_only_their_share(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """Customer A has more endpoints that never answer than the deliverer has slots; B's
    endpoint still gets its event at once: each customer gets an equal share of the slots."""
    receiver.status = lambda n: "hang"
    for _ in range(6):
        await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, "campaign_updated")
    other = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Customer(id=other, name="b", tm_create=clock.now()))
    prompt = Receiver(clock.now).start()
    try:
        await add_webhook(database, other, prompt.url, generate_secret(), clock)
        await add_events(database, other, "campaign_updated")
        deliverer = Deliverer(database, clock, BOX, DeliveryConfig(
            allow_private_networks=True, timeout_seconds=3600, concurrency=4))
        assert await deliverer.step() == 3  # A: half of the 4 slots; B: its one endpoint
        await asyncio.wait_for(asyncio.to_thread(prompt.arrived.wait, 10), 15)
        assert [r.json["type"] for r in prompt.received] == ["campaign_updated"]
        assert len(receiver.received) <= 2
    finally:
        receiver.release.set()
        prompt.stop()
    await deliverer.wait_idle()


async def test_a_hanging_receiver_leaves_the_dialing_rate_unchanged(
    database_url: str, database: Database, clock: FakeClock, receiver: Receiver,
) -> None:
    """The same simulated run (fixed rounds of a fake clock) with and without a subscriber that
    never answers: the attempts made are the same."""
    receiver.status = lambda n: "hang"

    async def attempts_made(subscribed: bool) -> int:
        scenario = await make_campaign(
            database, clock, targets=[[tel(f"+1555{n:07d}")] for n in range(400)],
            concurrency=20, dial_rate=20)
        dialer = MockDialer(lambda attempt: Outcome(OutcomeKind.ANSWERED))
        engine = make_engine(database, dialer, clock)
        stop = asyncio.Event()
        webhooks = Database(database_url)
        runner = None
        if subscribed:
            await add_webhook(database, scenario.customer_id, receiver.url, generate_secret(),
                              clock)
            config = DeliveryConfig(allow_private_networks=True, timeout_seconds=3600,
                                    poll_seconds=0.5)
            runner = asyncio.create_task(Deliverer(webhooks, clock, BOX, config).run(stop))
        try:
            for n in range(10):
                async with database.transaction() as session:  # what a dialer's events do
                    await emit(session, "campaign_updated", scenario.customer_id, {"n": n})
                await engine.step()
                await engine.wait_dials()
                await engine.record()
                await asyncio.sleep(0.05)  # the deliverer's task gets its turn (real I/O)
                clock.advance(1)
            if subscribed:
                assert receiver.arrived.is_set()  # a request was hanging meanwhile
        finally:
            stop.set()
            if runner is not None:
                receiver.release.set()
                await runner
            await webhooks.dispose()
        async with database.transaction() as session:
            return await session.scalar(select(func.count()).select_from(Campaigncall).where(
                Campaigncall.campaign_id == scenario.campaign_id)) or 0

    without = await attempts_made(False)
    with_hanging = await attempts_made(True)
    assert without >= 150
    assert with_hanging == without


async def test_old_deliveries_are_pruned_in_batches_but_not_one_being_sent(
    database: Database, clock: FakeClock, customer_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outdial.webhooks import delivery

    monkeypatch.setattr(delivery, "PRUNE_BATCH", 3)
    webhook_id = await add_webhook(database, customer_id, "https://a.example.com/",
                                   generate_secret(), clock)
    old = clock.now()

    def row(status: str, **extra: Any) -> WebhookDelivery:
        return WebhookDelivery(
            id=uuid.uuid4(), customer_id=customer_id, webhook_id=webhook_id,
            event_id=extra.pop("event_id"), event_type="campaign_updated", status=status,
            attempts=1, next_attempt_at=old, tm_queued=old, tm_create=old, **extra)

    async with database.transaction() as session:
        session.add_all([row("delivered", event_id=n) for n in range(7)])
        session.add(row("pending", event_id=100, owner="someone else",
                        tm_lease_expire=old + dt.timedelta(days=30)))
    clock.advance(8 * 24 * 3600)
    async with database.transaction() as session:
        session.add(WebhookDelivery(
            id=uuid.uuid4(), customer_id=customer_id, webhook_id=webhook_id, event_id=200,
            event_type="campaign_updated", status="delivered", attempts=1,
            next_attempt_at=clock.now(), tm_queued=clock.now(), tm_create=clock.now()))
    deliverer = Deliverer(database, clock, BOX, DeliveryConfig(retention_seconds=7 * 24 * 3600))
    assert await deliverer.prune_if_due() == 7  # three batches: 3, 3, 1
    assert await deliverer.prune_if_due() == 0  # not due again before a minute
    assert [d.event_id for d in await deliveries(database, webhook_id)] == [100, 200]


async def test_a_run_of_new_events_is_written_once_as_it_arrives_and_its_lease_let_go(
    database_url: str, database: Database, clock: FakeClock, receiver: Receiver,
    customer_id: uuid.UUID
) -> None:
    """An endpoint that keeps up: its new events go as a run leased on the webhook, their
    deliveries written once they arrived (never pending), and the lease ends with the run, so
    another process sends the next events at once, without waiting for it to run out."""
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 5)
    await deliver(Deliverer(database, clock, BOX, LOCAL))
    async with database.transaction() as session:
        webhook = await session.get(Webhook, webhook_id)
        assert (webhook.owner, webhook.tm_lease_expire) == (None, None)
        cursor = webhook.event_cursor
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts, d.owner) for d in log] == [("delivered", 1, None)] * 5
    assert cursor == log[-1].event_id
    await add_events(database, customer_id, *["campaign_updated"] * 3)
    other = Database(database_url)
    try:
        await deliver(Deliverer(other, clock, BOX, LOCAL))  # the clock has not moved
    finally:
        await other.dispose()
    ids = [int(r.message_id) for r in receiver.received]
    assert len(ids) == 8 and ids == sorted(set(ids))


async def spaced_run_of_three(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> tuple[uuid.UUID, Deliverer]:
    """An endpoint whose runs are spaced by 1 s, after its first run (three events) arrived:
    its task now waits on the clock for the spacing."""
    webhook_id = await add_webhook(database, customer_id, receiver.url, generate_secret(), clock)
    await add_events(database, customer_id, *["campaign_updated"] * 3)
    deliverer = Deliverer(database, clock, BOX,
                          DeliveryConfig(allow_private_networks=True, run_spacing_seconds=1.0))
    assert await deliverer.step() == 1
    for _ in range(2000):
        if clock.deadlines() and len(receiver.received) == 3:
            break
        await asyncio.sleep(0.005)
    return webhook_id, deliverer


async def idle_moving_the_clock(deliverer: Deliverer, clock: FakeClock) -> None:
    """Bounded: until no endpoint is sent to, moving the clock past each run's spacing."""
    for _ in range(2000):
        if not deliverer.busy_endpoints:
            return
        if clock.deadlines():
            clock.advance(1.0)
        await asyncio.sleep(0.005)


async def test_an_endpoint_task_claims_no_next_run_once_the_clock_is_found_off(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """The follow-up claim of a running endpoint task obeys the clock guard as step() does:
    its run is written down, the next one waits for a process whose clock agrees."""
    webhook_id, deliverer = await spaced_run_of_three(database, clock, receiver, customer_id)
    await add_events(database, customer_id, *["campaign_updated"] * 4)
    deliverer.clock_guard.problem = "this machine's clock is off"  # as step() found it
    clock.advance(1.0)
    await asyncio.wait_for(deliverer.wait_idle(), 10)  # a next run would wait for its spacing
    assert len(receiver.received) == 3 and not deliverer.busy_endpoints
    assert [d.status for d in await deliveries(database, webhook_id)] == ["delivered"] * 3

    deliverer.clock_guard.problem = None
    clock.advance(1.0)  # past the endpoint's spacing
    assert await deliverer.step() == 1  # the events the task did not take, for any process
    await idle_moving_the_clock(deliverer, clock)  # each run, once it is spaced
    assert len(receiver.received) == 7


async def test_an_endpoints_next_short_run_waits_for_the_spacing_and_takes_what_came(
    database: Database, clock: FakeClock, receiver: Receiver, customer_id: uuid.UUID
) -> None:
    """While events keep coming, an endpoint's runs are spaced: the next is claimed once the
    spacing has passed since the last (on the clock), with every event that came meanwhile,
    by the same task, in order, each delivery written once."""
    webhook_id, deliverer = await spaced_run_of_three(database, clock, receiver, customer_id)
    await add_events(database, customer_id, *["campaign_updated"] * 4)
    assert len(receiver.received) == 3 and deliverer.busy_endpoints == 1
    clock.advance(1.0)
    await idle_moving_the_clock(deliverer, clock)  # each run, once it is spaced
    assert not deliverer.busy_endpoints  # no other round: the same task claimed the next run
    log = await deliveries(database, webhook_id)
    assert [(d.status, d.attempts) for d in log] == [("delivered", 1)] * 7
    assert [int(r.message_id) for r in receiver.received] == [d.event_id for d in log]
