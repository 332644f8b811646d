"""The engine of one process: claim targets, dial them, record outcomes, keep leases, reap.

Each claimed attempt runs as its own asyncio task; outcomes are written in batches by a
recorder task, leases are renewed by a heartbeat task, and attempts of dead workers are closed
by whichever engine reaps first. Nothing here knows about HTTP.
"""

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from outdial import metrics
from outdial.channels.dialing import ChannelDialers
from outdial.clock import Clock
from outdial.clock_check import ClockGuard
from outdial.db import Database, busy_reason, log_failure
from outdial.dialers.base import (
    Attempt,
    Dialer,
    DialerError,
    DialerUnavailable,
    Outcome,
    OutcomeKind,
)
from outdial.engine import repository as repo
from outdial.engine.repository import Claimed, Closing
from outdial.events.outbox import prune_events
from outdial.models.base import NIL_UUID
from outdial.settings import Settings
from outdial.timestamps import TimeFormat, use_time_format

log = logging.getLogger("outdial.engine")

# The application_name of an engine process's sessions (with its pid): its dialing's, and its
# webhook deliverer's.
ENGINE_ROLE = "outdial engine"
WEBHOOKS_ROLE = "outdial webhooks"


@dataclass(frozen=True)
class EngineConfig:
    lease_seconds: float = 30.0
    poll_seconds: float = 0.2
    claim_batch: int = 200
    max_in_flight: int = 10000
    shutdown_grace_seconds: float = 30.0
    # How event payloads write times (OUTDIAL_TIME_FORMAT), as the API would answer them.
    time_format: TimeFormat = "tutorial"
    # Events older than this are pruned, in batches of events_prune_batch, every prune period.
    events_retention_seconds: float = 7 * 24 * 3600
    events_prune_batch: int = 1000
    events_prune_seconds: float = 60.0
    # How far this machine's clock may be from the database server's before the engine stops
    # claiming and taking over attempts (0: not checked), and how often it is compared.
    max_clock_offset_seconds: float = 0.0
    clock_check_seconds: float = 10.0
    # A worker's session waiting this long mid-message for the rest of it is a stopped
    # worker's (the longest a statement may run): it is ended, freeing its locks.
    stalled_session_seconds: float = 30.0
    # How long a renewal of the leases may take (None: half a heartbeat).
    renewal_timeout: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "EngineConfig":
        return cls(
            lease_seconds=settings.engine_lease_seconds,
            poll_seconds=settings.engine_poll_seconds,
            claim_batch=settings.engine_claim_batch,
            max_in_flight=settings.engine_max_in_flight,
            shutdown_grace_seconds=settings.engine_shutdown_grace_seconds,
            time_format=settings.time_format,
            events_retention_seconds=settings.events_retention_seconds,
            events_prune_batch=settings.events_prune_batch,
            events_prune_seconds=settings.events_prune_seconds,
            max_clock_offset_seconds=settings.max_clock_offset_seconds,
            stalled_session_seconds=settings.db_statement_timeout_seconds,
        )

    @property
    def heartbeat_seconds(self) -> float:
        # Three chances to renew before a lease runs out.
        return self.lease_seconds / 3

    @property
    def renewal_timeout_seconds(self) -> float:
        # A renewal on a network gone silent ends here, so that hang_up_unrenewed still runs.
        return self.renewal_timeout or self.heartbeat_seconds / 2

    @property
    def lease_check_seconds(self) -> float:
        # How often the heartbeat task wakes: it renews when a renewal is due (or the last one
        # failed), and hangs up the calls whose lease is about to end for the others. A call
        # is hung up only that close to its end, not after one failed renewal.
        return self.heartbeat_seconds / 10


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Engine:
    """Dials every running campaign of one database, alongside any number of other engines.

    An attempt goes to the dialer of the channel it was claimed for (`channels`); an attempt
    of an outplan with no channel at all goes to `dialer`, the server's simulated dialer.
    """

    def __init__(
        self,
        database: Database,
        dialer: Dialer,
        clock: Clock,
        config: EngineConfig | None = None,
        *,
        worker_id: str | None = None,
        channels: ChannelDialers | None = None,
    ) -> None:
        self.database = database
        self.dialer = dialer
        self.channels = channels
        self.clock = clock
        self.config = config or EngineConfig()
        self.worker_id = worker_id or new_worker_id()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        # Until when each attempt in flight is leased, as this worker last wrote it (its claim,
        # its last renewal): past it, another worker may have taken the target over.
        self._leased_until: dict[uuid.UUID, dt.datetime] = {}
        self._finished: list[Closing] = []
        self._answered: list[uuid.UUID] = []
        self._ended = asyncio.Event()  # an attempt ended or was answered: wakes the recorder
        self._recorded = asyncio.Event()  # outcomes written, capacity freed: wakes the loop
        self._next_reap: dt.datetime | None = None
        self._next_prune: dt.datetime | None = None
        self._releasing = False
        self.clock_guard = ClockGuard(
            database, clock, self.config.max_clock_offset_seconds, every=self.config.clock_check_seconds,
            who=f"engine {self.worker_id}", withholds="not claiming or taking over attempts",
            log=log)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def aclose_dialers(self) -> None:
        """Release every dialer's connections (once the engine has stopped)."""
        await self.dialer.aclose()
        if self.channels is not None:
            await self.channels.aclose()

    # -- one round ---------------------------------------------------------------------------

    async def step(self) -> int:
        """Record what ended, reap expired leases, then give every active campaign its turn.

        Returns how many attempts were started.
        """
        await self.record()
        if not await self.clock_guard.agrees():
            return 0
        await self.reap_if_due()
        await self.prune_if_due()
        async with self.database.transaction() as session:
            campaign_ids = await repo.active_campaign_ids(session)
        started = 0
        for campaign_id in campaign_ids:
            room = self.config.max_in_flight - len(self._tasks)
            began = time.perf_counter()
            now = self.clock.now()
            try:
                async with self.database.transaction() as session:
                    claimed = await repo.take_turn(
                        session,
                        campaign_id,
                        worker_id=self.worker_id,
                        now=now,
                        lease_seconds=self.config.lease_seconds,
                        most=max(0, min(room, self.config.claim_batch)),
                    )
            except Exception as error:  # noqa: BLE001 - logged, never lost
                # One campaign's trouble must not hold up the others.
                log_failure(log, f"claiming for campaign {campaign_id}", error)
                continue
            metrics.CLAIM_SECONDS.observe(time.perf_counter() - began)
            for attempt in claimed:
                self._launch(attempt, now + dt.timedelta(seconds=self.config.lease_seconds))
            started += len(claimed)
        return started

    async def record(self) -> int:
        """Write down the attempts that ended (and answers) since the last call."""
        if not self._finished and not self._answered:
            return 0
        closings, self._finished = self._finished, []
        answered, self._answered = self._answered, []
        try:
            async with self.database.transaction() as session:
                written = await repo.record_outcomes(
                    session, closings, answered, self.worker_id, self.clock.now()
                )
        except BaseException:  # cancelled mid-write too: nothing may be forgotten
            # Kept for the next try; the leases keep these attempts ours meanwhile.
            self._finished[:0] = closings
            self._answered[:0] = answered
            raise
        # Counted once committed: the counts equal the campaigncalls written down.
        metrics.attempts_ended((c.outcome.value, c.channel_type) for c in written)
        if len(written) < len(closings):
            log.warning(
                "%d attempts had lost their lease; their outcome was dropped",
                len(closings) - len(written),
            )
        self._recorded.set()
        return len(written)

    async def reap_if_due(self) -> int:
        """Close attempts whose lease expired, at most every quarter lease."""
        now = self.clock.now()
        if self._next_reap is not None and now < self._next_reap:
            return 0
        self._next_reap = now + dt.timedelta(seconds=self.config.lease_seconds / 4)
        reaped = 0
        while True:
            async with self.database.transaction() as session:
                batch = await repo.reap_expired(session, now)
            metrics.attempts_ended((c.outcome.value, c.channel_type) for c in batch)
            metrics.ATTEMPTS_REAPED.inc(len(batch))
            reaped += len(batch)
            if len(batch) < repo.CHUNK:
                break
        if reaped:
            log.warning("closed %d attempts whose worker stopped renewing their lease", reaped)
        if self.database.is_sqlite:
            return reaped  # no server sessions: a stopped writer is the README's SQLite case
        async with self.database.transaction() as session:
            ended = await repo.end_stalled_sessions(
                session, (ENGINE_ROLE, WEBHOOKS_ROLE), self.config.stalled_session_seconds)
        if ended:
            log.warning("ended %d database sessions of stopped workers, stalled mid-message "
                        "(their locks are free again)", ended)
        return reaped

    async def prune_if_due(self) -> int:
        """Delete events past their retention, a bounded batch per transaction, at most once a
        prune period. Every engine prunes: the rule (skip rows another pruner holds) lets them
        run at once without waiting on or undoing each other."""
        now = self.clock.now()
        if self._next_prune is not None and now < self._next_prune:
            return 0
        self._next_prune = now + dt.timedelta(seconds=self.config.events_prune_seconds)
        before = now - dt.timedelta(seconds=self.config.events_retention_seconds)
        pruned = 0
        while True:
            async with self.database.transaction() as session:
                batch = await prune_events(session, before, self.config.events_prune_batch)
            pruned += batch
            if batch < self.config.events_prune_batch:
                return pruned

    async def heartbeat(self) -> None:
        """Renew this worker's leases; hang up attempts whose lease was taken over meanwhile."""
        # A clock stepped back since the last comparison would write leases that already
        # ended for the others: compared first, so hang_up_unrenewed knows how far behind.
        await self.clock_guard.agrees()
        # Only attempts claimed before the renewal began can be judged by its answer.
        known = set(self._tasks)
        now = self.clock_guard.now()
        async with self.database.transaction() as session:
            held = await repo.renew_leases(session, self.worker_id, now, self.config.lease_seconds)
        for campaigncall_id in known & held:
            if campaigncall_id in self._leased_until:
                self._leased_until[campaigncall_id] = now + dt.timedelta(
                    seconds=self.config.lease_seconds)
        for campaigncall_id in known - held:
            self._hang_up(campaigncall_id, "lost the lease of attempt %s; hanging up")

    def hang_up_unrenewed(self, next_renewed_within: float | None = None) -> None:
        """Hang up the attempts whose lease may run out, for some other worker, before the
        next renewal can have ended (`next_renewed_within` s from now; by default a heartbeat
        and a renewal's timeout): one this worker cannot renew (the database unreachable, the
        pool busy) is reaped by another worker once its lease has passed, and its target
        dialed again; the call must not still be going on then. For the others a lease ends
        sooner by as much as this clock is behind the server's, and as another's may be
        ahead of it."""
        if next_renewed_within is None:
            next_renewed_within = (self.config.heartbeat_seconds
                                   + self.config.renewal_timeout_seconds)
        cutoff = self._lease_cutoff(next_renewed_within)
        for campaigncall_id, until in list(self._leased_until.items()):
            if until <= cutoff:
                self._hang_up(campaigncall_id,
                              "could not renew the lease of attempt %s in time; hanging up")

    def _lease_cutoff(self, seconds: float) -> dt.datetime:
        """A lease ending before this may have ended, for another worker, `seconds` from now:
        it ends sooner for the others by as much as this clock is behind the server's, and as
        another's may be ahead of it."""
        return self.clock_guard.now() + dt.timedelta(
            seconds=seconds + self.clock_guard.behind + self.clock_guard.peers_ahead)

    def _lease_ends_within(self, seconds: float) -> bool:
        cutoff = self._lease_cutoff(seconds)
        return any(until <= cutoff for until in self._leased_until.values())

    def _hang_up(self, campaigncall_id: uuid.UUID, message: str) -> None:
        task = self._tasks.get(campaigncall_id)
        if task is not None and not task.done():
            log.warning(message, campaigncall_id)
            task.cancel()

    async def wait_dials(self) -> None:
        """Wait until every attempt in flight has ended (its outcome waits for `record`)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    # -- attempts ----------------------------------------------------------------------------

    def _launch(self, claimed: Claimed, leased_until: dt.datetime) -> None:
        task = asyncio.create_task(
            self._attempt(claimed), name=f"attempt {claimed.campaigncall_id}"
        )
        self._tasks[claimed.campaigncall_id] = task
        self._leased_until[claimed.campaigncall_id] = leased_until
        metrics.attempt_started(claimed.channel_type)

        def done(_: object) -> None:
            self._tasks.pop(claimed.campaigncall_id, None)
            self._leased_until.pop(claimed.campaigncall_id, None)
            metrics.attempt_left_process()

        task.add_done_callback(done)

    async def _attempt(self, claimed: Claimed) -> None:
        """Dial once, with dial_timeout enforced here on the clock whatever the dialer does."""
        timer = asyncio.ensure_future(self.clock.sleep(claimed.dial_timeout / 1000))
        answered = False

        def on_answer() -> None:
            nonlocal answered
            if not answered and not timer.done():  # an answer after the timeout is too late
                answered = True
                timer.cancel()
                self._answered.append(claimed.campaigncall_id)
                self._ended.set()

        attempt = Attempt(
            campaigncall_id=claimed.campaigncall_id,
            target_id=claimed.target_id,
            destination=claimed.destination,
            destination_index=claimed.destination_index,
            try_count=claimed.try_count,
            source=claimed.source,
            dial_timeout=claimed.dial_timeout,
            actions=claimed.actions,
            outdial_data=claimed.outdial_data,
            target_data=claimed.target_data,
            answered=on_answer,
            target_name=claimed.target_name,
            target_detail=claimed.target_detail,
        )
        dial = asyncio.ensure_future(self._dial(claimed, attempt))
        try:
            await asyncio.wait({dial, timer}, return_when=asyncio.FIRST_COMPLETED)
            if dial.done():
                outcome = dial.result()
            elif answered:
                outcome = await dial
            else:
                dial.cancel()
                await asyncio.wait({dial})
                # A dialer may tell what its attempt was when stopped (a trunk that never
                # answered is `unreachable`); else the attempt simply was not answered in time.
                told = not dial.cancelled() and dial.exception() is None
                outcome = dial.result() if told else _not_in_time(claimed)
        except asyncio.CancelledError:
            dial.cancel()
            if self._releasing:  # shutting down: hung up, and written down as such
                self._finish(claimed, Outcome(OutcomeKind.CANCELED))
            raise
        finally:
            timer.cancel()
        self._finish(claimed, outcome)

    async def _dial(self, claimed: Claimed, attempt: Attempt) -> Outcome:
        try:
            if claimed.channel_id == NIL_UUID:
                if claimed.channel_type != "simulated":
                    raise DialerUnavailable(
                        f"the outplan has no channel for {attempt.destination.get('type')} "
                        "destinations"
                    )
                return await self.dialer.dial(attempt)
            if self.channels is None:
                raise DialerUnavailable("this engine was started without channel dialers")
            async with self.channels.use(claimed.channel_id, claimed.channel_revision) as dialer:
                return await dialer.dial(attempt)
        except DialerError as error:
            log.info("attempt %s: %s", attempt.campaigncall_id, error)
            return Outcome(error.outcome, detail=str(error))
        except Exception as error:
            if (reason := busy_reason(error)) is not None:  # reading the channel's settings
                log.warning("attempt %s: the database is busy (%s)", attempt.campaigncall_id,
                            reason)
                return Outcome(OutcomeKind.FAILED, detail=f"the channel's settings could not "
                               f"be read: the database is busy ({reason})")
            # A broken dialer fails this attempt only, never the campaign.
            log.exception("attempt %s: the dialer failed", attempt.campaigncall_id)
            return Outcome(OutcomeKind.FAILED, detail="the dialer failed")

    def _finish(self, claimed: Claimed, outcome: Outcome) -> None:
        self._finished.append(
            Closing(
                claimed.campaigncall_id,
                claimed.target_id,
                outcome.kind,
                self.clock.now(),
                report=outcome,
                channel_type=claimed.channel_type,
                destination_index=claimed.destination_index,
            )
        )
        self._ended.set()

    # -- the long-running loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then stop claiming and let in-flight attempts end."""
        # Its helper tasks inherit the form from here.
        with use_time_format(self.config.time_format):
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        log.info("engine %s started", self.worker_id)
        # The helpers are told to end rather than cancelled: a cancel could land inside one of
        # their transactions and leave it to the pool's clean-up while the last record() runs.
        helpers_stop = asyncio.Event()
        helpers = [asyncio.create_task(self._recorder(helpers_stop)),
                   asyncio.create_task(self._heartbeats(helpers_stop))]
        try:
            while not stop.is_set():
                try:
                    started = await self.step()
                except Exception as error:  # noqa: BLE001 - logged, never lost
                    log_failure(log, "an engine round (retrying)", error)
                    started = 0
                if started == 0:
                    await first_of(
                        stop.wait(),
                        self._recorded.wait(),
                        self.clock.sleep(self.config.poll_seconds),
                    )
                    self._recorded.clear()
        finally:
            await self._drain()
            helpers_stop.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            try:
                await self.record()
            except Exception as error:  # noqa: BLE001 - logged; the leases bring them back
                log_failure(log, "recording the last outcomes (their leases will expire)", error)
            log.info("engine %s stopped", self.worker_id)

    async def _drain(self) -> None:
        """Let attempts in flight end within the grace period; hang up the rest as `canceled`."""
        if not self._tasks:
            return
        log.info("waiting for %d attempts in flight", len(self._tasks))
        await first_of(
            self.wait_dials(), self.clock.sleep(self.config.shutdown_grace_seconds)
        )
        if self._tasks:
            self._releasing = True
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.wait(list(self._tasks.values()))

    async def _recorder(self, stop: asyncio.Event) -> None:
        while True:
            await first_of(self._ended.wait(), stop.wait())
            if stop.is_set():
                return  # the engine's own last record() follows
            self._ended.clear()
            try:
                await self.record()
            except Exception as error:  # noqa: BLE001 - logged, never lost
                log_failure(log, "recording outcomes (retrying)", error)
                await first_of(self.clock.sleep(self.config.poll_seconds), stop.wait())
                self._ended.set()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        """Look at the leases every tick. A call is hung up when its lease may end, for
        another worker, before the next look has ended (a tick, and a renewal's timeout);
        renewals come every heartbeat and whenever a lease nears twice that, so a worker that
        renews is never that close, and one that cannot is, in time."""
        tick, limit = self.config.lease_check_seconds, self.config.renewal_timeout_seconds
        loop = asyncio.get_running_loop()
        # Monotonic: a clock stepped back must not put the renewal (and its clock check) off.
        due, failed = loop.time() + self.config.heartbeat_seconds, False
        while True:
            await first_of(self.clock.sleep(tick), stop.wait())
            if stop.is_set():
                return
            # Woken late (a process frozen, a loop starved): what may have ended meanwhile
            # is hung up before a renewal is tried, which may take its whole timeout.
            self.hang_up_unrenewed(tick + limit)
            if failed or loop.time() >= due or self._lease_ends_within(2 * (tick + limit)):
                failed = True  # until one succeeds: tried again at every tick
                try:
                    async with asyncio.timeout(limit):
                        await self.heartbeat()
                    failed, due = False, loop.time() + self.config.heartbeat_seconds
                except TimeoutError:
                    log.warning("renewing leases: no answer within %g s (retrying)", limit)
                except Exception as error:  # noqa: BLE001 - logged, never lost
                    log_failure(log, "renewing leases (retrying)", error)
                self.hang_up_unrenewed(tick + limit)


async def first_of(*waits: Any) -> None:
    """Until the first of `waits` ends; the others are cancelled (the engine and the webhook
    deliverer wait for work or a stop this way)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)




def _not_in_time(claimed: Claimed) -> Outcome:
    """An attempt dial_timeout ended: a call nobody answered; an email the relay did not take
    (no recipient accepted in time: a relay not reached, never `no_answer`)."""
    if claimed.destination.get("type") == "email":
        return Outcome(OutcomeKind.FAILED, smtp_reply="the relay did not take the recipient "
                       f"within dial_timeout ({claimed.dial_timeout} ms)")
    return Outcome(OutcomeKind.NO_ANSWER, ring_ms=claimed.dial_timeout)
