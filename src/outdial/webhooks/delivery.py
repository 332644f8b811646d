"""The webhook deliverer of one process: fan events out, claim endpoints, send, record.

It runs beside the dialing engine (in `outdial worker` and in `outdial serve`), on database
connections of its own, and each endpoint's run of deliveries is sent by a task of its own:
a slow or silent receiver holds only its own task, never the dialing. Every request is bounded
by the timeout, every wait for the database by the database's limits.
"""

import asyncio
import datetime as dt
import functools
import json
import logging
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outdial import metrics
from outdial.channels.secrets import SecretBox, SecretUnreadable
from outdial.clock import Clock
from outdial.clock_check import ClockGuard
from outdial.db import Database, log_failure
# The engine's helpers: one way to race waits and to log a failed round.
from outdial.engine.worker import first_of, new_worker_id
from outdial.events import catalogue
from outdial.events.outbox import emit
from outdial.settings import Settings
from outdial.timestamps import format_timestamp
from outdial.webhooks import repository as repo
from outdial.webhooks.repository import Claim, Item
from outdial.webhooks.sending import Message, Sender, Sent
from outdial.webhooks.signing import Signer, signed_headers

log = logging.getLogger("outdial.webhooks")

FAN_OUT_BATCH = 500  # events read per webhook in one fan-out transaction
PRUNE_BATCH = 1000  # deliveries deleted in one transaction
PRUNE_EVERY_SECONDS = 60.0
# How long the deliveries that arrived may wait, within a run, to be written down together.
RECORD_EVERY_SECONDS = 0.2
# An endpoint's next run is claimed no sooner than this after its last (when that one arrived
# sooner): a run costs some statements whatever its length, so while events keep coming they
# are sent in fewer, longer runs, for a few hundredths of a second more on their way.
RUN_SPACING_SECONDS = 0.05
# A run that came back full means a backlog (a campaign at full speed makes more events than
# the deliverer, at its lower priority, sends meanwhile): the endpoint's next runs are up to
# this many times the claim batch. A run costs its statements (the outbox horizon, the claim,
# the cursor, a commit) whatever its length, and they cost the database more than the rows:
# on a backlog, runs of 1,000 instead of 100 halve the CPU per event, the deliverer's and its
# database backend's, which share the machine with the dialing.
BACKLOG_RUN_FACTOR = 10


@dataclass(frozen=True)
class DeliveryConfig:
    timeout_seconds: float = 10.0
    first_delay_seconds: float = 30.0
    max_delay_seconds: float = 4 * 3600.0
    retry_window_seconds: float = 24 * 3600.0
    disable_after_failures: int = 15
    concurrency: int = 16
    claim_batch: int = 100
    lease_seconds: float = 30.0
    poll_seconds: float = 0.2
    retention_seconds: float = 7 * 24 * 3600.0
    allow_private_networks: bool = False
    run_spacing_seconds: float = 0.0  # RUN_SPACING_SECONDS in a running process
    # How far this machine's clock may be from the database server's (0: not checked).
    max_clock_offset_seconds: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "DeliveryConfig":
        return cls(
            timeout_seconds=settings.webhooks_timeout_seconds,
            first_delay_seconds=settings.webhooks_retry_first_delay_seconds,
            max_delay_seconds=settings.webhooks_retry_max_delay_seconds,
            retry_window_seconds=settings.webhooks_retry_window_seconds,
            disable_after_failures=settings.webhooks_disable_after_failures,
            concurrency=settings.webhooks_concurrency,
            claim_batch=settings.webhooks_claim_batch,
            lease_seconds=settings.webhooks_lease_seconds,
            poll_seconds=settings.webhooks_poll_seconds,
            retention_seconds=settings.webhooks_delivery_retention_seconds,
            allow_private_networks=settings.webhooks_allow_private_networks,
            run_spacing_seconds=RUN_SPACING_SECONDS,
            max_clock_offset_seconds=settings.max_clock_offset_seconds,
        )

    def retry_delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds from the `attempts`-th failed attempt to the next: doubling from the first
        delay up to the longest, each stretched or shrunk by up to a fifth at random, so that
        the deliveries held up by one outage do not all come back at the same moment."""
        base = min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempts - 1))
        return base * rng.uniform(0.8, 1.2)


def message(event: Any) -> tuple[str, str]:
    """An event's webhook-id (its id: the same on every retry) and its body: the event as
    event_json() gives it, its payload spliced in as stored (`data_json`, JSON text) rather
    than decoded and encoded again."""
    # Written out rather than through a dict: the id is an integer and the customer's id a
    # UUID, neither needs escaping; the type and the time are JSON-encoded all the same.
    return str(event.id), (
        f'{{"id":{int(event.id)},"type":{_json_text(event.type)},'
        f'"customer_id":"{event.customer_id}",'
        f'"tm_create":{_json_time(event.tm_create)},"data":{event.data_json}}}')


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# An event's type is one of the catalogue's, and the events of one change share its time (the
# engine emits a batch's events with one stamp): each is encoded once, not once per message.
_json_text = functools.lru_cache(maxsize=256)(_dumps)


@functools.lru_cache(maxsize=256)
def _json_time(at: dt.datetime) -> str:
    return _dumps(format_timestamp(at))


def _record_delivery(kind: str, attempts: int = 1, disabled: bool = False) -> None:
    """Every attempt ends here, once its outcome is committed: the one place to count webhook
    deliveries and failures (`attempts` of one result at once: a run's arrived messages). An
    attempt that made no request (its event pruned, the secret unreadable) has no result
    (`kind` "") to count."""
    if kind:
        metrics.webhook_delivery(kind, attempts)  # type: ignore[arg-type] - a WEBHOOK_RESULT
    if disabled:
        metrics.webhook_disabled()


class Deliverer:
    """Delivers the webhooks of every customer of one database, beside other deliverers."""

    def __init__(
        self, database: Database, clock: Clock, secrets: SecretBox,
        config: DeliveryConfig | None = None, *, worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.secrets = secrets
        self.config = config or DeliveryConfig()
        self.worker_id = worker_id or new_worker_id()
        self.rng = rng or random.Random()
        self.sender = Sender(clock, self.config.timeout_seconds,
                             self.config.allow_private_networks)
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}  # one per endpoint being sent to
        self._customers: dict[uuid.UUID, uuid.UUID] = {}  # whose endpoint each task sends to
        self._freed = asyncio.Event()
        self._next_prune: dt.datetime | None = None
        self._stopping = False  # no endpoint task claims another run once set
        self.clock_guard = ClockGuard(
            database, clock, self.config.max_clock_offset_seconds,
            who=f"webhook deliverer {self.worker_id}",
            withholds="not claiming deliveries or taking over other processes' runs", log=log)

    @property
    def busy_endpoints(self) -> int:
        return len(self._tasks)

    # -- one round ---------------------------------------------------------------------------

    async def step(self) -> int:
        """Fan new events out, prune if due, and start sending to due endpoints; returns how
        many endpoints were claimed."""
        # The events of a webhook with nothing waiting go straight into its next claimed run.
        await self.fan_out(waiting=True)
        if not await self.clock_guard.agrees():
            return 0
        await self.prune_if_due()
        room = self.config.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        now = self.clock.now()
        claims: list[Claim] = []
        # One transaction finds the due endpoints and claims a run of each (an endpoint another
        # process is claiming is skipped, not waited for).
        async with self.database.transaction() as session:
            due = await repo.due_webhooks(session, now, room + len(self._tasks))
            # Each customer with endpoints due or being sent to gets an equal share of the
            # slots (at least one): another's slow or silent receivers, however many, hold up
            # only its own share.
            sending = Counter(self._customers.values())
            customers = sending.keys() | {customer for _, customer in due}
            share = max(1, self.config.concurrency // max(1, len(customers)))
            for webhook_id, customer_id in due:
                if webhook_id in self._tasks or len(claims) >= room:
                    continue
                if sending[customer_id] >= share:
                    continue
                claim = await repo.claim(
                    session, webhook_id, owner=self.worker_id, now=now,
                    lease_seconds=self.config.lease_seconds, most=self.config.claim_batch,
                )
                if claim is not None:
                    claims.append(claim)
                    sending[customer_id] += 1
        for claim in claims:
            self._launch(claim)
        return len(claims)

    async def fan_out(self, *, waiting: bool = False) -> int:
        """Turn new events into deliveries, for every webhook behind (with `waiting`, only
        those with deliveries waiting), in one transaction."""
        made = 0
        async with self.database.transaction() as session:
            for webhook_id in await repo.webhooks_behind(session, waiting=waiting):
                made += await repo.fan_out(session, webhook_id, self.clock.now(), FAN_OUT_BATCH)
        return made

    async def prune_if_due(self) -> int:
        now = self.clock.now()
        if self._next_prune is not None and now < self._next_prune:
            return 0
        self._next_prune = now + dt.timedelta(seconds=PRUNE_EVERY_SECONDS)
        before = now - dt.timedelta(seconds=self.config.retention_seconds)
        pruned = 0
        while True:
            async with self.database.transaction() as session:
                batch = await repo.prune_deliveries(session, before, now, PRUNE_BATCH)
            pruned += batch
            if batch < PRUNE_BATCH:
                return pruned

    async def heartbeat(self) -> None:
        # A clock stepped back would write leases already over for the others (its runs sent
        # again, out of order): compared first, and renewed on the server's time while off.
        await self.clock_guard.agrees()
        async with self.database.transaction() as session:
            await repo.renew_leases(
                session, self.worker_id, self.clock_guard.now(), self.config.lease_seconds
            )

    async def aclose(self) -> None:
        """Close the connections to receivers (run() does it when it ends)."""
        await self.sender.aclose()

    async def wait_idle(self) -> None:
        """Wait until every endpoint task has ended."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    # -- one endpoint ------------------------------------------------------------------------

    def _launch(self, claim: Claim) -> None:
        task = asyncio.create_task(self._send_run(claim), name=f"webhook {claim.webhook_id}")
        self._tasks[claim.webhook_id] = task
        self._customers[claim.webhook_id] = claim.customer_id

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.pop(claim.webhook_id, None)
            self._customers.pop(claim.webhook_id, None)
            self._freed.set()

        task.add_done_callback(done)

    async def _send_run(self, claim: Claim | None) -> None:
        """Send the endpoint's claimed runs one after another, until none is due (or a send
        failed, or the process stops). Once a run has arrived, it is written down, the
        endpoint's next run claimed (its new events), in one transaction: while
        events keep coming, an endpoint does not wait for the process's next round."""
        webhook_id = claim.webhook_id if claim is not None else None
        most = self.config.claim_batch  # the longest run the claim could have been
        try:
            claimed_at = self.clock.now()
            while claim is not None:
                arrived = await self._send_claim(claim)
                if arrived is None:
                    return
                full = len(claim.items) >= most
                # A full run: more are waiting, the next one is longer; a short one: caught up.
                most = (min(most * BACKLOG_RUN_FACTOR,
                            self.config.claim_batch * BACKLOG_RUN_FACTOR)
                        if full else self.config.claim_batch)
                if not full and not self._stopping:
                    # A short run: the next one's events have a little longer to come.
                    spent = (self.clock.now() - claimed_at).total_seconds()
                    if spent < self.config.run_spacing_seconds:
                        await self.clock.sleep(self.config.run_spacing_seconds - spent)
                following = None
                async with self.database.transaction() as session:
                    # The whole run arrived: a fresh run's cursor passes its last event read.
                    kept = await self._write_arrived(session, claim, arrived,
                                                     up_to=claim.read_up_to)
                    if kept and not self._stopping and self.clock_guard.problem is None:
                        # Its new events, if nothing else waits, become the next run.
                        following = await repo.claim(
                            session, claim.webhook_id, owner=self.worker_id, now=self.clock.now(),
                            lease_seconds=self.config.lease_seconds, most=most,
                        )
                    elif kept and self.clock_guard.problem is not None:
                        # A clock found off (step's comparison) takes no next run: the
                        # endpoint is let go at once, for a process whose clock agrees.
                        await repo.release(session, self.worker_id, claim.webhook_id)
                self._count_arrived(arrived)
                claim, claimed_at = following, self.clock.now()
        except Exception as error:  # noqa: BLE001 - logged; the lease brings the run back
            log_failure(log, f"delivering to webhook {webhook_id}", error)
            try:
                async with self.database.transaction() as session:
                    await repo.release(session, self.worker_id, webhook_id)
            except Exception:  # noqa: BLE001 - the leases run out instead
                log.warning("could not release the claims of webhook %s", webhook_id)

    async def _send_claim(self, claim: Claim) -> list[tuple[Item, Sent]] | None:
        """Send the claimed deliveries in order over the endpoint's kept-alive connection;
        stop at the first that fails (the rest wait behind it, in order). The first goes alone;
        once it arrived, the rest are written together and their answers read in order (HTTP/1.1
        pipelining), so an endpoint that fails is sent one message, not the whole run.
        Those that arrived are written down together every RECORD_EVERY_SECONDS (while the
        next ones are being sent) and at the end of the run, rather than one transaction each:
        a process killed meanwhile sends them again (at most this one claim), with the same
        webhook-ids. When the whole run arrived: those not written down yet (the caller writes
        them with its next claim); None when it stopped (a failure, or the lease was lost)."""
        arrived: list[tuple[Item, Sent]] = []
        writing: asyncio.Future[bool] | None = None  # the previous group's write, if any

        async def written() -> bool:
            nonlocal writing
            previous, writing = writing, None
            return previous is None or await previous

        try:
            try:
                signer = Signer(self.secrets.decrypt(claim.secret_encrypted))
            except SecretUnreadable as error:
                signer, unreadable = None, str(error)
            record_by = self.clock.now() + dt.timedelta(seconds=RECORD_EVERY_SECONDS)
            items, at, alone = claim.items, 0, True
            while at < len(items):
                if items[at].event is None:
                    sent = Sent(0, 0, "the event was pruned by retention before it was sent")
                    if not (await written() and await self._record_arrived(claim, arrived)):
                        return None
                    await self._record_failed(claim, items[at], sent, give_up=True)
                    at += 1
                    continue
                if signer is None:
                    sent = Sent(0, 0, unreadable.replace("password", "webhook secret"))
                    if await written() and await self._record_arrived(claim, arrived):
                        await self._record_failed(claim, items[at], sent)
                    return None
                batch = []  # the first alone, then the rest, up to the next pruned event
                for item in items[at:at + 1 if alone else len(items)]:
                    if item.event is None:
                        break
                    batch.append(item)
                now = self.clock.now()
                messages = []
                for item in batch:
                    message_id, body = message(item.event)
                    messages.append(Message(
                        body.encode(), signed_headers(signer, message_id, now, body)))
                outcomes = await self.sender.send(claim.url, messages)
                for item, sent in zip(batch, outcomes):
                    if not sent.ok:
                        # The ones before it first: the failure releases the rest of the claim.
                        if await written() and await self._record_arrived(claim, arrived):
                            await self._record_failed(claim, item, sent)
                        return None
                    arrived.append((item, sent))
                at, alone = at + len(batch), False
                if self.clock.now() >= record_by:
                    if not await written():
                        return None  # the lease was lost: another process has the run
                    group, arrived = arrived, []
                    writing = asyncio.ensure_future(self._record_arrived(claim, group))
                    record_by = self.clock.now() + dt.timedelta(seconds=RECORD_EVERY_SECONDS)
            return arrived if await written() else None
        finally:
            if writing is not None and not writing.done():
                writing.cancel()  # cancelled itself: the leases bring the run back

    async def _record_arrived(self, claim: Claim, arrived: list[tuple[Item, Sent]]) -> bool:
        """Write down (and empty) the deliveries that arrived, in one transaction; False when
        the lease on them had been lost (stop sending)."""
        if not arrived:
            return True
        async with self.database.transaction() as session:
            kept = await self._write_arrived(session, claim, arrived)
        self._count_arrived(arrived)
        return kept

    async def _write_arrived(
        self, session: AsyncSession, claim: Claim, arrived: list[tuple[Item, Sent]],
        up_to: int = 0,
    ) -> bool:
        """Write the deliveries that arrived in the caller's transaction; False when the lease
        on them had been lost. A fresh run's deliveries are made now, delivered, and its
        cursor moved past them (and up to `up_to`, when the whole run arrived)."""
        if claim.fresh:
            if not arrived and not up_to:
                return True
            now = self.clock.now()
            kept = await repo.record_fresh(
                session, claim,
                [(item, {"status": "delivered", "attempts": 1, "response_code": sent.status_code,
                         "latency_ms": sent.latency_ms, "tm_update": now})
                 for item, sent in arrived],
                self.worker_id, now, max([up_to, *(item.event_id for item, _ in arrived)]),
                reset_failures=claim.failures != 0,
            )
            claim.failures = 0
            return kept
        if not arrived:
            return True
        outcomes = [(item, sent.status_code, sent.latency_ms) for item, sent in arrived]
        kept = await repo.record_delivered(
            session, outcomes, claim.webhook_id, self.worker_id, self.clock.now(),
            reset_failures=claim.failures != 0,
        )
        claim.failures = 0  # one statement fewer for the rest of the run
        return kept

    def _count_arrived(self, arrived: list[tuple[Item, Sent]]) -> None:
        """Once written down (committed): count them, one increment per result (a label
        looked up per delivery was a tenth of the CPU per event on a backlog), and empty the
        list."""
        for kind, count in Counter(sent.kind for _, sent in arrived).items():
            _record_delivery(kind, count)
        arrived.clear()

    async def _record_failed(
        self, claim: Claim, item: Item, sent: Sent, give_up: bool = False
    ) -> bool:
        """Write the failed attempt down, and its retry if any; False when the lease had been
        lost."""
        now = self.clock.now()
        retry_at = None
        if not give_up:
            delay = dt.timedelta(seconds=self.config.retry_delay(item.attempts + 1, self.rng))
            # The window runs from the first attempt (a delivery waiting behind a failing
            # one keeps its whole window), or from a manual retry.
            started = now if item.attempts == 0 else item.tm_queued
            window_end = started + dt.timedelta(seconds=self.config.retry_window_seconds)
            if now + delay <= window_end:
                retry_at = now + delay
        disabled = None
        async with self.database.transaction() as session:
            if claim.fresh:
                kept = await self._write_failed_fresh(session, claim, item, sent, now, retry_at)
            else:
                kept = await repo.record_failed(
                    session, item, claim.webhook_id, self.worker_id,
                    status_code=sent.status_code, latency_ms=sent.latency_ms, error=sent.error,
                    now=now, retry_at=retry_at,
                )
            if kept and not give_up:
                disabled = await repo.count_failure(
                    session, claim.webhook_id, self.config.disable_after_failures, now, sent.error
                )
                if disabled is not None:
                    await emit(session, catalogue.WEBHOOK_DISABLED, disabled.customer_id,
                               catalogue.webhook(disabled), now=now)
        if disabled is not None:
            log.warning("webhook %s disabled: %s", disabled.id, disabled.detail)
        _record_delivery(sent.kind, disabled=disabled is not None)
        return kept

    async def _write_failed_fresh(
        self, session: AsyncSession, claim: Claim, item: Item, sent: Sent, now: dt.datetime,
        retry_at: dt.datetime | None,
    ) -> bool:
        """A fresh run's delivery failed: it is made, with its retry (or failed for good), and
        the rest of the run behind it is made pending, waiting for it in order; the cursor
        passes the run and the webhook's lease is let go. False when it had been lost."""
        failed = {"attempts": 1, "response_code": sent.status_code, "tm_queued": now,
                  "latency_ms": sent.latency_ms, "error": sent.error[:1024], "tm_update": now}
        if retry_at is None:
            failed["status"] = "failed"
        else:
            failed["next_attempt_at"] = retry_at
        behind = claim.items[claim.items.index(item) + 1:]
        kept = await repo.record_fresh(
            session, claim, [(item, failed), *((waiting, {}) for waiting in behind)],
            self.worker_id, now, claim.read_up_to, reset_failures=False,
        )
        if kept:
            await repo.release(session, self.worker_id, claim.webhook_id)
        return kept

    # -- the long-running loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then let the runs in flight end within the timeout, and
        let go of whatever is still claimed."""
        log.info("webhook deliverer %s started", self.worker_id)
        beats = asyncio.create_task(self._heartbeats())
        try:
            while not stop.is_set():
                try:
                    started = await self.step()
                except Exception as error:  # noqa: BLE001 - logged, never lost
                    log_failure(log, "a webhook round (retrying)", error)
                    started = 0
                if started == 0:
                    await first_of(stop.wait(), self._freed.wait(),
                                    self.clock.sleep(self.config.poll_seconds))
                    self._freed.clear()
        finally:
            self._stopping = True
            await self._drain()
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
            try:
                async with self.database.transaction() as session:
                    await repo.release(session, self.worker_id)
            except Exception:  # noqa: BLE001 - the leases run out instead
                log.warning("could not release the webhook claims; their leases will expire")
            await self.aclose()
            log.info("webhook deliverer %s stopped", self.worker_id)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        await first_of(self.wait_idle(), self.clock.sleep(self.config.timeout_seconds + 1))
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def _heartbeats(self) -> None:
        while True:
            await self.clock.sleep(self.config.lease_seconds / 3)
            try:
                # Bounded: a renewal on a network gone silent is tried again at the next beat.
                async with asyncio.timeout(self.config.lease_seconds / 6):
                    await self.heartbeat()
            except TimeoutError:
                log.warning("renewing webhook leases: no answer within %g s",
                            self.config.lease_seconds / 6)
            except Exception as error:  # noqa: BLE001 - logged, never lost
                log_failure(log, "renewing webhook leases", error)

