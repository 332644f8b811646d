"""Fixtures shared by every layer: databases (SQLite and PostgreSQL), a fake clock, the app."""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from argon2 import PasswordHasher

from outdial.api import create_app
from outdial.auth import credentials
from outdial.db import Database
from outdial.migrations import upgrade_database
from outdial.clock import FakeClock
from outdial.settings import Settings
from tests import databases

# Fixtures of the engine tests (a migrated `database`) and the SMTP relay (`relay`).
pytest_plugins = ["tests.engine_support", "tests.smtp_support"]

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One PostgreSQL database for the whole run, created here and dropped at the end."""
    try:
        url = databases.create_postgres_database()
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        message = f"PostgreSQL is not reachable at {databases.POSTGRES_ADMIN_URL}: {error}"
        if databases.in_ci():
            pytest.fail(message)
        pytest.skip(message + " (set OUTDIAL_TEST_POSTGRES_URL, or start PostgreSQL)")
    yield url
    databases.drop_postgres_database(url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file built by the migrations once; each test gets a copy of it."""
    path = tmp_path_factory.mktemp("template") / "outdial.db"

    async def build() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade_database(database)
        await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at production cost takes ~50 ms a hash; the suite logs in hundreds of times."""
    monkeypatch.setattr(credentials, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        shutil.copy(migrated_sqlite, tmp_path / "outdial.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'outdial.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    await databases.truncate_postgres(url)
    yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, admin_username=ADMIN_USERNAME, admin_password=ADMIN_PASSWORD,
        secret_key="test-signing-key-that-is-long-enough-for-hs256",
        engine_in_process=False,  # a test that wants the engine runs one itself
        # A loaded test machine has been seen to stall a local connect past the default 10 s;
        # a minute is what asyncpg itself waits. The bound is tested in test_bounded_waits.py.
        db_connect_timeout_seconds=60,
    )


@dataclass
class Api:
    """An HTTP client on the app, logged in as the first admin unless told otherwise."""

    http: httpx.AsyncClient
    token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    async def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        # httpx replaces a path's own query with `params`: keep both.
        url = httpx.URL(path)
        params = [*url.params.multi_items(), *httpx.QueryParams(kwargs.pop("params", None) or {}).multi_items()]
        credential = self.token if token is None else token
        if credential and not any(key == "token" for key, _ in params):
            params.append(("token", credential))
        return await self.http.request(method, url.copy_with(query=None), params=params, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("DELETE", path, **kwargs)

    async def login(self, username: str, password: str) -> str:
        response = await self.http.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["token"]


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: Any) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://outdial.test") as http:
        client = Api(http)
        client.token = await client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        yield client


def pytest_report_header() -> str:
    return f"PostgreSQL for tests: {databases.POSTGRES_ADMIN_URL} (CI={os.environ.get('CI', '')})"


async def make_tenant(app: Any, clock: FakeClock, username: str, permission: str = "admin") -> str:
    """A new customer with one agent of `permission`; returns that agent's login token."""
    from outdial.auth.service import AuthService, Permission

    async with app.state.database.transaction() as session:
        service = AuthService(session, clock)
        customer = await service.create_customer(f"customer of {username}")
        await service.create_agent(customer.id, username, "password-123", Permission(permission))
    return await Api(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")).login(
        username, "password-123"
    )


async def add_agent(app: Any, clock: FakeClock, customer_id: str, username: str, permission: str) -> str:
    """Another agent of an existing customer; returns its login token."""
    import uuid as _uuid

    from outdial.auth.service import AuthService, Permission

    async with app.state.database.transaction() as session:
        await AuthService(session, clock).create_agent(
            _uuid.UUID(customer_id), username, "password-123", Permission(permission)
        )
    return await Api(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")).login(
        username, "password-123"
    )


def assert_error(response: httpx.Response, http_status: int, reason: str) -> dict[str, Any]:
    """The answer is the API's envelope with this status and reason, and carries its request id."""
    assert response.status_code == http_status, response.text
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert list(error) == ["status", "reason", "message", "request_id"]
    assert error["reason"] == reason, error
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["message"]
    return error


def assert_refused(response: httpx.Response, field: str, reason: str = "INVALID_ARGUMENT") -> str:
    """A 400 that names the bad field first (`field: why`); its message."""
    error = assert_error(response, 400, reason)
    assert error["message"].startswith(f"{field}:"), error["message"]
    return error["message"]
