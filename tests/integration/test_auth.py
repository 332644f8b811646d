"""Login, the three credential paths, expiry, access keys and permissions (api.md §2)."""

import uuid

import pytest

from outdial.clock import FakeClock
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Api, add_agent, assert_error


async def test_login_returns_username_and_token(api: Api) -> None:
    response = await api.http.post("/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["username", "token"]
    assert body["username"] == ADMIN_USERNAME
    assert body["token"].count(".") == 2


@pytest.mark.parametrize("username, password", [(ADMIN_USERNAME, "wrong-password"), ("nobody", ADMIN_PASSWORD)])
async def test_wrong_login_is_401_in_the_envelope(api: Api, username: str, password: str) -> None:
    response = await api.http.post("/auth/login", json={"username": username, "password": password})
    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_login_body_must_have_strings(api: Api) -> None:
    response = await api.http.post("/auth/login", json={"username": ADMIN_USERNAME})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("password")


async def test_no_credential_is_authentication_required(api: Api) -> None:
    response = await api.get("/v1.0/outdials", token="")
    assert_error(response, 401, "AUTHENTICATION_REQUIRED")


@pytest.mark.parametrize("credential", ["garbage", "a.b.c", "odk_not-a-key"])
async def test_bad_credential_is_invalid_credentials(api: Api, credential: str) -> None:
    assert_error(await api.get("/v1.0/outdials", token=credential), 401, "INVALID_CREDENTIALS")
    response = await api.http.get("/v1.0/outdials", headers={"Authorization": f"Bearer {credential}"})
    assert_error(response, 401, "INVALID_CREDENTIALS")


async def _access_key(api: Api, expire: int = 3600) -> dict:
    response = await api.post("/v1.0/accesskeys", json={"name": "ci", "detail": "for scripts", "expire": expire})
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_credential_path_is_accepted(api: Api) -> None:
    key = (await _access_key(api))["token"]
    jwt = api.token
    requests = [
        {"params": {"token": jwt}},
        {"params": {"token": key}},
        {"headers": {"Authorization": f"Bearer {jwt}"}},
        {"headers": {"Authorization": f"Bearer {key}"}},
        {"params": {"accesskey": key}},
    ]
    for request in requests:
        response = await api.http.get("/v1.0/outdials", **request)
        assert response.status_code == 200, (request, response.text)


async def test_token_query_parameter_wins_over_the_header(api: Api) -> None:
    response = await api.http.get(
        "/v1.0/outdials", params={"token": "garbage"}, headers={"Authorization": f"Bearer {api.token}"}
    )
    assert_error(response, 401, "INVALID_CREDENTIALS")


async def test_login_token_expires(api: Api, clock: FakeClock) -> None:
    assert (await api.get("/v1.0/outdials")).status_code == 200
    clock.advance(7 * 24 * 3600 - 1)
    assert (await api.get("/v1.0/outdials")).status_code == 200
    clock.advance(1)
    assert_error(await api.get("/v1.0/outdials"), 401, "INVALID_CREDENTIALS")


async def test_access_key_expires(api: Api, clock: FakeClock) -> None:
    key = (await _access_key(api, expire=60))["token"]
    assert (await api.get("/v1.0/outdials", token=key)).status_code == 200
    clock.advance(60)
    assert_error(await api.get("/v1.0/outdials", token=key), 401, "INVALID_CREDENTIALS")


async def test_deleted_access_key_is_refused_at_once(api: Api) -> None:
    created = await _access_key(api)
    assert (await api.get("/v1.0/outdials", token=created["token"])).status_code == 200
    deleted = await api.delete(f"/v1.0/accesskeys/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["tm_delete"] != "9999-01-01 00:00:00.000000"
    assert_error(await api.get("/v1.0/outdials", token=created["token"]), 401, "INVALID_CREDENTIALS")
    assert_error(await api.get("/v1.0/outdials", params={"accesskey": created["token"]}, token=""),
                 401, "INVALID_CREDENTIALS")


async def test_access_key_secret_is_shown_once_and_stored_hashed(api: Api, app: object) -> None:
    created = await _access_key(api)
    assert list(created) == ["id", "customer_id", "name", "detail", "token", "tm_expire",
                             "tm_create", "tm_update", "tm_delete"]
    fetched = (await api.get(f"/v1.0/accesskeys/{created['id']}")).json()
    listed = (await api.get("/v1.0/accesskeys")).json()["result"]
    assert "token" not in fetched and all("token" not in k for k in listed)
    assert [k["id"] for k in listed] == [created["id"]]
    from sqlalchemy import select

    from outdial.models import AccessKey

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        stored = (await session.scalars(select(AccessKey))).one()
    assert created["token"] not in stored.token_hash and len(stored.token_hash) == 64


async def test_access_key_can_be_renamed(api: Api) -> None:
    created = await _access_key(api)
    response = await api.put(f"/v1.0/accesskeys/{created['id']}", json={"name": "renamed", "detail": "d"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["detail"]) == ("renamed", "d")


@pytest.mark.parametrize("expire", [0, -5, "3600", 1.5])
async def test_access_key_expire_must_be_a_positive_integer(api: Api, expire: object) -> None:
    response = await api.post("/v1.0/accesskeys", json={"name": "x", "expire": expire})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("expire")


async def test_a_deleted_agent_token_stops_working(api: Api, app: object, clock: FakeClock) -> None:
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    token = await add_agent(app, clock, me, "manager1", "manager")
    assert (await api.get("/v1.0/outdials", token=token)).status_code == 200
    from sqlalchemy import update

    from outdial.models import Agent

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(Agent).where(Agent.username == "manager1").values(tm_delete=clock.now()))
    assert_error(await api.get("/v1.0/outdials", token=token), 401, "INVALID_CREDENTIALS")


async def test_manager_may_use_the_api_and_plain_agent_may_not(api: Api, app: object, clock: FakeClock) -> None:
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    manager = await add_agent(app, clock, me, "manager2", "manager")
    agent = await add_agent(app, clock, me, "agent2", "agent")
    assert (await api.get("/v1.0/outdials", token=manager)).status_code == 200
    assert_error(await api.get("/v1.0/outdials", token=agent), 403, "PERMISSION_DENIED")


# -- access keys die with their agent ------------------------------------------------------------

async def _key_of(api: Api, token: str) -> dict:
    response = await api.post("/v1.0/accesskeys", token=token, json={"name": "script", "expire": 3600})
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_access_key_is_refused_once_its_agent_is_deleted(
    api: Api, app: object, clock: FakeClock
) -> None:
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    manager = await add_agent(app, clock, me, "key-maker", "manager")
    key = (await _key_of(api, manager))["token"]
    # A key made with that key belongs to the same agent.
    second = (await _key_of(api, key))["token"]
    for credential in (key, second):
        assert (await api.get("/v1.0/outdials", token=credential)).status_code == 200
    from outdial.auth.service import AuthService

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        await AuthService(session, clock).delete_agent("key-maker")
    for credential in (key, second):
        assert_error(await api.get("/v1.0/outdials", token=credential), 401, "INVALID_CREDENTIALS")
        assert_error(await api.get("/v1.0/outdials", params={"accesskey": credential}, token=""),
                     401, "INVALID_CREDENTIALS")
    # The admin's own credentials are untouched, and the key list no longer shows the dead keys.
    assert (await api.get("/v1.0/outdials")).status_code == 200
    assert (await api.get("/v1.0/accesskeys")).json()["result"] == []
    # Its name stays with it, and saying so beats "taken" by nobody to be seen.
    from outdial.auth.service import Permission
    from outdial.errors import AlreadyExists

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        with pytest.raises(AlreadyExists, match="belonged to an agent that was deleted"):
            await AuthService(session, clock).create_agent(
                uuid.UUID(me), "key-maker", "a-new-password", Permission.MANAGER)


async def test_an_access_key_acts_with_its_agents_permission_of_the_moment(
    api: Api, app: object, clock: FakeClock
) -> None:
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    manager = await add_agent(app, clock, me, "demoted", "manager")
    key = (await _key_of(api, manager))["token"]
    assert (await api.get("/v1.0/outdials", token=key)).status_code == 200
    from sqlalchemy import update

    from outdial.models import Agent

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(Agent).where(Agent.username == "demoted").values(permission="agent"))
    assert_error(await api.get("/v1.0/outdials", token=key), 403, "PERMISSION_DENIED")


async def test_a_key_made_before_keys_had_an_owner_still_works(api: Api, app: object) -> None:
    """The migration leaves older keys without an agent: they act as their customer's admin."""
    created = await _access_key(api)
    from sqlalchemy import update

    from outdial.models import AccessKey

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(AccessKey).values(agent_id=None))
    assert (await api.get("/v1.0/outdials", token=created["token"])).status_code == 200


# -- a login token's expiry must be a finite number ---------------------------------------------

def _signed(claims_json: str, secret: str) -> str:
    """A token signed with the server's key whose claims are written by hand (PyJWT's encoder
    would refuse NaN)."""
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(claims_json.encode())
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + b64(signature)).decode()


@pytest.mark.parametrize("exp", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 400, '"9999999999"', "true",
                                 "null", "[9999999999]"])
async def test_a_token_whose_exp_is_not_a_finite_number_is_refused(
    api: Api, app: object, exp: str
) -> None:
    me = (await api.get("/v1.0/accesskeys")).status_code
    assert me == 200
    from sqlalchemy import select

    from outdial.models import Agent

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        admin = (await session.scalars(select(Agent).where(Agent.username == ADMIN_USERNAME))).one()
    secret = app.state.signing_secret  # type: ignore[attr-defined]
    good = _signed(f'{{"sub":"{admin.id}","exp":9999999999}}', secret)
    assert (await api.get("/v1.0/outdials", token=good)).status_code == 200
    forged = _signed(f'{{"sub":"{admin.id}","exp":{exp}}}', secret)
    assert_error(await api.get("/v1.0/outdials", token=forged), 401, "INVALID_CREDENTIALS")


async def test_an_agent_deleted_by_other_means_takes_its_keys_too(
    api: Api, app: object, clock: FakeClock
) -> None:
    """Authentication looks at the agent itself, not only at the keys deleted with it."""
    me = (await api.post("/v1.0/outdials", json={})).json()["customer_id"]
    key = (await _key_of(api, await add_agent(app, clock, me, "gone", "manager")))["token"]
    from sqlalchemy import update

    from outdial.models import Agent

    async with app.state.database.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(Agent).where(Agent.username == "gone").values(tm_delete=clock.now()))
    assert_error(await api.get("/v1.0/outdials", token=key), 401, "INVALID_CREDENTIALS")


async def test_the_hot_routes_read_the_credential_as_every_other_route(api: Api) -> None:
    # GET an outdial and POST a target read the credential themselves (deps.credential_of):
    # the same three paths, the same order, the same refusals.
    outdial = (await api.post("/v1.0/outdials", json={"name": "list"})).json()["id"]
    key = (await _access_key(api))["token"]
    target = {"name": "t", "destination_0": {"type": "tel", "target": "+15551234567"}}
    calls = [("GET", f"/v1.0/outdials/{outdial}", None),
             ("POST", f"/v1.0/outdials/{outdial}/targets", target)]
    for method, path, body in calls:
        for request in [{"params": {"token": api.token}}, {"params": {"token": key}},
                        {"headers": {"Authorization": f"Bearer {api.token}"}},
                        {"headers": {"Authorization": f"Bearer {key}"}},
                        {"params": {"accesskey": key}}]:
            response = await api.http.request(method, path, json=body, **request)
            assert response.status_code == 200, (method, request, response.text)
        assert_error(await api.http.request(method, path, json=body), 401,
                     "AUTHENTICATION_REQUIRED")
        assert_error(await api.http.request(method, path, json=body,
                                            headers={"Authorization": "Basic abc"}),
                     401, "AUTHENTICATION_REQUIRED")
        response = await api.http.request(method, path, json=body, params={"token": "garbage"},
                                          headers={"Authorization": f"Bearer {api.token}"})
        assert_error(response, 401, "INVALID_CREDENTIALS")
