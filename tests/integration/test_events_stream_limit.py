"""One customer holds at most OUTDIAL_EVENTS_STREAMS_PER_CUSTOMER live streams open on one
server process (each looks at the database every poll period): the next is a 429 saying so,
and a stream that ends, however it ends, frees its place."""

import asyncio
from typing import Any

import pytest

from outdial.clock import FakeClock
from outdial.settings import Settings
from tests.conftest import Api, assert_error
from tests.integration.test_events_stream_credentials import (
    LOOK_TIMEOUT,
    Stream,
    _access_key,
    quiet_app,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quiet_app(settings).model_copy(update={"events_streams_per_customer": 2})


async def test_a_customers_streams_are_bounded_and_an_ended_one_frees_its_place(
    api: Api, app: Any, clock: FakeClock
) -> None:
    key = (await _access_key(api))["token"]
    first = Stream(api, app, clock, key)
    await first.start()
    second = Stream(api, app, clock, key)
    await second.start()

    # Bounded: were it let in, it would stream until the test's end.
    refused = await asyncio.wait_for(api.get("/v1.0/events/stream", token=key), LOOK_TIMEOUT)
    error = assert_error(refused, 429, "TOO_MANY_STREAMS")
    assert "OUTDIAL_EVENTS_STREAMS_PER_CUSTOMER" in error["message"]
    assert app.state.streams[first_customer(app)] == 2

    first.request.cancel()  # the client went away
    await asyncio.wait_for(asyncio.gather(first.request, return_exceptions=True), LOOK_TIMEOUT)
    assert app.state.streams[first_customer(app)] == 1
    third = Stream(api, app, clock, key)
    await third.start()
    assert app.state.streams[first_customer(app)] == 2

    app.state.stopping = True
    for stream in (second, third):
        await stream.run_for(app.state.settings.events_poll_seconds * 4)
        await stream.body()
    app.state.stopping = False
    assert not app.state.streams  # every place freed


def first_customer(app: Any) -> Any:
    [customer] = list(app.state.streams) or [None]
    return customer
