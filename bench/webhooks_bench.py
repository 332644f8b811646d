"""Webhook delivery through the outbox, on PostgreSQL, with one `outdial worker` (the engine,
and the webhook deliverer in a process of its own) and a local receiver (a small asyncio
server in a process of its own; it stands for a remote receiver, and its CPU is reported).

1. A campaign dialed at full speed (instant simulated calls), without and then with one webhook
   subscribed to every event: the engine's attempts/s both ways, and for the second run the
   events delivered per second and the latency from an event's commit to its arrival at the
   receiver (p50/p99). Every event of the run must arrive.
2. Events emitted at a fixed rate (default 1,000/s) for a few seconds, once a first event has
   gone through (the worker is up): latency p50/p99, the rate the receiver saw, and the CPU time
   per 1,000 events of the worker's two processes (the figure that holds best on a loaded
   machine).

The engine alone varies from run to run about as much as the goal allows (1,300–1,800
attempts/s on the same code on a busy 2-core machine), so one pair of runs proves nothing
either way: `--pairs N` repeats the pair (without / with the webhook, in alternating order) and
ends with the median of the per-pair slowdowns, their spread (lowest–highest) and how many
pairs were within 10 %, for this version and, with `--base-src`, the base run alternately.

The receiver stands for a remote machine, yet here it shares the two cores with the engine and
its PostgreSQL backends: it runs at the lowest CPU priority (niceness 19), so that it takes the
CPU the dialing leaves rather than the dialing's own — as a remote receiver would take none.
Its CPU is reported all the same (per 1,000 attempts while dialing, per 1,000 events overall).

    .venv/bin/python bench/webhooks_bench.py [--targets 3000] [--rate 1000] [--seconds 10]
        [--only campaign|rate] [--profile FILE]   # FILE: py-spy's raw profile of the worker
        [--pairs N] [--base-src DIR]   # N pairs; also the worker of DIR (e.g. main's src/)
"""

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_bench import (  # noqa: E402 - the engine bench's database and worker handling
    ADMIN_URL,
    INSTANT,
    drop_database,
    set_status,
    start_workers,
    status_of,
    stop_workers,
)

from outdial.channels.secrets import SecretBox  # noqa: E402
from outdial.clock import utcnow  # noqa: E402
from outdial.db import Database  # noqa: E402
from outdial.events.outbox import EVENTS, emit_many  # noqa: E402
from outdial.migrations import upgrade_database  # noqa: E402
from outdial.models import (  # noqa: E402
    Campaign,
    Campaigncall,
    Customer,
    Outdial,
    OutdialTarget,
    Outplan,
    Webhook,
    WebhookDelivery,
)
from outdial.webhooks.signing import generate_secret  # noqa: E402

CHANNEL_KEY = "webhooks bench channel key"
WORKER_SETTINGS = {**INSTANT, "channel_secret_key": CHANNEL_KEY,
                   "webhooks_allow_private_networks": "true"}
DRAIN_LIMIT_S = 300.0
RECEIVER_NICENESS = 19
DATABASE_PREFIX = "hookengine_webhooks_bench_"  # other benches may run beside this one


async def fresh_database() -> str:
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(ADMIN_URL)
    await connection.execute(f'CREATE DATABASE "{name}"')
    await connection.close()
    return f"{ADMIN_URL.rpartition('/')[0]}/{name}"


class ServerWork:
    """What the PostgreSQL server did for one database between two readings: the CPU time of
    its backends by who opened them (application_name: "outdial engine …", "outdial webhooks
    …"), and the database's transactions and row writes. A backend's CPU is read from /proc,
    as long as it lives: readings are taken while the worker is connected."""

    TABLES = ("events", "webhook_deliveries", "webhooks", "outdial_targets", "campaigncalls")

    def __init__(self, url: str) -> None:
        self.database = url.rpartition("/")[2]

    async def read(self) -> dict[str, Any]:
        connection = await asyncpg.connect(ADMIN_URL)
        try:
            backends = await connection.fetch(
                "SELECT pid, coalesce(application_name, '') AS name FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()", self.database)
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            totals = await connection.fetchrow(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted"
                " FROM pg_stat_database WHERE datname = $1", self.database)
        finally:
            await connection.close()
        cpu: dict[int, tuple[str, float]] = {}
        for row in backends:
            try:
                cpu[row["pid"]] = (row["name"], cpu_seconds(row["pid"]))
            except OSError:
                pass  # ended meanwhile
        return {"cpu": cpu, "totals": dict(totals) if totals else {}}

    async def tables(self) -> dict[str, dict[str, int]]:
        """Row writes per table, from the database itself (its own statistics view)."""
        connection = await asyncpg.connect(f"{ADMIN_URL.rpartition('/')[0]}/{self.database}")
        try:
            rows = await connection.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_dead_tup,"
                " autovacuum_count + autoanalyze_count AS autovacuums FROM pg_stat_user_tables"
                " WHERE relname = ANY($1::text[])", list(self.TABLES))
        finally:
            await connection.close()
        return {row["relname"]: {k: v for k, v in row.items() if k != "relname"} for row in rows}

    @staticmethod
    def difference(before: dict[str, Any], after: dict[str, Any], per: int,
                   unit: str) -> dict[str, Any]:
        """PostgreSQL CPU ms per 1,000 `unit` by the backends' owner, and statements' traces."""
        spent: dict[str, float] = {}
        for pid, (name, seconds) in after["cpu"].items():
            owner = ("engine" if name.startswith("outdial engine") else
                     "deliverer" if name.startswith("outdial webhooks") else "other")
            spent[owner] = spent.get(owner, 0.0) + seconds - before["cpu"].get(pid, (name, 0.0))[1]
        figures: dict[str, Any] = {
            f"pg_{owner}_cpu_ms_per_1000_{unit}": 1e6 * spent.get(owner, 0.0) / per
            for owner in ("engine", "deliverer", "other")}
        figures[f"pg_cpu_ms_per_1000_{unit}"] = 1e6 * sum(spent.values()) / per
        for key in ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted"):
            if key in after["totals"]:
                figures[f"{key}_per_1000_{unit}"] = (
                    1000 * (after["totals"][key] - before["totals"][key]) / per)
        return figures


ANSWER = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"


class _Answering(asyncio.Protocol):
    """One connection to the receiver: reads whole requests (head, then the content-length's
    body; pipelined ones too), answers 204 to each, and notes when each event arrived."""

    def __init__(self, arrivals: list[tuple[float, str, str]]) -> None:
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            start = head.index(b"\r\ncontent-length:") + 17
            stop = head.find(b"\r\n", start)
            length = int(head[start:stop if stop >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                break  # the rest of its body is still on its way
            body = bytes(self.buffer[end + 4:end + 4 + length])
            del self.buffer[:end + 4 + length]
            at = time.time()
            event = json.loads(body)
            self.arrivals.append((at, event["id"], event["tm_create"]))
            answers += 1
        if answers and self.transport is not None:
            self.transport.write(ANSWER * answers)


def _receive(conn: Any) -> None:
    """The receiver process: answers 204 to every POST, notes when each event arrived, and
    sends its notes back when told to stop."""
    arrivals: list[tuple[float, str, str]] = []
    try:
        os.nice(RECEIVER_NICENESS)  # it stands for another machine: see the docstring
    except OSError:
        pass  # not allowed here: it runs at the bench's priority

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Answering(arrivals), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        conn.recv()  # stop
        server.close()

    asyncio.run(serve())
    conn.send(arrivals)


class Receiver:
    """A local receiver in a process of its own, so that it shares neither the interpreter of
    the bench that emits the events nor the worker's. It stands for a receiver on another
    machine, yet takes CPU from this one: it is a small asyncio server (a protocol reading the
    requests from its buffer), so that its share stays small, and its CPU is reported."""

    def __init__(self) -> None:
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_receive, args=(child,), daemon=True)
        self._process.start()
        self.url = f"http://127.0.0.1:{self._conn.recv()}/hook"
        self.arrivals: list[tuple[float, str, str]] = []  # (arrived at, event id, tm_create)

    def cpu(self) -> float:
        """The receiver process's CPU seconds so far."""
        return cpu_seconds(self._process.pid) if self._process.pid else 0.0

    def close(self) -> None:
        """Stop, and take the arrivals in the order they arrived."""
        if self._conn.closed:
            return
        self._conn.send("stop")
        self.arrivals = sorted(self._conn.recv())
        self._conn.close()
        self._process.join(timeout=10)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes a process started (the worker's webhook deliverer)."""
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def worker_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the worker's own process (the engine) and of its children (the
    webhook deliverer; nothing when the deliverer runs inside the worker)."""
    return cpu_seconds(pid), sum(cpu_seconds(child) for child in children(pid))


async def settled(pid: int) -> None:
    """Until the worker and its deliverer process have started and gone quiet (imports and
    connections done), so that neither's start-up falls inside the measured run."""
    deadline, last = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if not children(pid):
            continue
        now = sum(worker_cpu(pid))
        if last is not None and now - last < 0.02:
            return
        last = now


def cpu_figures(before: tuple[float, float], after: tuple[float, float], per: int,
                unit: str) -> dict[str, float]:
    """CPU ms per 1,000 `unit` of the engine's process, the deliverer's, and both."""
    engine, deliverer = (1e6 * (a - b) / per for a, b in zip(after, before))
    return {f"engine_cpu_ms_per_1000_{unit}": engine,
            f"deliverer_cpu_ms_per_1000_{unit}": deliverer,
            f"worker_cpu_ms_per_1000_{unit}": engine + deliverer}


def _epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=dt.UTC).timestamp()


def latencies(arrivals: list[tuple[float, str, str]]) -> dict[str, float]:
    """From an event's tm_create (set in its transaction, just before the commit) to arrival."""
    spans = sorted(at - _epoch(created) for at, _, created in arrivals)
    if not spans:
        return {}
    return {"p50_ms": 1000 * statistics.median(spans),
            "p99_ms": 1000 * spans[min(len(spans) - 1, int(len(spans) * 0.99))],
            "max_ms": 1000 * spans[-1]}


def rate(arrivals: list[tuple[float, str, str]]) -> float:
    if len(arrivals) < 2:
        return 0.0
    return (len(arrivals) - 1) / (arrivals[-1][0] - arrivals[0][0])


async def seed(database: Database, targets: int) -> uuid.UUID:
    """A stopped campaign over `targets` targets of one phone number each, tried once; the
    destinations are whole (as the API stores them), since every change is published."""
    now = utcnow()
    customer = Customer(id=uuid.uuid4(), name="bench", detail="", tm_create=now)
    outplan = Outplan(id=uuid.uuid4(), customer_id=customer.id, source=None, dial_timeout=30000,
                      try_interval=0, tm_create=now, max_try_count_0=1)
    outdial = Outdial(id=uuid.uuid4(), customer_id=customer.id, tm_create=now)
    campaign = Campaign(
        id=uuid.uuid4(), customer_id=customer.id, status="stop", end_handle="stop",
        outplan_id=outplan.id, outdial_id=outdial.id, concurrency=100_000,
        dial_rate=1_000_000, actions=[], tm_create=now)
    outdial.campaign_id = campaign.id
    rows = [{
        "id": uuid.uuid4(), "customer_id": customer.id, "outdial_id": outdial.id, "name": "",
        "detail": "", "data": "", "status": "idle", "tm_create": now,
        **{f"try_count_{s}": 0 for s in range(5)},
        "destination_0": {"type": "tel", "target": f"+1555{n:07d}", "target_name": "",
                          "name": "", "detail": ""},
    } for n in range(targets)]
    async with database.transaction() as session:
        session.add(customer)
        await session.flush()
        session.add_all([outplan, outdial, campaign])
        await session.flush()
        for start in range(0, len(rows), 2000):
            await session.execute(insert(OutdialTarget.__table__), rows[start:start + 2000])
    return campaign.id


async def subscribe(database: Database, customer_id: uuid.UUID, url: str) -> uuid.UUID:
    webhook_id = uuid.uuid4()
    async with database.transaction() as session:
        session.add(Webhook(
            id=webhook_id, customer_id=customer_id, url=url, event_types=[],
            secret_encrypted=SecretBox(CHANNEL_KEY).encrypt(generate_secret()),
            status="enabled", detail="", event_cursor=0, failures=0, tm_create=utcnow()))
    return webhook_id


async def drained(database: Database, webhook_id: uuid.UUID, customer_id: uuid.UUID) -> int:
    """Wait until every event of the customer has been delivered; returns how many."""
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while time.monotonic() < deadline:
        async with database.transaction() as session:
            events = await session.scalar(
                select(func.count()).select_from(EVENTS)
                .where(EVENTS.c.customer_id == customer_id)) or 0
            delivered = await session.scalar(
                select(func.count()).select_from(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == webhook_id,
                       WebhookDelivery.status == "delivered")) or 0
        if delivered >= events:
            return delivered
        await asyncio.sleep(0.5)
    raise RuntimeError(f"only {delivered} of {events} events delivered in {DRAIN_LIMIT_S:g} s")


async def campaign_run(targets: int, subscribed: bool) -> dict[str, Any]:
    url = await fresh_database()
    database = Database(url)
    receiver = Receiver()
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, targets)
        async with database.transaction() as session:
            customer_id = (await session.get(Campaign, campaign_id)).customer_id
        webhook_id = await subscribe(database, customer_id, receiver.url) if subscribed else None
        processes = start_workers(url, 1, **WORKER_SETTINGS)
        await settled(processes[0].pid)  # the clock starts once the worker is up
        server = ServerWork(url)
        cpu_before, server_before = worker_cpu(processes[0].pid), await server.read()
        receiver_before = receiver.cpu()
        load_before = os.getloadavg()[0]
        await set_status(database, campaign_id, "run")
        while await status_of(database, campaign_id) != "stop":
            await asyncio.sleep(0.2)
        # The campaign's window: the engine's CPU and PostgreSQL's while it dialed.
        cpu_stopped, server_stopped = worker_cpu(processes[0].pid), await server.read()
        receiver_stopped = receiver.cpu()
        load_after = os.getloadavg()[0]
        delivered = await drained(database, webhook_id, customer_id) if webhook_id else 0
        cpu_after, server_after = worker_cpu(processes[0].pid), await server.read()
        receiver_after = receiver.cpu()
        stop_workers(processes)
        receiver.close()
        server_after["totals"] = (await server.read())["totals"]  # flushed as backends ended
        tables = await server.tables()
        async with database.transaction() as session:
            first, last, attempts = (await session.execute(
                select(func.min(Campaigncall.tm_create), func.max(Campaigncall.tm_end),
                       func.count()).where(Campaigncall.campaign_id == campaign_id))).one()
        seconds = (last - first).total_seconds()
        result: dict[str, Any] = {"subscribed": subscribed, "attempts": attempts,
                                  "attempts_per_s": attempts / seconds,
                                  "load": f"{load_before:.2f}-{load_after:.2f}"}
        # While dialing (what competes with the engine), then the whole run with the drain.
        result.update({f"dialing_{k}": v for k, v in
                       cpu_figures(cpu_before, cpu_stopped, attempts, "attempts").items()})
        result.update({f"dialing_{k}": v for k, v in ServerWork.difference(
            server_before, {**server_stopped, "totals": server_before["totals"]},
            attempts, "attempts").items() if k.startswith("pg_")})
        result.update(cpu_figures(cpu_before, cpu_after, attempts, "attempts"))
        result.update(ServerWork.difference(server_before, server_after, attempts, "attempts"))
        result["tables"] = tables
        if subscribed:
            result["deliverer_cpu_ms_per_1000_events"] = (
                1e6 * (cpu_after[1] - cpu_before[1]) / delivered)
            result["pg_deliverer_cpu_ms_per_1000_events"] = (
                result["pg_deliverer_cpu_ms_per_1000_attempts"] * attempts / delivered)
            result["receiver_cpu_ms_per_1000_events"] = (
                1e6 * (receiver_after - receiver_before) / delivered)
            # The receiver shares the machine too: its CPU while the campaign dialed.
            result["dialing_receiver_cpu_ms_per_1000_attempts"] = (
                1e6 * (receiver_stopped - receiver_before) / attempts)
            arrivals = receiver.arrivals
            ids = [event_id for _, event_id, _ in arrivals]
            result.update(events=delivered, duplicates=len(ids) - len(set(ids)),
                          in_order=ids == sorted(ids),
                          events_per_s=rate(arrivals), **latencies(arrivals))
        return result
    finally:
        receiver.close()
        await database.dispose()
        await drop_database(url)


async def fixed_rate(events_per_s: int, seconds: float, profile: str | None) -> dict[str, Any]:
    url = await fresh_database()
    database = Database(url)
    receiver = Receiver()
    try:
        await upgrade_database(database)
        campaign_id = await seed(database, 1)
        async with database.transaction() as session:
            customer_id = (await session.get(Campaign, campaign_id)).customer_id
        webhook_id = await subscribe(database, customer_id, receiver.url)
        processes = start_workers(url, 1, **WORKER_SETTINGS)
        # One event through first: the clock starts once the worker is up and connected.
        async with database.transaction() as session:
            await emit_many(session, [("campaign_updated", customer_id, {"n": -1})])
        await drained(database, webhook_id, customer_id)
        warm_up = 1
        # Where the worker's time goes while the events flow (py-spy, installed apart).
        profiler = None if profile is None else subprocess.Popen([
            str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
            "--nonblocking", "--subprocesses", "--duration", str(round(seconds + 1)),
            "--output", profile, "--pid", str(processes[0].pid)])
        tick, per_tick = 0.02, max(1, round(events_per_s * 0.02))
        server = ServerWork(url)
        cpu_before, server_before = worker_cpu(processes[0].pid), await server.read()
        receiver_before = receiver.cpu()
        load_before = os.getloadavg()[0]
        started, emitted = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            async with database.transaction() as session:
                await emit_many(session, [("campaign_updated", customer_id, {"n": emitted + k})
                                          for k in range(per_tick)])
            emitted += per_tick
            behind = started + (emitted / per_tick) * tick - time.monotonic()
            if behind > 0:
                await asyncio.sleep(behind)
        produced_s = time.monotonic() - started
        await drained(database, webhook_id, customer_id)
        cpu_after, server_after = worker_cpu(processes[0].pid), await server.read()
        receiver_after = receiver.cpu()
        load_after = os.getloadavg()[0]
        if profiler is not None:
            profiler.wait(timeout=60)
        stop_workers(processes)
        receiver.close()
        server_after["totals"] = (await server.read())["totals"]  # flushed as backends ended
        arrivals = receiver.arrivals[warm_up:]
        return {"emitted": emitted, "emitted_per_s": emitted / produced_s,
                "delivered": len(arrivals), "delivered_per_s": rate(arrivals),
                "load": f"{load_before:.2f}-{load_after:.2f}",
                **latencies(arrivals),
                **cpu_figures(cpu_before, cpu_after, emitted, "events"),
                "receiver_cpu_ms_per_1000_events":
                    1e6 * (receiver_after - receiver_before) / emitted,
                **ServerWork.difference(server_before, server_after, emitted, "events")}
    finally:
        receiver.close()
        await database.dispose()
        await drop_database(url)


def show(title: str, values: dict[str, Any]) -> None:
    cells = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in values.items())
    print(f"{title}: {cells}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=["campaign", "rate"],
                        help="run only the campaign runs or only the fixed rate")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy's raw profile of the worker during the fixed rate")
    parser.add_argument("--base-src", metavar="DIR",
                        help="also run the worker from DIR (another version's src/), each run "
                             "beside this version's, alternating which goes first")
    parser.add_argument("--pairs", type=int, default=1, help="how many pairs of campaign runs (without / with the webhook), "
                             "each version's when --base-src is given")
    args = parser.parse_args()
    pairs: dict[str, list[dict[str, float]]] = {}  # per version: one summary per pair
    for pair in range(args.pairs):
        versions = [("", None)] if not args.base_src else (
            [("base ", args.base_src), ("branch ", "")][::1 if pair % 2 == 0 else -1])
        for label, src in versions:
            if src:  # the worker (and its deliverer) import outdial from there first
                os.environ["PYTHONPATH"] = src
            else:
                os.environ.pop("PYTHONPATH", None)
            if args.only != "rate":
                pairs.setdefault(label, []).append(
                    await campaigns(args.targets, label, subscribed_first=pair % 2 == 1))
            if args.only != "campaign":
                show(f"{label}events at {args.rate}/s for {args.seconds:g} s", await fixed_rate(
                    args.rate, args.seconds, args.profile))
    for label, summaries in pairs.items():
        if len(summaries) > 1:
            verdict(label, summaries)


SUMMARY = {  # what each pair is summed up by, and the name it is shown under
    "slowdown_pct": "slowdown %",
    "without": "attempts/s without",
    "with": "attempts/s with",
    "dialing_deliverer_cpu_ms_per_1000_attempts": "deliverer ms/1k attempts (dialing)",
    "dialing_pg_deliverer_cpu_ms_per_1000_attempts": "its PostgreSQL ms/1k attempts (dialing)",
    "dialing_receiver_cpu_ms_per_1000_attempts": "receiver ms/1k attempts (dialing)",
    "deliverer_cpu_ms_per_1000_events": "deliverer ms/1k events (whole run)",
    "pg_deliverer_cpu_ms_per_1000_events": "its PostgreSQL ms/1k events (whole run)",
    "receiver_cpu_ms_per_1000_events": "receiver ms/1k events (whole run)",
}


def verdict(label: str, summaries: list[dict[str, float]]) -> None:
    """The pairs of one version: each figure's median and spread, and the goal's count."""
    slowdowns = [summary["slowdown_pct"] for summary in summaries]
    print(f"{label}pairs {len(summaries)}: slowdown per pair "
          + ", ".join(f"{value:+.1f}" for value in slowdowns)
          + f" %; within 10 %: {sum(value <= 10 for value in slowdowns)} of {len(slowdowns)}",
          flush=True)
    for key, name in SUMMARY.items():
        values = sorted(summary[key] for summary in summaries if key in summary)
        if values:
            print(f"{label}  {name}: median {statistics.median(values):.1f}"
                  f" (spread {values[0]:.1f} to {values[-1]:.1f})", flush=True)


async def campaigns(targets: int, label: str = "", *,
                    subscribed_first: bool = False) -> dict[str, float]:
    """One pair: the campaign without and with the webhook (in the order told, so that a
    machine growing busier or quieter over a pair does not favour the same side each time)."""
    runs: dict[bool, dict[str, Any]] = {}
    for subscribed in ((True, False) if subscribed_first else (False, True)):
        runs[subscribed] = await campaign_run(targets, subscribed=subscribed)
        show(f"{label}campaign, " + ("one webhook on every event" if subscribed
                                      else "no webhook"), runs[subscribed])
    without, with_one = runs[False], runs[True]
    cost = 100 * (1 - with_one["attempts_per_s"] / without["attempts_per_s"])
    print(f"{label}engine attempts/s with the webhook: {cost:+.1f} % slower", flush=True)
    return {"slowdown_pct": cost, "without": without["attempts_per_s"],
            "with": with_one["attempts_per_s"],
            **{key: with_one[key] for key in SUMMARY if key in with_one}}


if __name__ == "__main__":
    asyncio.run(main())
