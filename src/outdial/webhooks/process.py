"""The webhook deliverer in a process of its own, started and stopped by `outdial worker`.

Dialing and delivery then use a core (and an interpreter lock) each: at full speed a campaign
makes about four events per attempt, and sending them would otherwise take CPU from the
dialing. The process lives and dies with its worker:

- a SIGTERM or SIGINT to the worker stops the deliverer gracefully (it lets its runs in flight
  end, then lets go of its claims), and the worker waits for it;
- a worker killed outright (-9) takes the deliverer with it at once: the deliverer sees its
  parent's end and exits without a word, as the worker did, and the leases bring its claimed
  runs back to another process — nothing is lost and nothing is sent by an orphan;
- the deliverer's counts of delivery attempts are sent up to the worker every second, so the
  worker's /metrics still shows them.
"""

import asyncio
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from outdial import metrics
from outdial.settings import Settings

log = logging.getLogger("outdial.webhooks")

METRICS_EVERY_SECONDS = 1.0
# The deliverer runs at a lower CPU priority than its worker: when the two want more CPU than
# the machine has (a campaign at full speed makes about four events per attempt, and sending
# one costs about as much CPU as a quarter of an attempt), dialing goes first and delivery
# catches up after; with CPU to spare, delivery gets all it needs.
NICENESS = 10
STOP_WAIT_SECONDS_BEYOND_TIMEOUT = 5.0  # on top of the deliverer's own drain


def _totals() -> dict[str, float]:
    """This process's webhook counters, as totals by sample name and result."""
    found: dict[str, float] = {}
    for counter in (metrics.WEBHOOK_DELIVERIES, metrics.WEBHOOKS_DISABLED):
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[f"{sample.name}|{sample.labels.get('result', '')}"] = sample.value
    return found


def _add_to_metrics(increase: dict[str, float]) -> None:
    """In the worker: add what the deliverer counted since its last report."""
    for key, amount in increase.items():
        name, _, result = key.partition("|")
        if name.startswith("outdial_webhook_deliveries"):
            metrics.WEBHOOK_DELIVERIES.labels(result).inc(amount)
        else:
            metrics.WEBHOOKS_DISABLED.inc(amount)


# -- in the deliverer's process ------------------------------------------------------------


def _main(settings: Settings, channel_key: str, reports: Connection) -> None:
    """The deliverer process's entry point (spawned: a fresh interpreter)."""
    try:
        os.nice(NICENESS)
    except OSError:
        pass  # not allowed here: it runs at its worker's priority
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_deliver(settings, channel_key, reports))


async def _deliver(settings: Settings, channel_key: str, reports: Connection) -> None:
    from outdial.channels.secrets import SecretBox
    from outdial.clock import SystemClock
    from outdial.engine.runner import webhook_deliverer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:
        # Readable once the worker has ended: ended without stopping us, it was killed.
        loop.add_reader(parent.sentinel, os._exit, 1)
    deliverer = webhook_deliverer(settings, SystemClock(), SecretBox(channel_key))
    reporting = asyncio.create_task(_report(reports))
    try:
        await deliverer.run(stop)
    finally:
        reporting.cancel()
        await asyncio.gather(reporting, return_exceptions=True)
        _send_increase(reports, {})  # the last counts
        reports.close()
        await deliverer.database.dispose()


async def _report(reports: Connection) -> None:
    sent: dict[str, float] = {}
    while True:
        await asyncio.sleep(METRICS_EVERY_SECONDS)
        sent = _send_increase(reports, sent)


def _send_increase(reports: Connection, sent: dict[str, float]) -> dict[str, float]:
    now = _totals()
    increase = {key: value - sent.get(key, 0.0) for key, value in now.items()}
    increase = {key: value for key, value in increase.items() if value}
    if increase:
        try:
            reports.send(increase)
        except OSError:
            pass  # the worker is going away; its metrics go with it
    return now


# -- in the worker -------------------------------------------------------------------------


class DelivererProcess:
    """The worker's handle on its deliverer process."""

    def __init__(self, settings: Settings, channel_key: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._reports, child_end = context.Pipe(duplex=False)
        self._process: BaseProcess = context.Process(
            target=_main, args=(settings, channel_key, child_end), name="outdial webhooks")
        self._process.start()
        child_end.close()
        self._timeout = settings.webhooks_timeout_seconds
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._reports.fileno(), self._read_report)
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(self._process.sentinel, self._on_end)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _on_end(self) -> None:
        self._loop.remove_reader(self._process.sentinel)
        if not self._ended.done():
            self._ended.set_result(None)

    def _read_report(self) -> bool:
        """Add one report of counts to this process's metrics; False once there are no more."""
        try:
            increase: Any = self._reports.recv()
        except (EOFError, OSError):
            self._loop.remove_reader(self._reports.fileno())
            return False
        _add_to_metrics(increase)
        return True

    async def ended(self) -> int | None:
        """Until the process ends (by itself or stopped); its exit code."""
        await asyncio.shield(self._ended)
        self._process.join()
        return self._process.exitcode

    async def stop(self) -> None:
        """Ask the deliverer to stop and wait for it (its runs in flight end within the
        timeout); one that does not stop in time is killed, and its leases run out."""
        if not self._ended.done() and self._process.pid is not None:
            os.kill(self._process.pid, signal.SIGTERM)
        limit = self._timeout + STOP_WAIT_SECONDS_BEYOND_TIMEOUT
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), limit)
        except TimeoutError:
            log.warning("the webhook deliverer did not stop in %.0f s; killed", limit)
            self._process.kill()
            await asyncio.shield(self._ended)
        self._process.join()
        while self._reports.poll() and self._read_report():  # the last counts
            pass
        self._loop.remove_reader(self._reports.fileno())
        self._reports.close()
