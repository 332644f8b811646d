"""Starting and stopping an engine: as `outdial worker`, or inside `outdial serve`."""

import asyncio
import logging
import signal

from outdial.auth.service import AuthService
from outdial.channels.dialing import ChannelDialers, server_builders
from outdial.channels.secrets import CHANNEL_KEY_NAME, SecretBox
from outdial.clock import Clock, SystemClock
from outdial.db import Database, Limits
from outdial.dialers import build_dialer
from outdial.engine.worker import ENGINE_ROLE, WEBHOOKS_ROLE, Engine, EngineConfig, first_of
from outdial.migrations import upgrade_database
from outdial.settings import Settings
from outdial.webhooks.delivery import Deliverer, DeliveryConfig
from outdial.webhooks.process import DelivererProcess

log = logging.getLogger("outdial.engine")
RESTART_DELIVERER_SECONDS = 1.0


class BackgroundEngine:
    """An engine, and the webhook deliverer beside it, running as tasks of an existing event
    loop (the API process's)."""

    def __init__(self, engine: Engine, deliverer: Deliverer | None = None) -> None:
        self.engine = engine
        self.deliverer = deliverer
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(engine.run(self._stop), name="outdial engine")
        self._webhooks = (
            asyncio.create_task(deliverer.run(self._stop), name="outdial webhooks")
            if deliverer is not None else None
        )

    @classmethod
    def start(cls, settings: Settings, clock: Clock, secrets: SecretBox) -> "BackgroundEngine":
        """An engine on sessions of its own (engine_database), not the API's pool."""
        dialer = build_dialer(settings, clock)
        database = engine_database(settings)
        channels = ChannelDialers(database, secrets, clock, server_builders(settings))
        return cls(
            Engine(database, dialer, clock, EngineConfig.from_settings(settings),
                   channels=channels),
            webhook_deliverer(settings, clock, secrets),
        )

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight end (or cancel them after the grace period)."""
        self._stop.set()
        await self._task
        await self.engine.aclose_dialers()
        await self.engine.database.dispose()
        if self._webhooks is not None and self.deliverer is not None:
            await self._webhooks
            await self.deliverer.database.dispose()


def engine_database(settings: Settings) -> Database:
    """The engine's connections: bounded lock and statement waits like the API's, and on
    PostgreSQL a server that ends a session left idle inside a transaction, so a hung worker
    (stopped, swapped out, deadlocked in Python) cannot hold a campaign's lock for ever."""
    return Database(settings.database_url, pool_size=4, limits=Limits.for_engine(settings),
                    role=ENGINE_ROLE)


def webhook_deliverer(settings: Settings, clock: Clock, secrets: SecretBox) -> Deliverer:
    """The webhook deliverer of an engine's process, on connections of its own: waiting on a
    receiver or on its own writes never takes a connection the dialing needs."""
    database = Database(settings.database_url, pool_size=2, limits=Limits.for_engine(settings),
                        role=WEBHOOKS_ROLE)
    return Deliverer(database, clock, secrets, DeliveryConfig.from_settings(settings))


async def run_worker(settings: Settings, *, clock: Clock | None = None) -> None:
    """`outdial worker`: the engine, and the webhook deliverer in a process of its own, until
    SIGTERM or SIGINT, then a graceful stop of both."""
    clock = clock or SystemClock()
    database = engine_database(settings)
    dialer = build_dialer(settings, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine: Engine | None = None
    try:
        await upgrade_database(database)
        async with database.transaction() as session:
            key = await AuthService(session, clock).server_secret(
                CHANNEL_KEY_NAME, settings.channel_secret_key
            )
        channels = ChannelDialers(database, SecretBox(key), clock, server_builders(settings))
        engine = Engine(
            database, dialer, clock, EngineConfig.from_settings(settings), channels=channels
        )
        await asyncio.gather(engine.run(stop), _deliverer_process(settings, key, clock, stop))
    finally:
        if engine is not None:
            await engine.aclose_dialers()
        else:
            await dialer.aclose()
        await database.dispose()


async def _deliverer_process(settings: Settings, channel_key: str, clock: Clock,
                             stop: asyncio.Event) -> None:
    """The worker's webhook deliverer, in a process of its own (see webhooks/process.py),
    started again if it ends by itself, until `stop`."""
    while True:
        deliverer = DelivererProcess(settings, channel_key)
        await first_of(stop.wait(), deliverer.ended())
        if stop.is_set():
            await deliverer.stop()
            return
        code = await deliverer.ended()
        await deliverer.stop()
        log.error("the webhook deliverer process ended (exit code %s); starting another in "
                  "%.0f s", code, RESTART_DELIVERER_SECONDS)
        await first_of(stop.wait(), clock.sleep(RESTART_DELIVERER_SECONDS))
        if stop.is_set():
            return
