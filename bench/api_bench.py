"""Throughput and latency of POST /v1.0/outdials/{id}/targets beside do-nothing endpoints.

Starts the real server stack (bench/server.py: uvicorn + create_app) on a fresh SQLite file or a
fresh PostgreSQL database, logs in, creates an outdial, then drives each endpoint in turn with
`--concurrency` concurrent keep-alive connections spread over `--client-procs` processes:

  targets        POST /v1.0/outdials/{id}/targets   the real call: auth, validation, INSERT, commit
  outdial        GET  /v1.0/outdials/{id}           one outdial, authenticated
  authenticated  POST /bench/authenticated          session + credential check, no write
  validated      POST /bench/validated              target body parsed and checked, no database
  noop           POST /bench/noop                   routing + middleware only: the ceiling

`--baseline-src DIR` runs each database's endpoints twice per round, once on the `outdial`
package found in DIR (another version's src/, e.g. main's from `git archive`) and once on this
one, alternating which goes first, so both see the same machine:

    git archive main src | tar -x -C /tmp/outdial-main
    .venv/bin/python bench/api_bench.py --db postgresql,sqlite --baseline-src /tmp/outdial-main/src

Every endpoint gets the same request (same body, same ?token=). Requests are counted when they
finish inside the measured window (after a warm-up). Server and client CPU use over the window
tell which side was the bottleneck. On a 2-core machine an httpx client costs about as much CPU
per request as the no-op endpoint, so it would take the core the server needs; the default
client therefore sends pre-built HTTP/1.1 requests on asyncio streams (`--client raw`), and
`--client httpx` is there to compare.

    .venv/bin/python bench/api_bench.py --db sqlite --duration 10
"""

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import uvloop

from harness import (
    Server, create_outdial, fresh_database, login, machine, percentile, running_server,
)

TARGET_BODY = {
    "name": "bench target",
    "detail": "made by bench/api_bench.py",
    "data": "",
    "destination_0": {"type": "tel", "target": "+15559876543"},
    "destination_1": {"type": "email", "target": "someone@example.com"},
}
ENDPOINTS = ("targets", "outdial", "authenticated", "validated", "noop")
GET_ENDPOINTS = ("outdial",)


@dataclass
class Window:
    start: float  # wall-clock (time.time) when clients start sending
    measure_from: float
    measure_until: float


async def _raw_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one pre-built HTTP/1.1 request on a kept-alive connection; read the whole answer."""
    writer.write(request)
    status = int((await reader.readline()).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _drive(
    url: str, params: dict[str, str], connections: int, window: Window, client: str,
    method: str = "POST",
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: dict[int, int] = {}

    def record(began: float, status: int) -> None:
        elapsed = time.perf_counter() - began
        if window.measure_from <= time.time() <= window.measure_until:
            if status == 200:
                latencies.append(elapsed)
            else:
                failures[status] = failures.get(status, 0) + 1

    target = httpx.URL(url, params=params)
    body = json.dumps(TARGET_BODY).encode() if method == "POST" else b""
    request = (
        f"{method} {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def raw_client() -> None:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        while time.time() < window.measure_until:
            began = time.perf_counter()
            record(began, await _raw_exchange(reader, writer, request))
        writer.close()

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        async def httpx_client() -> None:
            while time.time() < window.measure_until:
                began = time.perf_counter()
                response = await (http.post(target, json=TARGET_BODY) if method == "POST"
                                  else http.get(target))
                record(began, response.status_code)

        await asyncio.sleep(max(0.0, window.start - time.time()))
        cpu_before = time.process_time()
        each = raw_client if client == "raw" else httpx_client
        await asyncio.gather(*(each() for _ in range(connections)))
        cpu = time.process_time() - cpu_before
    span = window.measure_until - window.start
    return {"latencies": latencies, "failures": failures, "cpu_share": cpu / span}


def client_process(
    url: str, params: dict[str, str], connections: int, window: Window, client: str,
    method: str = "POST",
) -> dict[str, Any]:
    """One client process: `connections` concurrent keep-alive clients until the window closes."""
    uvloop.install()
    return asyncio.run(_drive(url, params, connections, window, client, method))


def run_load(
    pool: ProcessPoolExecutor, server: Server, path: str, token: str, args: argparse.Namespace,
    method: str = "POST",
) -> dict[str, Any]:
    start = time.time() + 2.0  # time for the client processes to be ready
    window = Window(start, start + args.warmup, start + args.warmup + args.duration)
    shares = [args.concurrency // args.client_procs + (i < args.concurrency % args.client_procs)
              for i in range(args.client_procs)]
    futures = [pool.submit(client_process, server.base_url + path, {"token": token}, n, window,
                           args.client, method)
               for n in shares]
    time.sleep(max(0.0, window.measure_from - time.time()))
    server_cpu_before = server.cpu_seconds()
    time.sleep(max(0.0, window.measure_until - time.time()))
    server_cpu = server.cpu_seconds() - server_cpu_before
    parts = [f.result() for f in futures]
    latencies = [x for p in parts for x in p["latencies"]]
    failures: dict[int, int] = {}
    for p in parts:
        for code, count in p["failures"].items():
            failures[code] = failures.get(code, 0) + count
    if not latencies:
        raise RuntimeError(f"no request to {path} succeeded: {failures}")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / args.duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "failures": failures,
        "server_cpu": server_cpu / args.duration,
        # CPU the server spent per answered request: steadier than req/s when other work
        # competes for the cores.
        "server_cpu_ms": server_cpu * 1000 / len(latencies),
        "client_cpu": [round(p["cpu_share"], 2) for p in parts],
    }


def _ready(_: int) -> None:
    import httpx  # noqa: F401
    import uvloop  # noqa: F401


def run_server(db: str, source: str | None, endpoints: list[str], pool: ProcessPoolExecutor,
               args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each endpoint in turn against one server (of `source`, else this version) on a fresh
    database."""
    results: dict[str, dict[str, Any]] = {}
    with fresh_database(db) as url, running_server(url, source=source) as server:
        token = login(server.base_url)
        outdial_id = create_outdial(server.base_url, token, "api bench")
        paths = {
            "targets": f"/v1.0/outdials/{outdial_id}/targets",
            "outdial": f"/v1.0/outdials/{outdial_id}",
            "authenticated": "/bench/authenticated",
            "validated": "/bench/validated",
            "noop": "/bench/noop",
        }
        for endpoint in endpoints:
            method = "GET" if endpoint in GET_ENDPOINTS else "POST"
            results[endpoint] = run_load(pool, server, paths[endpoint], token, args, method)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True,
                        help="sqlite, postgresql, or both comma-separated (run in that order)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients in all")
    parser.add_argument("--client-procs", type=int, default=1,
                        help="client processes the clients are spread over")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="raw: pre-built HTTP/1.1 requests on asyncio streams (cheap, so the "
                             "client leaves the CPU to the server); httpx: httpx.AsyncClient")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS),
                        help=f"comma-separated subset of {','.join(ENDPOINTS)}")
    parser.add_argument("--sqlite-endpoints", default=None,
                        help="on SQLite, this subset instead of --endpoints (e.g. targets: the "
                             "16 concurrent writers)")
    parser.add_argument("--baseline-src", default=None,
                        help="folder holding the baseline's outdial package (its src/)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of (baseline, this) pairs, alternating which runs first")
    args = parser.parse_args()
    dbs = [d for d in args.db.split(",") if d]
    if unknown_db := set(dbs) - {"sqlite", "postgresql"}:
        parser.error(f"unknown databases: {', '.join(sorted(unknown_db))}")
    wanted = {db: [e for e in ((args.sqlite_endpoints if db == "sqlite" and args.sqlite_endpoints
                                else args.endpoints).split(",")) if e] for db in dbs}
    if unknown := {e for es in wanted.values() for e in es} - set(ENDPOINTS):
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")

    print(f"machine: {machine()}; db={args.db}; {args.concurrency} {args.client} clients in "
          f"{args.client_procs} process(es); {args.duration:g} s measured after "
          f"{args.warmup:g} s warm-up; baseline: {args.baseline_src or 'none'}")
    variants = [("this", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    runs: list[tuple[int, str, str, dict[str, dict[str, Any]]]] = []
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.client_procs, mp_context=spawn) as pool:
        # Start the client processes (and their imports) now: on a loaded machine a process
        # started with the first window could miss it.
        list(pool.map(_ready, range(args.client_procs)))
        for round_no in range(1, args.rounds + 1):
            order = variants if round_no % 2 else variants[::-1]
            for db in dbs:
                for name, source in order:
                    results = run_server(db, source, wanted[db], pool, args)
                    runs.append((round_no, db, name, results))
                    print(f"  round {round_no} {db} {name}: " + ", ".join(
                        f"{e} {r['rps']:.0f} req/s p99 {r['p99_ms']:.1f} ms"
                        for e, r in results.items()), flush=True)

    print()
    print("| round | db | code | endpoint | req/s | ×noop | p50 ms | p99 ms | server CPU "
          "| server CPU ms/req | client CPU | non-200 |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for round_no, db, name, results in runs:
        ceiling = results.get("noop", {}).get("rps")
        for endpoint, r in results.items():
            client_cpu = "+".join(f"{c:.0%}" for c in r["client_cpu"])
            ratio = f"{r['rps'] / ceiling:.2f}" if ceiling else "–"
            print(f"| {round_no} | {db} | {name} | {endpoint} | {r['rps']:.0f} | {ratio} "
                  f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['server_cpu']:.0%} "
                  f"| {r['server_cpu_ms']:.2f} | {client_cpu} | {r['failures'] or 0} |")


if __name__ == "__main__":
    main()
