"""kill -9 of `outdial serve` in the middle of an import leaves all or nothing, and says which."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import databases

pytestmark = pytest.mark.slow
ROWS = 60_000
LEASE_SECONDS = 3
ADMIN = {"username": "admin", "password": "admin-password-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'outdial.db'}"
        return
    try:
        url = databases.create_postgres_database()
    except (OSError, asyncpg.PostgresError) as error:
        pytest.skip(f"PostgreSQL is not reachable: {error}")
    yield url
    databases.drop_postgres_database(url)


class Server:
    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "OUTDIAL_DATABASE_URL": database_url,
                    "OUTDIAL_ADMIN_USERNAME": ADMIN["username"],
                    "OUTDIAL_ADMIN_PASSWORD": ADMIN["password"],
                    "OUTDIAL_SECRET_KEY": "e2e-signing-key-that-is-long-enough-for-hs256",
                    # Short, so that a killed server's job is failed within the test.
                    "OUTDIAL_IMPORT_LEASE_SECONDS": str(LEASE_SECONDS),
                    "OUTDIAL_MAX_CLOCK_OFFSET_SECONDS": str(LEASE_SECONDS / 4)}
        self.log = open(tmp_path / "server.log", "ab")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "outdial"), "serve", "--port", str(self.port)],
            env=self.env, stdout=self.log, stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, "the server exited at start-up"
            time.sleep(0.1)
        raise TimeoutError("the server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.log.close()


def job_rows(database_url: str) -> list[Any]:
    """The import jobs as the database has them."""
    sql = "SELECT status, rows_total FROM import_jobs"
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.split("///", 1)[1]) as connection:
            return connection.execute(sql).fetchall()

    async def fetch() -> list[Any]:
        connection = await asyncpg.connect(database_url)
        try:
            return [tuple(r) for r in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(fetch())


def upload_lines() -> Iterator[bytes]:
    yield b"name,destination_0,destination_1\n"
    for start in range(0, ROWS, 1000):
        yield "".join(f"r{i},+1555{i:07d},r{i}@example.com\n" for i in range(start, start + 1000)).encode()


def test_kill_mid_import_leaves_nothing_then_a_full_import_lands_everything(
    database_url: str, tmp_path: Path,
) -> None:
    server = Server(database_url, tmp_path)
    server.start()
    try:
        http = httpx.Client(base_url=server.url, timeout=120)
        token = http.post("/auth/login", json=ADMIN).json()["token"]
        params = {"token": token}
        outdial = http.post("/v1.0/outdials", json={"name": "crash"}, params=params).json()["id"]
        path = f"/v1.0/outdials/{outdial}/imports"
        stalled = threading.Event()
        resume = threading.Event()

        def stalling_upload() -> Iterator[bytes]:
            for n, piece in enumerate(upload_lines()):
                if n == ROWS * 3 // 4000:  # enough rows for a progress write
                    stalled.set()
                    resume.wait(60)  # the server dies while the upload is under way
                yield piece

        def send() -> None:
            try:
                http.post(path, content=stalling_upload(), params=params,
                          headers={"Content-Type": "text/csv"})
            except httpx.HTTPError:
                pass  # the server was killed under it

        sender = threading.Thread(target=send)
        sender.start()
        assert stalled.wait(60)
        deadline = time.monotonic() + 60
        while not any(status == "running" and total > 0 for status, total in job_rows(database_url)):
            assert time.monotonic() < deadline, job_rows(database_url)
            time.sleep(0.1)
        server.kill()
        resume.set()
        sender.join(60)
        http.close()

        server.start()
        http = httpx.Client(base_url=server.url, timeout=120)
        token = http.post("/auth/login", json=ADMIN).json()["token"]
        params = {"token": token}
        # The killed server's job fails once its lease has run out (the new server's reaper).
        deadline = time.monotonic() + LEASE_SECONDS * 5
        while [status for status, _ in job_rows(database_url)] != ["failed"]:
            assert time.monotonic() < deadline, job_rows(database_url)
            time.sleep(0.1)
        stats = http.get(f"/v1.0/outdials/{outdial}/stats", params=params).json()
        assert stats["targets"] == 0

        response = http.post(path, content=b"".join(upload_lines()), params=params,
                             headers={"Content-Type": "text/csv"})
        job = response.json()
        assert (job["status"], job["rows_imported"]) == ("done", ROWS), response.text
        assert http.get(f"/v1.0/outdials/{outdial}/stats", params=params).json()["targets"] == ROWS
        http.close()
    finally:
        server.stop()


def test_a_second_server_on_the_same_database_leaves_a_running_import_alone(
    database_url: str, tmp_path: Path,
) -> None:
    first, second = Server(database_url, tmp_path), Server(database_url, tmp_path)
    first.start()
    try:
        http = httpx.Client(base_url=first.url, timeout=120)
        params = {"token": http.post("/auth/login", json=ADMIN).json()["token"]}
        outdial = http.post("/v1.0/outdials", json={"name": "two servers"}, params=params).json()["id"]
        stalled, resume = threading.Event(), threading.Event()
        answer: list[httpx.Response] = []

        def stalling_upload() -> Iterator[bytes]:
            for n, piece in enumerate(upload_lines()):
                if n == 10:
                    stalled.set()
                    resume.wait(60)  # while the second server starts
                yield piece

        sender = threading.Thread(target=lambda: answer.append(http.post(
            f"/v1.0/outdials/{outdial}/imports", content=stalling_upload(), params=params,
            headers={"Content-Type": "text/csv"})))
        sender.start()
        assert stalled.wait(60)
        second.start()  # fails, at start-up, the jobs whose lease has expired: not this one
        assert [status for status, _ in job_rows(database_url)] == ["running"]
        resume.set()
        sender.join(120)
        job = answer[0].json()
        assert (job["status"], job["rows_imported"]) == ("done", ROWS), job
        http.close()
    finally:
        resume.set()
        first.stop()
        second.stop()
