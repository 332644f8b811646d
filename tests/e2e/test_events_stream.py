"""The event stream of a real `outdial serve`: SSE fields, heartbeats, and a resume from
Last-Event-ID across a server restart that loses nothing — read raw, and by
`outdial events --follow`."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_serve import OUTDIAL, Server

TARGETS = 40


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ, "OUTDIAL_DATABASE_URL": database_url, "OUTDIAL_ADMIN_PASSWORD": "admin-pw-123",
        "OUTDIAL_SIM_SEED": "5", "OUTDIAL_SIM_RING_MIN_MS": "20", "OUTDIAL_SIM_RING_MAX_MS": "200",
        "OUTDIAL_SIM_TALK_MIN_MS": "20", "OUTDIAL_SIM_TALK_MAX_MS": "200",
        "OUTDIAL_ENGINE_POLL_SECONDS": "0.05", "OUTDIAL_ENGINE_SHUTDOWN_GRACE_SECONDS": "0",
        "OUTDIAL_EVENTS_POLL_SECONDS": "0.1", "OUTDIAL_EVENTS_HEARTBEAT_SECONDS": "0.3",
        "OUTDIAL_IMPORT_WORKERS": "0",
    }


class Reader(threading.Thread):
    """Reads the stream raw, reconnecting with Last-Event-ID whenever it ends or breaks."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: list[dict[str, Any]] = []
        self.fields: list[tuple[str, str, dict[str, Any]]] = []  # (id, event, data) as sent
        self.heartbeats = 0
        self.connections = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.events:
                headers["Last-Event-ID"] = str(self.events[-1]["id"])
            try:
                with httpx.stream("GET", f"{self.url}/v1.0/events/stream", headers=headers,
                                  timeout=httpx.Timeout(5, read=10)) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    self.connections += 1
                    block: dict[str, str] = {}
                    for line in response.iter_lines():
                        if self.done.is_set():
                            return
                        if line.startswith(":"):
                            self.heartbeats += 1
                        elif line:
                            name, _, value = line.partition(": ")
                            block[name] = value
                        elif "data" in block:
                            data = json.loads(block["data"])
                            self.fields.append((block["id"], block["event"], data))
                            self.events.append(data)
                            block = {}
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # the server is restarting: try again shortly


def _login(url: str) -> str:
    response = httpx.post(f"{url}/auth/login", json={"username": "admin", "password": "admin-pw-123"})
    return response.json()["token"]


def _call(url: str, token: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
    response = httpx.request(method, f"{url}{path}", json=body, params=params, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def _all_events(url: str, token: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = _call(url, token, "GET", "/v1.0/events", after=after)["result"]
        if not page:
            return events
        events.extend(page)
        after = page[-1]["id"]


def _stop(follower: subprocess.Popen[str]) -> None:
    follower.terminate()
    follower.wait(timeout=10)
    assert follower.stdout is not None
    follower.stdout.close()


def _until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # bounded wait for another process's work
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_the_stream_resumes_across_a_restart_and_loses_nothing(database_url: str, tmp_path: Path) -> None:
    env = _env(database_url)
    server = Server(env, tmp_path / "first.log")
    token = _login(server.url)
    outplan = _call(server.url, token, "POST", "/v1.0/outplans", {
        "name": "twice", "dial_timeout": 2000, "try_interval": 100, "max_try_count_0": 2})
    outdial = _call(server.url, token, "POST", "/v1.0/outdials", {"name": "list"})
    for n in range(TARGETS):
        _call(server.url, token, "POST", f"/v1.0/outdials/{outdial['id']}/targets",
              {"destination_0": {"type": "tel", "target": f"+1555987{n:04d}"}})
    campaign = _call(server.url, token, "POST", "/v1.0/campaigns", {
        "name": "c", "outplan_id": outplan["id"], "outdial_id": outdial["id"],
        "concurrency": 4, "dial_rate": 20, "end_handle": "stop"})

    reader = Reader(server.url, token)
    reader.start()
    follower = subprocess.Popen(
        [OUTDIAL, "events", "--follow", "--json", "--url", server.url, "--token", token],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    followed: list[dict[str, Any]] = []
    threading.Thread(target=lambda: followed.extend(json.loads(line) for line in follower.stdout),
                     daemon=True).start()
    running: Server | None = server
    try:
        _until(lambda: reader.connections == 1, 30, "the reader never connected")
        _until(lambda: reader.heartbeats > 0, 30, "no heartbeat on a quiet stream")
        _call(server.url, token, "PUT", f"/v1.0/campaigns/{campaign['id']}/status",
              {"status": "run"})
        _until(lambda: len(reader.events) >= 30 and len(followed) >= 30, 60,
               "too few events before the restart")
        running = None
        server.stop()  # mid-campaign: the stream ends, the engine cancels its attempts
        before = len(reader.events)
        running = Server(env, tmp_path / "second.log")
        url = running.url

        def finished() -> bool:
            return any(e["type"] == "campaign_updated" and e["data"]["status"] == "stop"
                       for e in reader.events)

        # The readers still point at the old port: move them, as a proxy would.
        reader.url = url
        _stop(follower)
        last = followed[-1]["id"]
        follower = subprocess.Popen(
            [OUTDIAL, "events", "--follow", "--json", "--after", str(last), "--url", url,
             "--token", token], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=lambda: followed.extend(json.loads(line) for line in follower.stdout),
                         daemon=True).start()
        _until(finished, 120, "the campaign never finished")
        expected = _all_events(url, token)
        _until(lambda: len(reader.events) >= len(expected) and len(followed) >= len(expected), 30,
               "the readers fell behind")
        assert reader.connections >= 2 and len(reader.events) > before
    finally:
        reader.done.set()
        _stop(follower)
        if running is not None:
            running.stop()

    ids = [e["id"] for e in expected]
    assert ids == sorted(set(ids))
    assert [e["id"] for e in reader.events] == ids  # nothing lost, nothing twice
    assert [e["id"] for e in followed] == ids
    assert reader.events == expected
    # The wire: id = the event's id, event = its type, data = the event's JSON.
    for sent_id, sent_type, data in reader.fields:
        assert sent_id == str(data["id"]) and sent_type == data["type"]
        assert set(data) == {"id", "type", "customer_id", "tm_create", "data"}
    # Every attempt was seen start and end (or end canceled by the restart).
    created = {e["data"]["id"] for e in expected if e["type"] == "campaigncall_created"}
    ended = {e["data"]["id"] for e in expected
             if e["type"] == "campaigncall_updated" and e["data"]["status"] == "done"}
    assert created and created == ended
