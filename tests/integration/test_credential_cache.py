"""The credential cache keeps only what a credential proves by itself: a key deleted, an agent
deleted or demoted — through another app instance (another process's pool and cache), or by
hand in the database — is refused by the very next request, on the hot routes too."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from outdial.api import create_app
from outdial.clock import FakeClock
from outdial.models import Agent
from outdial.settings import Settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api, add_agent, assert_error

TEL = {"type": "tel", "target": "+15559876543"}


@pytest.fixture
async def other(settings: Settings, clock: FakeClock) -> AsyncIterator[Api]:
    """A second app instance on the same database: its own pools, its own credential cache."""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://second.test") as http:
            client = Api(http, extra={"app": app})
            client.token = await client.login(ADMIN_USERNAME, ADMIN_PASSWORD)
            yield client


async def _every_kind_of_call(api: Api, credential: str, outdial_id: str) -> list[httpx.Response]:
    """A checked-first route, and both hot routes (caller checked inside their own statement)."""
    return [
        await api.get("/v1.0/outdials", token=credential),
        await api.get(f"/v1.0/outdials/{outdial_id}", token=credential),
        await api.post(f"/v1.0/outdials/{outdial_id}/targets", token=credential,
                       json={"destination_0": TEL}),
    ]


async def _key(api: Api, token: str | None = None, expire: int = 3600) -> dict[str, Any]:
    response = await api.post("/v1.0/accesskeys", token=token, json={"name": "k", "expire": expire})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_key_deleted_through_one_instance_is_refused_at_once_by_the_other(
    api: Api, other: Api
) -> None:
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    key = await _key(api)
    # The other instance has proven and cached the key, on every kind of route.
    assert [r.status_code for r in await _every_kind_of_call(other, key["token"], outdial)] == [200] * 3
    assert len(other.extra["app"].state.credentials) >= 1

    deleted = await api.delete(f"/v1.0/accesskeys/{key['id']}")
    assert deleted.status_code == 200

    for response in await _every_kind_of_call(other, key["token"], outdial):
        assert_error(response, 401, "INVALID_CREDENTIALS")
    # Refused twice over: the cache forgot it, and proving it afresh fails too.
    assert_error(await other.get(f"/v1.0/outdials/{outdial}", token=key["token"]),
                 401, "INVALID_CREDENTIALS")


async def test_an_agent_changed_by_hand_is_seen_at_once_by_every_instance(
    api: Api, other: Api, clock: FakeClock
) -> None:
    me = (await api.post("/v1.0/outdials", json={})).json()
    outdial, customer = me["id"], me["customer_id"]
    token = await add_agent(other.extra["app"], clock, customer, "cached-manager", "manager")
    key = (await _key(other, token))["token"]
    for credential in (token, key):
        assert [r.status_code for r in await _every_kind_of_call(other, credential, outdial)] == [200] * 3

    app = other.extra["app"]
    async with app.state.database.transaction() as session:
        await session.execute(update(Agent).where(Agent.username == "cached-manager")
                              .values(permission="agent"))
    for credential in (token, key):
        for response in await _every_kind_of_call(other, credential, outdial):
            assert_error(response, 403, "PERMISSION_DENIED")

    async with app.state.database.transaction() as session:
        await session.execute(update(Agent).where(Agent.username == "cached-manager")
                              .values(permission="manager", tm_delete=clock.now()))
    for credential in (token, key):
        for response in await _every_kind_of_call(other, credential, outdial):
            assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_a_cached_key_expires_on_the_clock(api: Api, clock: FakeClock) -> None:
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    key = (await _key(api, expire=60))["token"]
    assert [r.status_code for r in await _every_kind_of_call(api, key, outdial)] == [200] * 3
    clock.advance(60)
    for response in await _every_kind_of_call(api, key, outdial):
        assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_a_deleted_key_is_401_on_a_hot_route_whatever_else_is_wrong(api: Api) -> None:
    """The hot routes check the caller late, in their own statement; an error they find first
    (a bad id, a bad destination, a missing outdial) still answers 401 to a dead key."""
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    key = await _key(api)
    assert (await api.get(f"/v1.0/outdials/{outdial}", token=key["token"])).status_code == 200
    assert (await api.delete(f"/v1.0/accesskeys/{key['id']}")).status_code == 200
    missing = "7d3c9a4e-4f1b-4c55-9f53-2d6f1f8d9a10"
    for response in [
        await api.get("/v1.0/outdials/not-an-id", token=key["token"]),
        await api.get(f"/v1.0/outdials/{missing}", token=key["token"]),
        await api.post(f"/v1.0/outdials/{missing}/targets", token=key["token"], json={"destination_0": TEL}),
        await api.post(f"/v1.0/outdials/{outdial}/targets", token=key["token"],
                       json={"destination_0": {"type": "tel", "target": "+1555"}}),
    ]:
        assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_hot_routes_still_tell_what_is_wrong_with_the_outdial(api: Api) -> None:
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    target = await api.post(f"/v1.0/outdials/{outdial}/targets", json={"destination_0": TEL})
    assert target.status_code == 200, target.text
    # What the one-statement insert answers is what was stored.
    stored = await api.get(f"/v1.0/outdials/{outdial}/targets/{target.json()['id']}")
    assert stored.json() == target.json()
    assert target.json()["destination_0"]["target"] == TEL["target"]
    assert target.json()["destination_1"] is None
    listed = (await api.get(f"/v1.0/outdials/{outdial}/targets")).json()["result"]
    assert [t["id"] for t in listed] == [target.json()["id"]]
    assert (await api.delete(f"/v1.0/outdials/{outdial}")).status_code == 200
    response = await api.post(f"/v1.0/outdials/{outdial}/targets", json={"destination_0": TEL})
    assert_error(response, 409, "OUTDIAL_DELETED")
    missing = "7d3c9a4e-4f1b-4c55-9f53-2d6f1f8d9a10"
    assert_error(await api.get(f"/v1.0/outdials/{missing}"), 404, "OUTDIAL_NOT_FOUND")
    assert_error(await api.post(f"/v1.0/outdials/{missing}/targets", json={"destination_0": TEL}),
                 404, "OUTDIAL_NOT_FOUND")
