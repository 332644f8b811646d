"""`outdial worker --metrics-port`: a worker serves its own /metrics (one scrape per process),
and what it says equals what it dialed."""

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from outdial.clock import SystemClock
from outdial.db import Database
from outdial.models import Campaigncall
from tests.conftest import assert_error
from tests.e2e.test_serve import OUTDIAL, free_port
from tests.engine_support import make_campaign, tel
from tests.integration.test_metrics import Scrape

pytestmark = pytest.mark.slow
TOKEN = "worker-metrics-token"


def start_worker(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "OUTDIAL_DATABASE_URL": database_url, "OUTDIAL_LOG_LEVEL": "warning",
        "OUTDIAL_ENGINE_POLL_SECONDS": "0.05", "OUTDIAL_SIM_SEED": "3",
        "OUTDIAL_SIM_RING_MIN_MS": "0", "OUTDIAL_SIM_RING_MAX_MS": "30",
        "OUTDIAL_SIM_TALK_MIN_MS": "0", "OUTDIAL_SIM_TALK_MAX_MS": "30",
        "OUTDIAL_METRICS_TOKEN": TOKEN,
    }
    with log.open("wb") as output:
        return subprocess.Popen([OUTDIAL, "worker", "--metrics-port", str(port)], env=env,
                                stdout=output, stderr=subprocess.STDOUT)


async def test_a_worker_serves_its_own_metrics_on_its_port(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    # Real time: the worker is another process. Short simulated calls.
    scenario = await make_campaign(
        database, SystemClock(), targets=[[tel(f"+155500001{n:02d}")] for n in range(12)],
        max_try_counts=(2, 0, 0, 0, 0), try_interval=0, dial_timeout=1000, concurrency=4,
        dial_rate=100,
    )
    port = free_port()
    log = tmp_path / "worker.log"
    worker = start_worker(database_url, port, log)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while (await scenario.campaign()).status != "stop":  # bounded poll of the other process
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the campaign did not finish"
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=10) as http:
            assert_error(await http.get(url), 401, "METRICS_TOKEN_REQUIRED")
            assert_error(await http.get(url.replace("/metrics", "/health")), 404,
                         "ROUTE_NOT_FOUND")  # the worker serves /metrics only
            response = await http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200, response.text
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log.read_text()

    # A fresh process: its counters are exactly what it did.
    scraped = Scrape(response.text)
    async with database.sessions() as session:
        rows = (await session.execute(
            select(Campaigncall.outcome, func.count()).group_by(Campaigncall.outcome))).all()
    outcomes = Counter({outcome: n for outcome, n in rows})
    assert sum(outcomes.values()) >= 12
    assert scraped.by("outdial_attempts_started_total", "channel_type") == {
        ("simulated",): float(sum(outcomes.values())), ("sip",): 0.0, ("smtp",): 0.0,
        ("none",): 0.0}
    ended = {k: v for k, v in scraped.by("outdial_attempts_ended_total", "outcome",
                                         "channel_type").items() if v}
    assert ended == {(outcome, "simulated"): float(n) for outcome, n in outcomes.items()}
    assert scraped.value("outdial_attempts_in_flight") == 0
    assert scraped.value("outdial_claim_duration_seconds_count") > 0
    # Its own requests only: the refused scrape and the unknown path.
    assert scraped.by("outdial_http_requests_total", "method", "route", "status") == {
        ("GET", "/metrics", "401"): 1.0, ("GET", "unmatched", "404"): 1.0}
    assert "process_cpu_seconds_total" in response.text  # the standard process metrics too


def test_a_busy_metrics_port_is_named_before_the_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [OUTDIAL, "worker", "--metrics-port", str(port)], capture_output=True, text=True,
            timeout=60, env={**os.environ,
                             "OUTDIAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"})
    assert result.returncode != 0
    assert f"port {port}" in result.stderr and "--metrics-port" in result.stderr
    assert not (tmp_path / "x.db").exists()  # said before the database was touched
