"""How the latency of SQLite's concurrent writers is spread: `POST …/targets` from `--concurrency`
closed-loop clients against one server on a fresh SQLite file (bench/api_bench.py's set-up and
client), printed as percentiles and a histogram rather than p50/p99 alone.

`--baseline-src DIR` runs another version's `outdial` package (e.g. main's src/ from `git
archive`) too, alternating which goes first each round, so both see the same machine.

    .venv/bin/python bench/writers_latency_bench.py --duration 8 --rounds 2 \\
        --baseline-src /tmp/outdial-main/src
"""

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import harness
from api_bench import Window, _ready, client_process
from harness import create_outdial, fresh_database, login, machine, percentile, running_server

# Upper bounds of the histogram's buckets, ms.
BUCKETS = (25, 50, 75, 100, 125, 150, 200, 300, 500, 1000, float("inf"))


def run(source: str | None, pool: ProcessPoolExecutor, args: argparse.Namespace) -> dict[str, Any]:
    trace = Path(tempfile.mkstemp(prefix="writers-trace-", suffix=".json")[1]) if args.trace else None
    if trace is not None:
        os.environ["OUTDIAL_WRITERS_TRACE"] = str(trace)
        harness.SERVER_SCRIPT = Path(__file__).with_name("writers_trace.py")
    try:
        result = _run(source, pool, args)
    finally:
        harness.SERVER_SCRIPT = Path(__file__).with_name("server.py")
    if trace is not None:
        result["trace"] = json.loads(trace.read_text())
        trace.unlink()
    return result


def _run(source: str | None, pool: ProcessPoolExecutor, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database("sqlite") as url, running_server(url, source=source) as server:
        token = login(server.base_url)
        outdial_id = create_outdial(server.base_url, token, "writers latency bench")
        start = time.time() + 2.0
        window = Window(start, start + args.warmup, start + args.warmup + args.duration)
        future = pool.submit(client_process, f"{server.base_url}/v1.0/outdials/{outdial_id}/targets",
                             {"token": token}, args.concurrency, window, "raw")
        time.sleep(max(0.0, window.measure_from - time.time()))
        cpu_before = server.cpu_seconds()
        time.sleep(max(0.0, window.measure_until - time.time()))
        cpu = server.cpu_seconds() - cpu_before
        part = future.result()
    latencies = [x * 1000 for x in part["latencies"]]
    return {"latencies": latencies, "failures": part["failures"], "server_cpu": cpu,
            "window": (window.measure_from, window.measure_until)}


def report(name: str, result: dict[str, Any], duration: float) -> None:
    latencies = sorted(result["latencies"])
    n = len(latencies)
    cuts = {p: percentile([x / 1000 for x in latencies], p) * 1000 for p in (50, 90, 95, 99, 99.9)}
    print(f"{name}: {n / duration:.0f} req/s, {result['server_cpu'] * 1000 / n:.2f} ms server CPU/req, "
          f"non-200 {result['failures'] or 0}")
    print("  " + ", ".join(f"p{p:g} {v:.1f}" for p, v in cuts.items()) + f", max {latencies[-1]:.1f} ms")
    low = 0.0
    for high in BUCKETS:
        count = sum(1 for x in latencies if low <= x < high)
        label = f"{low:>5.0f}–{high:<5.0f}ms" if high != float("inf") else f"{low:>5.0f}+      ms"
        print(f"  {label} {count / n:6.1%} {'#' * round(60 * count / n)}")
        low = high
    if "trace" in result:
        report_trace(result["trace"], *result["window"])


def _spread(name: str, values: list[float]) -> None:
    if not values:
        print(f"  {name:<44} (none)")
        return
    ms = sorted(v * 1000 for v in values)
    cuts = ", ".join(f"p{p:g} {percentile(ms, p):6.1f}" for p in (50, 90, 99))
    print(f"  {name:<44} {cuts}, mean {sum(ms) / len(ms):6.1f} ms")


def report_trace(trace: dict[str, Any], since: float, until: float) -> None:
    """Where a write's time went in the server, for the requests the app got in the window."""
    records = [r for r in trace["requests"] if since <= r["start"] < until and "end" in r]
    turns = [r for r in records if "granted" in r and "released" in r]
    print(f"  server-side breakdown of {len(records)} requests (ms):")
    _spread("in the app (start → last byte sent)", [r["end"] - r["start"] for r in records])
    _spread("before asking for the turn", [r["asked"] - r["start"] for r in turns])
    _spread("waiting for the turn", [r["granted"] - r["asked"] for r in turns])
    _spread("holding the turn", [r["released"] - r["granted"] for r in turns])
    trips = [r for r in turns if "thread_end" in r and "trip_back" in r]
    _spread("  turn → trip queued", [r["trip_queued"] - r["granted"] for r in trips])
    _spread("  trip queued → on the thread", [r["thread_start"] - r["trip_queued"] for r in trips])
    _spread("  on the thread (SQLite's work)", [r["thread_end"] - r["thread_start"] for r in trips])
    _spread("  thread done → back in the task", [r["trip_back"] - r["thread_end"] for r in trips])
    _spread("  back in the task → turn given up", [r["released"] - r["trip_back"] for r in trips])
    _spread("after the turn (answer's reads, reply)", [r["end"] - r["released"] for r in turns])
    # Hand-over: from one writer giving the turn up to the next, already waiting, having it.
    releases = sorted(r["released"] for r in turns)
    handovers = []
    for r in turns:
        earlier = [t for t in releases if r["asked"] <= t <= r["granted"]]
        if earlier:
            handovers.append(r["granted"] - earlier[-1])
    _spread("hand-over (given up → next one has it)", handovers)
    held = sum(min(r["released"], until) - max(r["granted"], since) for r in turns)
    print(f"  turn held {held / (until - since):.0%} of the window")
    _spread("event loop lag (5 ms timer fired late by)",
            [lag for when, lag in trace["lags"] if since <= when < until])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent writers")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--trace", action="store_true",
                        help="take each write's time apart in the server (bench/writers_trace.py)")
    parser.add_argument("--baseline-src", default=None,
                        help="folder holding the baseline's outdial package (its src/)")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.concurrency} writers; {args.duration:g} s measured")
    variants = [("this", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_ready, range(1)))
        for round_no in range(1, args.rounds + 1):
            for name, source in (variants if round_no % 2 else variants[::-1]):
                report(f"round {round_no} {name}", run(source, pool, args), args.duration)


if __name__ == "__main__":
    main()
