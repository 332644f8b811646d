"""An open event stream checks its credential again every heartbeat period and ends once it no
longer holds: a key deleted or expired, a login token expired, an agent deleted. Time is the
app's fake clock; the test moves it on and waits only for the stream to reach its next look."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from outdial.auth.service import AuthService
from outdial.clock import FakeClock
from outdial.settings import LONGEST_SERVER_WAIT, Settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api, add_agent, assert_error
from tests.integration.campaign_setup import new_outdial, new_target

# A look of the stream takes a few statements; this bounds how long one may take on a loaded
# machine before the test gives up.
LOOK_TIMEOUT = 30.0


async def _sleeping(clock: FakeClock, request: asyncio.Task[Any], sleepers: int) -> None:
    """Until the stream has finished its look and sleeps on the clock again (or has ended)."""
    try:
        async with asyncio.timeout(LOOK_TIMEOUT):
            while not request.done() and len(clock.deadlines()) < sleepers:
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"the stream's look did not end within {LOOK_TIMEOUT:g} s; "
                             f"{len(clock.deadlines())} of {sleepers} asleep on the clock; "
                             f"the app's tasks were at:\n{_app_stacks()}") from None


def _app_stacks() -> str:
    """Where each task running the app's code waits: what a look that never ends is stuck on."""
    stacks = []
    for task in asyncio.all_tasks():
        lines = [f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
                 for frame in _awaited_frames(task.get_coro())]
        if any("/outdial/" in line for line in lines):
            stacks.append("\n".join(lines))
    return "\n\n".join(stacks) or "(none)"


def _awaited_frames(awaitable: Any) -> list[Any]:
    """The frames of a suspended coroutine and of what it awaits, outermost first."""
    frames = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "ag_await", None)
    return frames


def quiet_app(settings: Settings) -> Settings:
    """The app's settings with its import reaper asleep for the whole test (24.8 days): the streams' waits
    count the sleepers on the clock, and a reaper woken by the clock is missing from the count
    until its round ends (in the expiring-key test its 30 s lease ends at the very step the key's
    stream does; the next stream, opened meanwhile, would count one sleeper short and every wait
    of it return before its look)."""
    return settings.model_copy(update={"import_lease_seconds": LONGEST_SERVER_WAIT})


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quiet_app(settings)


class Stream:
    """GET /v1.0/events/stream in a task, moved on by the clock one poll period at a time."""

    def __init__(self, api: Api, app: Any, clock: FakeClock, credential: str) -> None:
        self.app, self.clock = app, clock
        self.poll = app.state.settings.events_poll_seconds
        # The app's own sleepers (the import reaper, kept asleep: see `settings`), and the
        # stream's.
        self.sleepers = len(clock.deadlines()) + 1
        self.request = asyncio.create_task(api.get("/v1.0/events/stream", token=credential))

    async def close(self) -> None:
        """Cancel a request still open, as a test that failed part way leaves it: its
        connection goes back to the pool before the app is stopped."""
        self.request.cancel()
        await asyncio.gather(self.request, return_exceptions=True)

    async def start(self) -> None:
        await _sleeping(self.clock, self.request, self.sleepers)
        assert not self.request.done(), self.request.result().text

    async def leap(self, seconds: float) -> None:
        """Move the clock on at once: the stream makes one look, however far it went."""
        self.clock.advance(seconds)
        await _sleeping(self.clock, self.request, self.sleepers)

    async def run_for(self, seconds: float) -> float:
        """Move the clock on by up to `seconds`, a poll period a step; the seconds it took for
        the stream to end, or `seconds` if it is still open."""
        moved = 0.0
        while moved < seconds and not self.request.done():
            self.clock.advance(self.poll)
            moved += self.poll
            await _sleeping(self.clock, self.request, self.sleepers)
        return moved

    async def body(self) -> str:
        response: httpx.Response = await asyncio.wait_for(self.request, LOOK_TIMEOUT)
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture
async def open_stream(api: Api, app: Any, clock: FakeClock) -> AsyncIterator[Callable[[str], Stream]]:
    """GET /v1.0/events/stream with a credential, the request cancelled at the test's end."""
    opened: list[Stream] = []

    def open_with(credential: str) -> Stream:
        opened.append(Stream(api, app, clock, credential))
        return opened[-1]

    yield open_with
    for stream in opened:
        await stream.close()


async def _access_key(api: Api, expire: int = 3600) -> dict[str, Any]:
    response = await api.post("/v1.0/accesskeys", json={"name": "stream", "expire": expire})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_live_credential_keeps_its_stream_open(
    api: Api, app: Any, open_stream: Callable[[str], Stream],
) -> None:
    heartbeat = app.state.settings.events_heartbeat_seconds
    key = await _access_key(api)
    stream = open_stream(key["token"])
    await stream.start()
    assert await stream.run_for(3 * heartbeat) == pytest.approx(3 * heartbeat)
    assert not stream.request.done()  # checked three times, and still allowed
    app.state.stopping = True
    await stream.run_for(heartbeat)
    app.state.stopping = False
    body = await stream.body()
    assert body.count(": heartbeat") == 3
    assert "credential refused" not in body


async def _delete_key(api: Api, app: Any, clock: FakeClock, key: dict[str, Any]) -> None:
    response = await api.delete(f"/v1.0/accesskeys/{key['id']}")
    assert response.status_code == 200, response.text


async def _delete_agent(api: Api, app: Any, clock: FakeClock, key: dict[str, Any]) -> None:
    async with app.state.database.transaction() as session:
        await AuthService(session, clock).delete_agent("streamer")


@pytest.mark.parametrize("revoke", [_delete_key, _delete_agent], ids=["key deleted", "agent deleted"])
async def test_a_revoked_credential_stops_receiving_within_a_heartbeat_period(
    api: Api, app: Any, clock: FakeClock, open_stream: Callable[[str], Stream],
    revoke: Callable[[Api, Any, FakeClock, dict[str, Any]], Awaitable[None]],
) -> None:
    heartbeat = app.state.settings.events_heartbeat_seconds
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    streamer = Api(api.http, await add_agent(app, clock, outdial["customer_id"], "streamer",
                                             "manager"))
    key = await _access_key(streamer)
    stream = open_stream(key["token"])
    await stream.start()
    # Part way through a period: the next check is due at most a period from now.
    await stream.run_for(heartbeat / 3)
    # An event while the key is still good: it is sent.
    deleted = await api.delete(f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}")
    assert deleted.status_code == 200, deleted.text
    await stream.run_for(stream.poll)
    await revoke(api, app, clock, key)
    took = await stream.run_for(10 * heartbeat)
    assert stream.request.done(), "the stream outlived its credential"
    assert took <= heartbeat + stream.poll
    body = await stream.body()
    assert body.rstrip().splitlines()[-1].startswith(": credential refused: the access key is")
    assert body.count("event: outdialtarget_updated") == 1
    # Reconnecting is refused, as any call with that key.
    assert_error(await api.get("/v1.0/events/stream", token=key["token"]), 401, "INVALID_CREDENTIALS")


async def test_an_expiring_credential_ends_its_stream_once_expired(
    api: Api, app: Any, open_stream: Callable[[str], Stream],
) -> None:
    heartbeat = app.state.settings.events_heartbeat_seconds
    lifetime = app.state.settings.token_lifetime_seconds
    key = await _access_key(api, expire=int(4 * heartbeat))
    by_key = open_stream(key["token"])
    await by_key.start()
    # Up to its expiry the key is good; it ends within a period past it.
    took = await by_key.run_for(10 * heartbeat)
    assert by_key.request.done()
    assert 4 * heartbeat <= took <= 5 * heartbeat + by_key.poll
    assert "credential refused: the access key" in await by_key.body()

    token = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    by_token = open_stream(token)
    await by_token.start()
    await by_token.leap(lifetime - heartbeat)  # checked at that look, and still good
    await by_token.run_for(heartbeat / 2)
    assert not by_token.request.done()
    took = await by_token.run_for(10 * heartbeat)
    assert by_token.request.done()
    assert took <= heartbeat + by_token.poll
    assert "credential refused: the token is invalid or has expired" in await by_token.body()
