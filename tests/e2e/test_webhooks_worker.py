"""An `outdial worker` killed with -9 while a receiver holds its request: the delivery is sent
again once the lease runs out, with the same webhook-id, and nothing else twice."""

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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(utcnow, status=lambda n: "hang" if n == 0 else 200).start()
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
    for n in range(3):
        async with database.transaction() as session:
            await emit(session, "campaign_updated", customer_id, {"n": n})
    env = {
        **os.environ, "OUTDIAL_DATABASE_URL": database_url, "OUTDIAL_LOG_LEVEL": "warning",
        "OUTDIAL_CHANNEL_SECRET_KEY": CHANNEL_KEY,
        "OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
        "OUTDIAL_WEBHOOKS_LEASE_SECONDS": str(LEASE_SECONDS),
        "OUTDIAL_WEBHOOKS_POLL_SECONDS": "0.05",
    }
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen([OUTDIAL, "worker"], env=env, stdout=log, stderr=log)
    try:
        arrived = await asyncio.to_thread(receiver.arrived.wait, ARRIVAL_WAIT_S)
        assert arrived, (tmp_path / "worker.log").read_text()
        worker.send_signal(signal.SIGKILL)  # mid-request: the receiver holds it
        worker.wait(timeout=10)
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
        assert len(receiver.received) == 1
        # Once the lease has run out, the run is claimed again and sent in order.
        clock.advance(LEASE_SECONDS + 1)
        await survivor.step()
        await survivor.wait_idle()
    finally:
        await survivor.aclose()
    ids = [int(r.message_id) for r in receiver.received]
    assert len(ids) == 4 and ids[0] == ids[1] and ids[1:] == sorted(set(ids))
    assert all(r.verified for r in receiver.received)
    assert clock.now() - killed_at > dt.timedelta(seconds=LEASE_SECONDS)
