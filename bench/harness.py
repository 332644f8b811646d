"""What both benchmarks share: a fresh database, the server in a subprocess, and statistics."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from server import ADMIN_PASSWORD, ADMIN_USERNAME

SERVER_SCRIPT = Path(__file__).with_name("server.py")
POSTGRES_ADMIN_URL = os.environ.get(
    "OUTDIAL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new, empty database of `kind` ("sqlite" or "postgresql"), removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="outdial-bench-") as directory:
            yield f"sqlite+aiosqlite:///{directory}/outdial.db"
        return
    name = f"outdial_bench_{uuid.uuid4().hex[:12]}"
    _postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def running_server(
    database_url: str, startup_timeout_s: float = 60.0, source: str | None = None
) -> Iterator[Server]:
    """Start bench/server.py on a free port and wait until /health answers 200. `source`: a
    folder holding another version's `outdial` package (e.g. main's src/) to run instead of
    the installed one."""
    port = free_port()
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--database-url", database_url, "--port", str(port)],
        env=env,
    )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            try:
                if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not become healthy in time")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def login(base_url: str) -> str:
    response = httpx.post(f"{base_url}/auth/login",
                          json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    response.raise_for_status()
    return response.json()["token"]


def create_outdial(base_url: str, token: str, name: str) -> str:
    response = httpx.post(f"{base_url}/v1.0/outdials", params={"token": token}, json={"name": name})
    response.raise_for_status()
    return response.json()["id"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def machine() -> str:
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
