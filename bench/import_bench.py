"""Import, export and stats at a million targets, against a real `outdial serve`.

    .venv/bin/python bench/import_bench.py --database postgresql --rows 1000000
    .venv/bin/python bench/import_bench.py --database sqlite --rows 1000000

Prints wall time, rows/s and the server's peak memory (the serving process plus its checking
workers, VmHWM from /proc), beside PostgreSQL's own COPY of the same rows already validated and
beside one POST per target (10,000 POSTs, extrapolated); then the export (CSV and NDJSON) beside
PostgreSQL's own COPY TO of the same rows, and the stats, plain and with targets in their retry
interval.
"""

import argparse
import asyncio
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from outdial.db import Database  # noqa: E402
from outdial.models import Campaign, Outdial, OutdialTarget, Outplan  # noqa: E402
from tests import databases  # noqa: E402

ADMIN = {"username": "admin", "password": "admin-password-1"}
# Numbers of several countries, as people write them: most in E.164, some national (US).
COUNTRIES = [("+1555", 7), ("+4420", 8), ("+336", 8), ("+4930", 8), ("+8190", 8), ("+6141", 7)]


def make_file(path: Path, rows: int) -> None:
    rng = random.Random(4)
    with path.open("w") as out:
        out.write("name,detail,data,destination_0,destination_1,destination_2\n")
        for i in range(rows):
            cells = []
            for _ in range(rng.choice((1, 2, 3))):
                if rng.random() < 0.1:
                    cells.append(f"(212) 555-{rng.randrange(10000):04d}")  # national, region US
                else:
                    prefix, digits = rng.choice(COUNTRIES)
                    cells.append(f"{prefix}{rng.randrange(10**digits):0{digits}d}")
            cells += [""] * (3 - len(cells))
            out.write(f"person {i},,{{\"id\": {i}}},{','.join(cells)}\n")


def family(pid: int) -> list[int]:
    """A process and its children (the checking workers)."""
    try:
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except OSError:
        return [pid]


def peaks_kib(pid: int, field: str = "VmHWM") -> dict[int, int]:
    """VmHWM (peak resident memory since start) or VmRSS (resident now) of a process and of
    each of its children."""
    peaks = {}
    for p in family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    peaks[p] = int(line.split()[1])
        except OSError:
            pass
    return peaks


def peak_kib(pid: int) -> int:
    """VmHWM of a process and its children, summed."""
    return sum(peaks_kib(pid).values())


def resident_kib(pid: int) -> int:
    """VmRSS of a process and its children, summed: sampled during the import, it leaves out
    the server's start-up peak (argon2 hashing the admin password touches 64 MiB)."""
    return sum(peaks_kib(pid, "VmRSS").values())


def backend_cpu(url: str) -> dict[int, float]:
    """CPU time so far of the PostgreSQL backends serving the bench database (same machine)."""
    return cpu_seconds(0, backend_pids(url))


def cpu_seconds(pid: int, pids: list[int] | None = None) -> dict[int, float]:
    """User + system CPU time of a process and each of its children so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for p in family(pid) if pids is None else pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            times[p] = (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return times


class Timeline:
    """Per-second CPU of the server, its checking workers and the PostgreSQL backends during
    the import: which of them is busy when, so that a step that runs alone shows."""

    def __init__(self, server_pid: int, url: str) -> None:
        self.server_pid, self.url = server_pid, url
        self.backends: dict[int, float] = {}  # CPU of each backend seen, when last sampled
        self.database = 0.0  # CPU the backends used since the start
        self.samples: list[tuple[float, float, float, float]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self) -> tuple[float, float, float, float]:
        family_cpu = cpu_seconds(self.server_pid)
        server = family_cpu.pop(self.server_pid, 0.0)
        # The import's own connections open after the start: backends are looked up each time
        # (a backend first seen counts from then on).
        now = cpu_seconds(0, backend_pids(self.url))
        self.database += sum(t - self.backends.get(p, t) for p, t in now.items())
        self.backends.update(now)
        return time.perf_counter(), server, sum(family_cpu.values()), self.database

    def run(self) -> None:
        self.samples.append(self.sample())
        while not self.stopped.wait(1.0):
            self.samples.append(self.sample())

    def stop(self) -> str:
        self.stopped.set()
        self.thread.join()
        self.samples.append(self.sample())
        lines = ["second  server  workers  postgresql (share of a core)"]
        start = self.samples[0][0]
        for (t0, *before), (t1, *after) in zip(self.samples, self.samples[1:]):
            shares = [(a - b) / (t1 - t0) for a, b in zip(after, before)]
            lines.append(f"{t1 - start:6.1f}  " + "  ".join(f"{x:6.0%}" for x in shares))
        return "\n".join(lines)


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends serving the bench database now (the server's pool)."""
    async def pids() -> list[int]:
        connection = await asyncpg.connect(url)
        try:
            return [r["pid"] for r in await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        finally:
            await connection.close()

    return asyncio.run(pids())


class Server:
    def __init__(self, url: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, "OUTDIAL_DATABASE_URL": url, "OUTDIAL_ADMIN_USERNAME": ADMIN["username"],
               "OUTDIAL_ADMIN_PASSWORD": ADMIN["password"], "OUTDIAL_SECRET_KEY": "bench-key-" * 4,
               "OUTDIAL_LOG_LEVEL": "warning"}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "outdial"), "serve", "--port", str(self.port)], env=env)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        for _ in range(600):
            try:
                if self.http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        self.params = {"token": self.http.post("/auth/login", json=ADMIN).json()["token"]}
        self.worker_peaks: dict[int, int] = {}

    def stop(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


def stream_file(path: Path, server: Server, samples: list[int]) -> object:
    with path.open("rb") as f:
        while piece := f.read(1 << 20):
            samples.append(resident_kib(server.process.pid))
            yield piece


async def pg_copy_baseline(url: str, outdial_id: str) -> float:
    """PostgreSQL's own COPY of the imported (already validated) rows into a fresh table."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("DROP TABLE IF EXISTS bench_copy")
        await connection.execute("CREATE TABLE bench_copy (LIKE outdial_targets INCLUDING ALL)")
        path = Path(tempfile.mkstemp(suffix=".copy")[1])
        await connection.copy_from_query(
            "SELECT * FROM outdial_targets WHERE outdial_id = $1", outdial_id, output=str(path))
        started = time.perf_counter()
        await connection.copy_to_table("bench_copy", source=str(path))
        elapsed = time.perf_counter() - started
        await connection.execute("DROP TABLE bench_copy")
        path.unlink()
        return elapsed
    finally:
        await connection.close()


def export(http: httpx.Client, params: dict, outdial: str, format: str) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    with http.stream("GET", f"/v1.0/outdials/{outdial}/targets/export",
                     params={**params, "format": format}) as r:
        for piece in r.iter_bytes():
            size += len(piece)
    return time.perf_counter() - started, size


async def pg_copy_to(url: str, outdial_id: str | uuid.UUID) -> tuple[float, int]:
    """PostgreSQL's own COPY TO of the exported rows, in export order, to a sink that counts."""
    connection = await asyncpg.connect(url)
    size = 0

    async def sink(data: bytes) -> None:
        nonlocal size
        size += len(data)
    try:
        started = time.perf_counter()
        await connection.copy_from_query(
            "SELECT * FROM outdial_targets WHERE outdial_id = $1 AND tm_delete IS NULL "
            "ORDER BY tm_create, id", outdial_id, output=sink, format="csv")
        return time.perf_counter() - started, size
    finally:
        await connection.close()


def stats_timing(http: httpx.Client, params: dict, outdial: str, times: int = 21) -> str:
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        http.get(f"/v1.0/outdials/{outdial}/stats", params=params).raise_for_status()
        timings.append(time.perf_counter() - started)
    timings.sort()
    return (f"best {timings[0] * 1000:.1f} ms, median {timings[len(timings) // 2] * 1000:.1f} ms, "
            f"worst {timings[-1] * 1000:.1f} ms ({times} GETs, over HTTP with authentication)")


async def start_retries(url: str, outdial_id: str, count: int) -> int:
    """Give the outdial a campaign and an outplan (10 minutes between tries), and make `count`
    targets look as if their first attempt has just ended: they wait out their interval."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            outdial = await session.get(Outdial, uuid.UUID(outdial_id))
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            outplan = Outplan(id=uuid.uuid4(), customer_id=outdial.customer_id, try_interval=600_000,
                              max_try_count_0=3, max_try_count_1=3, max_try_count_2=3, tm_create=now)
            campaign = Campaign(id=uuid.uuid4(), customer_id=outdial.customer_id, outplan_id=outplan.id,
                                outdial_id=outdial.id, tm_create=now)
            session.add_all([outplan, campaign])
            await session.flush()
            outdial.campaign_id = campaign.id
            ids = select(OutdialTarget.id).where(OutdialTarget.outdial_id == outdial.id).limit(count)
            await session.execute(update(OutdialTarget).where(OutdialTarget.id.in_(ids.scalar_subquery()))
                                  .values(try_count_0=1, tm_last_end=now, next_attempt_at=now))
        return count
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--skip-posts", action="store_true", help="skip the one-POST-per-target run")
    parser.add_argument("--export-rounds", type=int, default=2)
    parser.add_argument("--timeline", action="store_true",
                        help="print the CPU of server, workers and PostgreSQL per second of the import")
    parser.add_argument("--waiting", type=int, default=10_000,
                        help="targets put in their retry interval for the second stats figure")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outdial-bench-"))
    url = (databases.create_postgres_database() if args.database == "postgresql"
           else f"sqlite+aiosqlite:///{work / 'bench.db'}")
    upload = work / "targets.csv"
    make_file(upload, args.rows)
    print(f"{args.database}: {args.rows:,} rows, {upload.stat().st_size / 1e6:.0f} MB of CSV")
    server = Server(url)
    try:
        http, params = server.http, server.params
        outdial = http.post("/v1.0/outdials", json={}, params=params).json()["id"]
        samples: list[int] = []
        cpu_before = cpu_seconds(server.process.pid)
        database_before = backend_cpu(url) if args.database == "postgresql" else {}
        timeline = None
        if args.timeline and args.database == "postgresql":
            timeline = Timeline(server.process.pid, url)
        started = time.perf_counter()
        response = http.post(f"/v1.0/outdials/{outdial}/imports", params={**params, "default_region": "US"},
                             content=stream_file(upload, server, samples), headers={"Content-Type": "text/csv"})
        elapsed = time.perf_counter() - started
        job = response.json()
        if timeline is not None:
            print(timeline.stop())
        peak = max(samples + [resident_kib(server.process.pid)]) / 1024
        cpu_after = cpu_seconds(server.process.pid)
        cpu = {p: t - cpu_before.get(p, 0) for p, t in cpu_after.items()}
        server_cpu = cpu.pop(server.process.pid)
        print(f"import: {elapsed:.1f} s, {args.rows / elapsed:,.0f} rows/s, status {job['status']}, "
              f"imported {job['rows_imported']:,}, rejected {job['rows_rejected']:,}, "
              f"peak RSS during the import (server + workers, sampled per MB sent) {peak:.0f} MB")
        peaks = peaks_kib(server.process.pid)
        print(f"VmHWM since start: server {peaks.pop(server.process.pid) / 1024:.0f} MB, children "
              f"{' + '.join(f'{kib / 1024:.0f}' for kib in peaks.values())} MB "
              f"(sum {peak_kib(server.process.pid) / 1024:.0f} MB)")
        print(f"CPU: server {server_cpu:.1f} s, workers {' + '.join(f'{t:.1f}' for t in cpu.values())} s, "
              f"total {server_cpu + sum(cpu.values()):.1f} s "
              f"({(server_cpu + sum(cpu.values())) / args.rows * 1e6:.1f} µs per row)")
        if args.database == "postgresql":
            database_cpu = sum(t - database_before.get(p, 0) for p, t in backend_cpu(url).items())
            print(f"CPU of the PostgreSQL backends: {database_cpu:.1f} s (backends alive at the end)")
        if args.database == "postgresql":
            copy = asyncio.run(pg_copy_baseline(url, outdial))
            print(f"PostgreSQL COPY of the same validated rows: {copy:.1f} s "
                  f"({args.rows / copy:,.0f} rows/s); import / COPY = {elapsed / copy:.1f}x")

        for round_ in range(args.export_rounds):  # alternated: the spread on a shared machine
            for format in ("csv", "ndjson"):
                seconds, size = export(http, params, outdial, format)
                print(f"export ({format}, round {round_ + 1}): {seconds:.2f} s, "
                      f"{job['rows_imported'] / seconds:,.0f} rows/s, {size / 1e6:.0f} MB, "
                      f"server peak RSS so far {peak_kib(server.process.pid) / 1024:.0f} MB")
            if args.database == "postgresql":
                seconds, size = asyncio.run(pg_copy_to(url, outdial))
                print(f"PostgreSQL's own COPY TO of the same rows (csv, export order): {seconds:.2f} s, "
                      f"{size / 1e6:.0f} MB")

        print(f"stats at {job['rows_imported']:,} targets: {stats_timing(http, params, outdial)}")
        waiting = asyncio.run(start_retries(url, outdial, args.waiting))
        print(f"stats at {job['rows_imported']:,} targets, {waiting:,} of them in their retry "
              f"interval: {stats_timing(http, params, outdial)}")

        if args.skip_posts:
            return
        other = http.post("/v1.0/outdials", json={}, params=params).json()["id"]
        started = time.perf_counter()
        for i in range(args.posts):
            body = {"name": f"p{i}", "destination_0": {"type": "tel", "target": f"+1555{i:07d}"}}
            http.post(f"/v1.0/outdials/{other}/targets", json=body, params=params).raise_for_status()
        posts = time.perf_counter() - started
        per_million = posts / args.posts * 1_000_000
        print(f"one POST per target: {args.posts:,} in {posts:.1f} s ({args.posts / posts:,.0f}/s); "
              f"a million would take ~{per_million / 60:.0f} min ({per_million / elapsed:.0f}x the import)")
    finally:
        server.stop()
        if args.database == "postgresql":
            databases.drop_postgres_database(url)


if __name__ == "__main__":
    main()
