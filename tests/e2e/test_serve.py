"""The real `outdial` command: serve as a subprocess, first-start admin, customer and agent commands."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

OUTDIAL = str(Path(sys.executable).parent / "outdial")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OUTDIAL, *args], env=env, capture_output=True, text=True, timeout=120)


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [OUTDIAL, "serve", "--port", str(self.port)], env=env,
                stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:  # bounded wait for the server to come up
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, a graceful shutdown, and exit status 0."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()
        assert "Application shutdown complete" in self.log.read_text()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {**os.environ, "OUTDIAL_DATABASE_URL": database_url}


def test_serve_prints_a_random_admin_password_once_and_it_works(env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in env.items() if not k.startswith("OUTDIAL_ADMIN_")}
    server = Server(env, tmp_path / "first.log")
    try:
        printed = re.search(r"username 'admin', password '([^']+)'", server.log.read_text())
        assert printed, server.log.read_text()
        login = httpx.post(f"{server.url}/auth/login", json={"username": "admin", "password": printed[1]})
        assert login.status_code == 200
        token = login.json()["token"]
        outdial = httpx.post(f"{server.url}/v1.0/outdials", params={"token": token}, json={"name": "x"})
        assert outdial.status_code == 200
    finally:
        server.stop()
    again = Server(env, tmp_path / "second.log")
    try:
        assert "password" not in again.log.read_text()
    finally:
        again.stop()


def test_customer_and_agent_commands_make_a_tenant_that_can_log_in(env: dict[str, str], tmp_path: Path) -> None:
    assert run("db", "upgrade", env=env).returncode == 0
    made = run("customer", "create", "--name", "acme", env=env)
    assert made.returncode == 0, made.stderr
    customer_id = made.stdout.strip()
    agent = run("agent", "create", "--customer", customer_id, "--username", "boss",
                "--password", "boss-password", "--permission", "manager", env=env)
    assert agent.returncode == 0, agent.stderr
    taken = run("agent", "create", "--customer", customer_id, "--username", "boss",
                "--password", "boss-password", "--permission", "manager", env=env)
    assert taken.returncode == 1 and "taken" in taken.stderr
    server = Server({**env, "OUTDIAL_ADMIN_PASSWORD": "first-admin-pw"}, tmp_path / "serve.log")
    try:
        token = httpx.post(f"{server.url}/auth/login",
                           json={"username": "boss", "password": "boss-password"}).json()["token"]
        created = httpx.post(f"{server.url}/v1.0/outdials", params={"token": token}, json={}).json()
        assert created["customer_id"] == customer_id
    finally:
        server.stop()


def test_agent_create_for_a_missing_customer_fails_clearly(env: dict[str, str]) -> None:
    result = run("agent", "create", "--customer", "3f2b8a62-7d7e-4a39-9d0e-3c1f0f0c1a11",
                 "--username", "x", "--password", "password-1", env=env)
    assert result.returncode == 1 and "does not exist" in result.stderr
