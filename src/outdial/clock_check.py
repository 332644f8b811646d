"""Is this machine's clock in time with the database server's?

Leases, retry intervals and calling windows are written and read with each process's own
clock. Processes on machines whose clocks disagree by more than a lease's margin would take
over each other's live work (an engine's call, dialing the person twice; a webhook run, sent
twice and out of order; an import, failed while it runs), and an engine whose clock is an hour
off would call people outside their window. So on PostgreSQL each of them compares its clock
with the server's, which they all share, and takes nothing over while the two are further
apart than allowed (OUTDIAL_MAX_CLOCK_OFFSET_SECONDS). SQLite has no server: its processes
share one machine, and so one clock.
"""

import datetime as dt
import logging
import time
from dataclasses import dataclass

from sqlalchemy import text

from outdial import metrics
from outdial.clock import Clock, SystemClock
from outdial.db import Database

# A clock that moved this much more or less than the monotonic time since the last comparison
# was set or stepped (by hand, or by NTP correcting a large error): compared again at once.
# NTP's gradual corrections move it by well under a millisecond a second.
STEP_SECONDS = 1.0


@dataclass(frozen=True)
class ClockOffset:
    # Seconds this clock is ahead of the server's (negative: behind), give or take `within`
    # (half the round trip that read the server's clock).
    seconds: float
    within: float

    def beyond(self, allowed: float) -> bool:
        """Surely further apart than `allowed`: a slow round trip is never taken for an offset."""
        return abs(self.seconds) - self.within > allowed


async def clock_offset(database: Database, clock: Clock) -> ClockOffset | None:
    """How far `clock` is from the database server's clock; None on SQLite."""
    if database.engine.dialect.name != "postgresql":
        return None
    # Only the statement's round trip is timed: a wait for a pooled connection, or a BEGIN,
    # would widen `within` and hide an offset.
    async with database.engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        before = clock.now()
        # clock_timestamp(), not now(): now() is when the transaction began.
        server = await connection.scalar(text("SELECT clock_timestamp()"))
        after = clock.now()
    server_utc = server.astimezone(dt.UTC).replace(tzinfo=None)
    middle = before + (after - before) / 2
    return ClockOffset((middle - server_utc).total_seconds(), (after - before).total_seconds() / 2)


class ClockGuard:
    """Whether a process may take work over now: its clock compared with the database
    server's every `every` seconds, and at once when it was stepped since; a change either
    way is logged once, by `log`, naming `who` and what it holds back (`withholds`)."""

    def __init__(self, database: Database, clock: Clock, allowed: float, *, who: str,
                 withholds: str, log: logging.Logger, every: float = 10.0) -> None:
        self.database, self.clock, self.allowed = database, clock, allowed
        self.who, self.withholds, self.log, self.every = who, withholds, log, every
        self.problem: str | None = None
        # How far behind the server's this clock surely is, at most (0: not behind): leases
        # this process writes end that much sooner for the others.
        self.behind = 0.0
        self._next_check = 0.0  # time.monotonic(): the clock judged cannot time itself
        # While the clocks disagree: how far this one is ahead, as last compared (see now).
        self._correction = 0.0
        # This clock's reading and the monotonic time at the last comparison.
        self._compared_at: tuple[dt.datetime, float] | None = None

    async def agrees(self) -> bool:
        # An injected clock is a test's time, not a machine's.
        if not self.allowed or not isinstance(self.clock, SystemClock):
            return True
        if time.monotonic() < self._next_check and not self._stepped():
            return self.problem is None
        self._next_check = time.monotonic() + self.every
        offset = await clock_offset(self.database, self.clock)
        if offset is None:
            return True
        self._compared_at = (self.clock.now(), time.monotonic())
        metrics.CLOCK_OFFSET.set(offset.seconds)
        problem = self._problem(offset) if offset.beyond(self.allowed) else None
        self._correction = offset.seconds if problem is not None else 0.0
        self.behind = max(0.0, self._correction - offset.seconds + offset.within)
        if problem is not None and self.problem is None:
            self.log.error("%s: %s", self.who, problem)
        elif problem is None and self.problem is not None:
            self.log.warning("%s: its clock agrees with the database server's again", self.who)
        self.problem = problem
        return problem is None

    @property
    def peers_ahead(self) -> float:
        """How far ahead of the server's another process's clock may be while its guard lets
        it take work over (0 where no guard compares: SQLite's processes share one clock)."""
        compares = (self.allowed and isinstance(self.clock, SystemClock)
                    and self.database.engine.dialect.name == "postgresql")
        return float(self.allowed) if compares else 0.0

    def now(self) -> dt.datetime:
        """This clock's time; while it disagrees with the server's, the server's as last
        compared. Leases renewed meanwhile then end when the other processes expect them to,
        not an hour late (a clock an hour ahead) or already (an hour behind)."""
        return self.clock.now() - dt.timedelta(seconds=self._correction)

    def _stepped(self) -> bool:
        if self._compared_at is None:
            return True
        reading, monotonic = self._compared_at
        moved = (self.clock.now() - reading).total_seconds()
        return abs(moved - (time.monotonic() - monotonic)) > STEP_SECONDS

    def _problem(self, offset: ClockOffset) -> str:
        ahead = "ahead of" if offset.seconds > 0 else "behind"
        return (f"this machine's clock is {abs(offset.seconds):.1f} s {ahead} the database "
                f"server's (OUTDIAL_MAX_CLOCK_OFFSET_SECONDS allows {self.allowed:g} s): "
                f"{self.withholds} until they agree; fix this machine's time sync (NTP)")
