"""A trailing slash names the same resource: never a redirect with an empty body."""

from tests.conftest import Api, assert_error


async def test_a_list_with_a_trailing_slash_is_the_list(api: Api) -> None:
    created = await api.post("/v1.0/outdials/", json={"name": "slash"})
    assert created.status_code == 200, created.text
    plain = await api.get("/v1.0/outdials")
    slashed = await api.get("/v1.0/outdials/")
    assert slashed.status_code == 200
    assert slashed.json()["result"] == plain.json()["result"]
    assert [o["name"] for o in slashed.json()["result"]] == ["slash"]


async def test_an_item_with_trailing_slashes_is_the_item(api: Api) -> None:
    outdial = (await api.post("/v1.0/outdials", json={"name": "one"})).json()
    for path in (f"/v1.0/outdials/{outdial['id']}/", f"/v1.0/outdials/{outdial['id']}//"):
        response = await api.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["id"] == outdial["id"]


async def test_health_and_login_take_a_trailing_slash(api: Api) -> None:
    assert (await api.http.get("/health/")).status_code == 200
    login = await api.http.post("/auth/login/", json={"username": "admin", "password": "nope-nope"})
    assert_error(login, 401, "INVALID_CREDENTIALS")


async def test_an_unknown_route_with_a_slash_is_404_in_the_envelope(api: Api) -> None:
    response = await api.get("/v1.0/nothing-here/")
    assert_error(response, 404, "ROUTE_NOT_FOUND")
    assert response.content
