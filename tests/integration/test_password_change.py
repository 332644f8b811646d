"""Changing an agent's password refuses every login token it was issued before, in every route
and every process (the tokens carry the agent's token generation), and nothing else."""

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from outdial.auth.service import AuthService
from outdial.clock import FakeClock
from outdial.errors import InvalidArgument, NotFound
from outdial.models import Agent
from tests.conftest import Api, add_agent, assert_error
from tests.integration.test_auth import _signed as signed_by_hand


async def change(app: Any, clock: FakeClock, username: str, password: str) -> None:
    async with app.state.database.transaction() as session:
        await AuthService(session, clock).change_password(username, password)


async def generation_of(app: Any, username: str) -> int:
    async with app.state.database.transaction() as session:
        return await session.scalar(select(Agent.token_generation).where(Agent.username == username))


async def new_agent(api: Api, app: Any, clock: FakeClock, username: str) -> str:
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    return await add_agent(app, clock, me, username, "manager")


async def test_a_password_change_refuses_the_tokens_issued_before_and_only_them(
    api: Api, app: Any, clock: FakeClock
) -> None:
    old_token = await new_agent(api, app, clock, "rotating")
    outdial = (await api.post("/v1.0/outdials", json={"name": "list"}, token=old_token)).json()["id"]
    key = (await api.post("/v1.0/accesskeys", token=old_token,
                          json={"name": "script", "expire": 3600})).json()["token"]
    # Known to this process already: the change must reach a remembered token too.
    assert (await api.get(f"/v1.0/outdials/{outdial}", token=old_token)).status_code == 200

    await change(app, clock, "rotating", "a-new-password-1")

    target = {"destination_0": {"type": "tel", "target": "+15551234567"}}
    for method, path, body in [("GET", "/v1.0/outdials", None),
                               ("GET", f"/v1.0/outdials/{outdial}", None),  # the hot routes
                               ("POST", f"/v1.0/outdials/{outdial}/targets", target)]:
        response = await api.http.request(method, path, json=body, params={"token": old_token})
        error = assert_error(response, 401, "INVALID_CREDENTIALS")
        assert "changed password" in error["message"]
    assert (await api.get("/v1.0/outdials", token=key)).status_code == 200  # keys stay
    assert_error(await api.http.post("/auth/login", json={
        "username": "rotating", "password": "password-123"}), 401, "INVALID_CREDENTIALS")
    new_token = await api.login("rotating", "a-new-password-1")
    assert (await api.get(f"/v1.0/outdials/{outdial}", token=new_token)).status_code == 200
    # The admin's own token was never touched.
    assert (await api.get("/v1.0/outdials")).status_code == 200


async def test_two_changes_at_once_both_count(api: Api, app: Any, clock: FakeClock) -> None:
    await new_agent(api, app, clock, "twice")
    await asyncio.gather(change(app, clock, "twice", "first-new-pw-1"),
                         change(app, clock, "twice", "second-new-pw-1"))
    assert await generation_of(app, "twice") == 2
    logins = [await api.http.post("/auth/login", json={"username": "twice", "password": p})
              for p in ("first-new-pw-1", "second-new-pw-1")]
    assert sorted(r.status_code for r in logins) == [200, 401]  # the later change won


def _signed(claims: dict[str, Any], secret: str) -> str:
    return signed_by_hand(json.dumps(claims), secret)


@pytest.mark.parametrize("generation", [-1, 1.0, "0", True, None, [0], 2**31, 2**63, 10**400])
async def test_a_token_whose_generation_is_not_a_count_is_refused(
    api: Api, app: Any, generation: object
) -> None:
    async with app.state.database.transaction() as session:
        agent = (await session.scalars(select(Agent).order_by(Agent.tm_create))).first()
    secret = app.state.signing_secret
    good = _signed({"sub": str(agent.id), "exp": 9999999999, "gen": 0}, secret)
    assert (await api.get("/v1.0/outdials", token=good)).status_code == 200
    forged = _signed({"sub": str(agent.id), "exp": 9999999999, "gen": generation}, secret)
    assert_error(await api.get("/v1.0/outdials", token=forged), 401, "INVALID_CREDENTIALS")


async def test_a_token_from_before_generations_works_until_the_first_change(
    api: Api, app: Any, clock: FakeClock
) -> None:
    await new_agent(api, app, clock, "veteran")
    async with app.state.database.transaction() as session:
        agent_id = await session.scalar(select(Agent.id).where(Agent.username == "veteran"))
    older = _signed({"sub": str(agent_id), "exp": 9999999999}, app.state.signing_secret)
    assert (await api.get("/v1.0/outdials", token=older)).status_code == 200
    await change(app, clock, "veteran", "veteran-new-pw")
    assert_error(await api.get("/v1.0/outdials", token=older), 401, "INVALID_CREDENTIALS")


async def test_a_bad_change_says_what_and_changes_nothing(api: Api, app: Any, clock: FakeClock) -> None:
    token = await new_agent(api, app, clock, "steady")
    with pytest.raises(InvalidArgument, match="at least 8 characters"):
        await change(app, clock, "steady", "short")
    with pytest.raises(NotFound, match="no agent is named 'nobody'"):
        await change(app, clock, "nobody", "long-enough-1")
    assert await generation_of(app, "steady") == 0
    assert (await api.get("/v1.0/outdials", token=token)).status_code == 200
