"""Time as an object, so that retry intervals, leases and expiry are tested without sleeping."""

import asyncio
import datetime as dt
from typing import Protocol


def utcnow() -> dt.datetime:
    """Now in UTC as a naive datetime: the form every timestamp is stored in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return utcnow()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to; sleepers wake when it passes their deadline."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 1, 12, 0, 0)
        self._sleepers: list[tuple[dt.datetime, asyncio.Future[None]]] = []

    def now(self) -> dt.datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        deadline = self._now + dt.timedelta(seconds=seconds)
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleeper = (deadline, future)
        self._sleepers.append(sleeper)
        try:
            await future
        finally:
            if sleeper in self._sleepers:  # cancelled before its time: no longer asleep
                self._sleepers.remove(sleeper)

    def deadlines(self) -> list[dt.datetime]:
        """When each task asleep on this clock wakes: tests move the clock once the code they
        drive has reached the wait they mean, not while it is still on its way there."""
        return sorted(deadline for deadline, _ in self._sleepers)

    def advance(self, seconds: float = 0.0, *, ms: float = 0.0) -> None:
        self._now += dt.timedelta(seconds=seconds, milliseconds=ms)
        due = [s for s in self._sleepers if s[0] <= self._now]
        self._sleepers = [s for s in self._sleepers if s[0] > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)
