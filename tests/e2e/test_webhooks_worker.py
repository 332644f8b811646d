"""An `outdial worker` killed with -9 while a receiver holds its request: its deliverer process
ends with it, and the deliveries of its run are sent again once the lease runs out, with the same
webhook-ids. Those that arrived before
the kill but were not yet written down (a run is written down at its end, or every 0.2 s) may
arrive twice too: at most the killed worker's one claimed run, never anything it did not send."""

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from outdial.channels.secrets import SecretBox
from outdial.clock import FakeClock, utcnow
from outdial.db import Database
from outdial.events.outbox import emit
from outdial.models import Customer, Webhook
from outdial.webhooks.delivery import Deliverer, DeliveryConfig
from outdial.webhooks.signing import generate_secret
from tests.webhook_support import Receiver

pytestmark = pytest.mark.slow
OUTDIAL = str(Path(sys.executable).parent / "outdial")
CHANNEL_KEY = "test channel key of the killed worker"
LEASE_SECONDS = 3.0
ARRIVAL_WAIT_S = 60.0  # a worker process on a loaded machine takes a while to start
EVENTS = 4
HELD = 2  # the receiver answers the first two, then holds the third request


def _children(pid: int) -> list[int]:
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    """Still running (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(utcnow, status=lambda n: "hang" if n == HELD else 200).start()
    yield found
    found.stop()


async def test_killed_worker_delivery_is_sent_after_its_lease_once_more(
    database_url: str, database: Database, receiver: Receiver, tmp_path: Path
) -> None:
    secret = generate_secret()
    receiver.secret = secret
    customer_id, now = uuid.uuid4(), utcnow()
    async with database.transaction() as session:
        session.add(Customer(id=customer_id, name="c", tm_create=now))
        await session.flush()
        session.add(Webhook(
            id=uuid.uuid4(), customer_id=customer_id, url=receiver.url, event_types=[],
            secret_encrypted=SecretBox(CHANNEL_KEY).encrypt(secret), status="enabled",
            detail="", event_cursor=0, failures=0, tm_create=now))
    for n in range(EVENTS):
        async with database.transaction() as session:
            await emit(session, "campaign_updated", customer_id, {"n": n})
    env = {
        **os.environ, "OUTDIAL_DATABASE_URL": database_url, "OUTDIAL_LOG_LEVEL": "warning",
        "OUTDIAL_CHANNEL_SECRET_KEY": CHANNEL_KEY,
        "OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
        "OUTDIAL_WEBHOOKS_LEASE_SECONDS": str(LEASE_SECONDS),
        "OUTDIAL_MAX_CLOCK_OFFSET_SECONDS": str(LEASE_SECONDS / 4),
        "OUTDIAL_WEBHOOKS_POLL_SECONDS": "0.05",
    }
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([OUTDIAL, "worker"], env=env, stdout=log, stderr=log)
    try:
        arrived = await asyncio.to_thread(receiver.arrived.wait, ARRIVAL_WAIT_S)
        assert arrived, (tmp_path / "worker.log").read_text()
        for _ in range(1000):  # the first two answered, the third is held: within a second
            if len(receiver.received) > HELD:
                break
            await asyncio.sleep(0.01)
        assert len(receiver.received) == HELD + 1, (tmp_path / "worker.log").read_text()
        deliverers = _children(worker.pid)  # the worker's deliverer process, holding the run
        worker.send_signal(signal.SIGKILL)  # mid-request: the receiver holds it
        worker.wait(timeout=10)
        # The deliverer goes with its worker: no orphan goes on sending or renewing leases.
        for _ in range(1000):
            if not any(_alive(pid) for pid in deliverers):
                break
            await asyncio.sleep(0.01)
        assert deliverers and not any(_alive(pid) for pid in deliverers)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = utcnow()
    config = DeliveryConfig(allow_private_networks=True, lease_seconds=LEASE_SECONDS)
    # Another process, its clock still inside the dead worker's lease: it sends nothing.
    clock = FakeClock(killed_at)
    survivor = Deliverer(database, clock, SecretBox(CHANNEL_KEY), config)
    try:
        await survivor.step()
        await survivor.wait_idle()
        assert len(receiver.received) == HELD + 1
        # Once the lease has run out, the run is claimed again and sent in order.
        clock.advance(LEASE_SECONDS + 1)
        await survivor.step()
        await survivor.wait_idle()
    finally:
        await survivor.aclose()
    ids = [int(r.message_id) for r in receiver.received]
    sent_by_killed = ids[:HELD + 1]
    again = ids[HELD + 1:]
    # The survivor sends every event once, in order, from the first the killed worker had not
    # written down (at least the held one) to the last.
    assert again == sorted(set(again)) and again[-1] == max(ids)
    assert set(ids) == set(range(min(ids), min(ids) + EVENTS))
    # The duplicates are only what the killed worker had sent: at most its one run.
    duplicates = [i for i in again if i in sent_by_killed]
    assert 1 <= len(duplicates) <= HELD + 1 and sent_by_killed[HELD] in duplicates
    assert duplicates == sent_by_killed[-len(duplicates):]
    assert all(r.verified for r in receiver.received)
    assert clock.now() - killed_at > dt.timedelta(seconds=LEASE_SECONDS)
