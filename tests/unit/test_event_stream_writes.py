"""Every write of the live event stream is bounded: a client that reads nothing (its
connection's buffers full, so the server's write waits) is let go after events_stall_seconds,
and at once when the server stops. Time is a fake clock; the ASGI `send` below is the server
side of such a connection: its first body write never completes."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import State

from outdial.api.routes.events import EventStream
from outdial.clock import FakeClock
from outdial.settings import Settings


async def endless() -> AsyncIterator[str]:
    n = 0
    while True:
        n += 1
        yield f"id: {n}\ndata: {{}}\n\n"


class StalledClient:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.stuck = asyncio.Event()

    async def send(self, message: Any) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.stuck.set()
            await asyncio.Future()  # the client never reads: this write never drains


def stream(clock: FakeClock) -> tuple[EventStream, State]:
    state = State()
    state.clock, state.stopping = clock, False
    state.settings = Settings(events_poll_seconds=0.5, events_stall_seconds=3)
    return EventStream(endless(), state, release=lambda: None, media_type="text/event-stream"), state


async def until_asleep(clock: FakeClock) -> None:
    async with asyncio.timeout(5):
        while not clock.deadlines():
            await asyncio.sleep(0)


async def test_a_client_that_reads_nothing_is_let_go_after_the_stall_period() -> None:
    clock = FakeClock()
    response, _ = stream(clock)
    client = StalledClient()
    writing = asyncio.create_task(response.stream_response(client.send))
    await asyncio.wait_for(client.stuck.wait(), 5)
    for _ in range(5):  # 2.5 s: not yet
        await until_asleep(clock)
        clock.advance(0.5)
    await asyncio.sleep(0)
    assert not writing.done()
    await until_asleep(clock)
    clock.advance(0.5)  # 3 s
    await asyncio.wait_for(writing, 5)  # ended, not raised
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


async def test_a_stopping_server_lets_a_stalled_client_go_at_its_next_look() -> None:
    clock = FakeClock()
    response, state = stream(clock)
    client = StalledClient()
    writing = asyncio.create_task(response.stream_response(client.send))
    await asyncio.wait_for(client.stuck.wait(), 5)
    state.stopping = True
    await until_asleep(clock)
    clock.advance(0.5)
    await asyncio.wait_for(writing, 5)
