"""End to end: `outdial serve` (API and engine in one process) driven over HTTP from an outplan
to a finished campaign."""

import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_serve import Server

MAX_TRIES = [2, 1]


def test_a_campaign_runs_to_the_end_over_http(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ, "OUTDIAL_DATABASE_URL": database_url, "OUTDIAL_ADMIN_PASSWORD": "admin-pw-123",
        "OUTDIAL_SIM_SEED": "11", "OUTDIAL_SIM_RING_MIN_MS": "0", "OUTDIAL_SIM_RING_MAX_MS": "30",
        "OUTDIAL_SIM_TALK_MIN_MS": "0", "OUTDIAL_SIM_TALK_MAX_MS": "30",
        "OUTDIAL_ENGINE_POLL_SECONDS": "0.05",
    }
    server = Server(env, tmp_path / "serve.log")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        try:
            drive_a_campaign(http)
        finally:
            server.stop()


def drive_a_campaign(http: httpx.Client) -> None:
    """Outplan, outdial, 30 targets, campaign, run; then every target done, exactly as planned."""
    token = http.post("/auth/login", json={"username": "admin", "password": "admin-pw-123"}).json()["token"]
    http.params = httpx.QueryParams({"token": token})

    def call(method: str, path: str, body: Any = None) -> Any:
        response = http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    outplan = call("POST", "/v1.0/outplans", {
        "name": "twice then the mobile", "dial_timeout": 2000, "try_interval": 100,
        "max_try_count_0": MAX_TRIES[0], "max_try_count_1": MAX_TRIES[1]})
    outdial = call("POST", "/v1.0/outdials", {"name": "customers"})
    for n in range(30):
        body = {"name": f"person {n}", "destination_0": {"type": "tel", "target": f"+1555987{n:04d}"}}
        if n % 2:
            body["destination_1"] = {"type": "email", "target": f"person{n}@example.com"}
        call("POST", f"/v1.0/outdials/{outdial['id']}/targets", body)
    campaign = call("POST", "/v1.0/campaigns", {
        "type": "call", "name": "spring", "end_handle": "stop", "outplan_id": outplan["id"],
        "outdial_id": outdial["id"], "concurrency": 5, "dial_rate": 100,
        "actions": [{"type": "talk", "option": {"text": "hello"}}]})
    assert campaign["status"] == "stop"
    assert call("PUT", f"/v1.0/campaigns/{campaign['id']}/status", {"status": "run"})["status"] == "run"

    deadline = time.monotonic() + 120
    while call("GET", f"/v1.0/campaigns/{campaign['id']}")["status"] != "stop":  # bounded poll
        assert time.monotonic() < deadline, "the campaign did not finish"
        time.sleep(0.2)

    targets = call("GET", f"/v1.0/outdials/{outdial['id']}/targets")["result"]
    calls = call("GET", f"/v1.0/campaigns/{campaign['id']}/campaigncalls")["result"]
    assert len(targets) == 30 and all(t["status"] == "done" for t in targets)
    assert all(c["status"] == "done" and c["result"] in ("success", "fail") for c in calls)
    assert len(calls) == sum(t["try_count_0"] + t["try_count_1"] for t in targets) <= 100
    for target in targets:
        mine = [c for c in calls if c["outdial_target_id"] == target["id"]]
        answered = [c for c in mine if c["result"] == "success"]
        assert len(answered) <= 1
        assert target["try_count_0"] <= MAX_TRIES[0] and target["try_count_1"] <= MAX_TRIES[1]
        if not answered:  # done without an answer means every slot it has was used up
            assert target["try_count_0"] == MAX_TRIES[0]
            assert target["try_count_1"] == (MAX_TRIES[1] if target["destination_1"] else 0)
        # Slot 1 is only ever tried after slot 0 is used up.
        if target["try_count_1"]:
            assert target["try_count_0"] == MAX_TRIES[0]
