"""Property-based fuzzing of the API from its own /openapi.json: no 5xx, every error enveloped."""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from outdial.api import create_app
from outdial.settings import Settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The real server stack (uvicorn) in a thread, with an admin token and one outdial to aim at."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'outdial.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    app = create_app(Settings(database_url=url, admin_username=ADMIN_USERNAME, admin_password=ADMIN_PASSWORD,
                              secret_key="fuzz-signing-key-that-is-long-enough"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # bounded wait for start-up, not for time to pass
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}).json()["token"]
    outdial = httpx.post(f"{base}/v1.0/outdials", json={"name": "fuzz"}, params={"token": token}).json()
    yield {"base": base, "token": token, "app": app, "outdial_id": outdial["id"]}
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def api_schema(live_server: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(live_server["app"].openapi())


# The event stream is endless by design (heartbeats until the client leaves), so a fuzzed call
# that is valid would never end; its own tests (test_events_stream*) cover its bad input.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1.0/events/stream")
# The import call's CSV and NDJSON bodies are text: send the generated strings as they are.
schemathesis.serializer.alias(["text/csv", "application/x-ndjson"], "text/plain")


CALL_TIMEOUT_SECONDS = 60  # a call that hangs fails the test instead of stalling the suite


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_errors_and_every_error_in_the_envelope(case: Any, live_server: dict[str, Any]) -> None:
    # Credentials are not what is fuzzed here: authenticate every case, half of them aimed at a
    # real outdial so that deeper code runs too.
    if case.query:
        case.query.pop("token", None)
        case.query.pop("accesskey", None)
    if case.path_parameters and "outdial_id" in case.path_parameters and hash(repr(case.body)) % 2:
        case.path_parameters["outdial_id"] = live_server["outdial_id"]
    response = case.call(base_url=live_server["base"], timeout=CALL_TIMEOUT_SECONDS,
                         headers={"Authorization": f"Bearer {live_server['token']}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, response.text
        assert set(body["error"]) == {"status", "reason", "message", "request_id"}
        assert [body["error"]["request_id"]] == response.headers["x-request-id"]
