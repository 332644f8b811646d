"""Starting and stopping an engine: as `outdial worker`, or inside `outdial serve`."""

import asyncio
import logging
import signal

from outdial.clock import Clock, SystemClock
from outdial.db import Database, Limits
from outdial.dialers import build_dialer
from outdial.engine.worker import Engine, EngineConfig
from outdial.migrations import upgrade_database
from outdial.settings import Settings

log = logging.getLogger("outdial.engine")


class BackgroundEngine:
    """An engine running as a task of an existing event loop (the API process's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(engine.run(self._stop), name="outdial engine")

    @classmethod
    def start(cls, settings: Settings, clock: Clock) -> "BackgroundEngine":
        """An engine on sessions of its own (engine_database), not the API's pool."""
        dialer = build_dialer(settings, clock)
        database = engine_database(settings)
        return cls(Engine(database, dialer, clock, EngineConfig.from_settings(settings)))

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight end (or cancel them after the grace period)."""
        self._stop.set()
        await self._task
        await self.engine.dialer.aclose()
        await self.engine.database.dispose()


def engine_database(settings: Settings) -> Database:
    """The engine's connections: bounded lock and statement waits like the API's, and on
    PostgreSQL a server that ends a session left idle inside a transaction, so a hung worker
    (stopped, swapped out, deadlocked in Python) cannot hold a campaign's lock for ever."""
    return Database(settings.database_url, pool_size=4, limits=Limits.for_engine(settings),
                    role="outdial engine")


async def run_worker(settings: Settings, *, clock: Clock | None = None) -> None:
    """`outdial worker`: the engine alone until SIGTERM or SIGINT, then a graceful stop."""
    clock = clock or SystemClock()
    database = engine_database(settings)
    dialer = build_dialer(settings, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await upgrade_database(database)
        await Engine(database, dialer, clock, EngineConfig.from_settings(settings)).run(stop)
    finally:
        await dialer.aclose()
        await database.dispose()
