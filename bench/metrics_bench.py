"""What counting HTTP requests for /metrics costs a request, called in-process (no sockets, no
client), in CPU time of this process (steadier than wall time on a machine busy with other work):

  stack       the real `create_app` stack answering the no-op route of bench/server.py (routing,
              the envelope, time format, trailing slash, JSON answer), with and without
              HttpMetricsMiddleware (taken out of the second one);
  middleware  HttpMetricsMiddleware alone around an app that only answers, against that app.

Rounds alternate between the variants so that other work slows them alike; the median round
of each is reported.

    .venv/bin/python bench/metrics_bench.py --requests 20000 --rounds 7
"""

import argparse
import asyncio
import statistics
import time
from typing import Any

from outdial.api.metrics import HttpMetricsMiddleware
from outdial.settings import Settings
from server import create_bench_app

from harness import machine

SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
    "scheme": "http", "path": "/bench/noop", "raw_path": b"/bench/noop", "query_string": b"",
    "root_path": "", "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                                 (b"content-length", b"2")],
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
}


def build(with_metrics: bool) -> Any:
    # No lifespan: the no-op route touches no database.
    app = create_bench_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))
    if not with_metrics:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HttpMetricsMiddleware]
    return app


def bare_pair() -> tuple[Any, Any]:
    """An app that answers at once (as if routed to the no-op route), bare and counted."""
    app = create_bench_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))
    route = next(r for r in app.routes if getattr(r, "path", "") == "/bench/noop")

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return answer, HttpMetricsMiddleware(answer, app.router)


async def seconds_per_request(app: Any, count: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    began = time.process_time()
    for _ in range(count):
        await app(dict(SCOPE), receive, send)
    elapsed = time.process_time() - began
    assert set(statuses) == {200}, set(statuses)
    return elapsed / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each variant")
    args = parser.parse_args()
    bare, counted = bare_pair()
    apps = {"stack with metrics": build(True), "stack without": build(False),
            "middleware around an answer": counted, "the answer alone": bare}
    for app in apps.values():  # warm-up: middleware stacks built, label children made
        await seconds_per_request(app, 500)
    seconds: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):
        for name, app in apps.items():
            seconds[name].append(await seconds_per_request(app, args.requests))
    print(f"machine: {machine()}; {args.rounds} rounds of {args.requests} requests each, "
          "in-process ASGI calls of POST /bench/noop, CPU time")
    print()
    print("| variant | µs CPU/request (median round) |")
    print("|---|---:|")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"| {name} | {median * 1e6:.1f} |")
    alone = medians["middleware around an answer"] - medians["the answer alone"]
    stack = medians["stack with metrics"] - medians["stack without"]
    print(f"\nHttpMetricsMiddleware alone: {alone * 1e6:+.1f} µs a request")
    print(f"in the whole stack: {stack * 1e6:+.1f} µs a request "
          f"({stack / medians['stack without']:+.1%} of the no-op route's stack)")


if __name__ == "__main__":
    asyncio.run(main())
