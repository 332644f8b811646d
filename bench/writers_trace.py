"""bench/server.py with each request's time taken apart, for bench/writers_latency_bench.py --trace.

Run as `python bench/writers_trace.py --database-url URL --port N` with OUTDIAL_WRITERS_TRACE
naming a JSON file, written when the server exits. Per request (wall-clock seconds, time.time):
when the app got it and when its answer's last bytes were handed to the transport; when it
asked for its turn among the SQLite writers (WriterQueue.acquire), got it and gave it up; and,
for its one trip to the connection's thread, when the trip was queued, started and ended on
that thread, and when the loop ran the callback that brings its result back. Also the event
loop's lag: how late a 5 ms timer fires, sampled all the time.
"""

import asyncio
import atexit
import contextvars
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import server  # noqa: E402  (bench/server.py)
from outdial.db import engine, sqlite  # noqa: E402

RECORDS: list[dict[str, float]] = []
LAGS: list[tuple[float, float]] = []  # (when, how late the timer fired) in seconds
current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "current", default=None)


def _note(key: str, when: float | None = None) -> None:
    record = current.get()
    if record is not None and key not in record:
        record[key] = time.time() if when is None else when


_acquire, _release = engine.WriterQueue.acquire, engine.WriterQueue.release


async def acquire(self: Any, timeout: float) -> None:
    _note("asked")
    await _acquire(self, timeout)
    _note("granted")


def release(self: Any) -> None:
    _note("released")  # the releasing task's record (a callback's record: see write_alone)
    _release(self)


_write_alone = sqlite.OneTripConnection.write_alone


async def write_alone(self: Any, transaction: Any, turn: bool = True) -> Any:
    record = current.get()

    def traced() -> Any:  # on the connection's thread
        if record is not None:
            record["thread_start"] = time.time()
        try:
            return transaction()
        finally:
            if record is not None:
                record["thread_end"] = time.time()

    _note("trip_queued")
    result = await _write_alone(self, traced, turn)
    _note("trip_back")
    return result


watching: asyncio.Task[None] | None = None


def traced_app(app: Any) -> Any:
    async def call(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/targets"):
            await app(scope, receive, send)
            return
        global watching
        if watching is None:  # the loop's lag is watched from the first request on
            watching = asyncio.create_task(watch_lag())
        record = {"start": time.time()}
        current.set(record)

        async def sending(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                record["end"] = time.time()

        await app(scope, receive, sending)
        RECORDS.append(record)

    return call


async def watch_lag() -> None:
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(0.005)
        LAGS.append((time.time(), loop.time() - asked - 0.005))


def dump() -> None:
    Path(os.environ["OUTDIAL_WRITERS_TRACE"]).write_text(json.dumps({"requests": RECORDS, "lags": LAGS}))


def main() -> None:
    engine.WriterQueue.acquire = acquire  # type: ignore[method-assign]
    engine.WriterQueue.release = release  # type: ignore[method-assign]
    sqlite.OneTripConnection.write_alone = write_alone  # type: ignore[method-assign]
    create = server.create_bench_app

    def create_traced(settings: Any) -> Any:
        return traced_app(create(settings))

    server.create_bench_app = create_traced  # type: ignore[assignment]
    # uvicorn stops on SIGTERM, puts the handler it found back and raises the signal again.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    atexit.register(dump)
    server.main()


if __name__ == "__main__":
    main()
