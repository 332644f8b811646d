"""The error envelope everywhere: bad JSON, wrong types, huge bodies, bad ids, bad paging."""

import uuid

import pytest

from tests.conftest import Api, assert_error, assert_refused


async def test_malformed_json_is_invalid_json_body(api: Api) -> None:
    response = await api.post("/v1.0/outdials", content=b'{"name": ', headers={"content-type": "application/json"})
    assert_error(response, 400, "INVALID_JSON_BODY")


async def test_non_json_content_type_is_named(api: Api) -> None:
    response = await api.post("/v1.0/outdials", content=b"name=x",
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert "Content-Type" in assert_error(response, 400, "INVALID_JSON_BODY")["message"]


@pytest.mark.parametrize("body, field", [
    ([1, 2], "body"),
    ("text", "body"),
    ({"name": 5}, "name"),
    ({"name": None}, "name"),
    ({"detail": ["x"]}, "detail"),
    ({"data": {"a": 1}}, "data"),
    ({"campaign_id": "not-a-uuid"}, "campaign_id"),
    ({"campaign_id": 7}, "campaign_id"),
    ({"name": "nul\u0000byte"}, "name"),
])
async def test_wrong_json_types_name_the_field(api: Api, body: object, field: str) -> None:
    assert_refused(await api.post("/v1.0/outdials", json=body), field)


async def test_body_over_one_mebibyte_is_413(api: Api) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    response = await api.post("/v1.0/outdials", content=big, headers={"content-type": "application/json"})
    assert_error(response, 413, "REQUEST_BODY_TOO_LARGE")
    assert (await api.get("/v1.0/outdials")).json()["result"] == []


async def test_streamed_body_over_one_mebibyte_is_413(api: Api) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    response = await api.post("/v1.0/outdials", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "REQUEST_BODY_TOO_LARGE")


async def test_body_just_under_the_limit_is_fine(api: Api) -> None:
    # The bulk sits in a key the body ignores: every field has a length limit of its own.
    body = b'{"name": "ok", "padding": "' + b"x" * (1024 * 1024 - 40) + b'"}'
    response = await api.post("/v1.0/outdials", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200


@pytest.mark.parametrize("bad_id", ["abc", "1234", "00000000-0000-0000-0000-000000000000"])
async def test_path_id_must_be_a_uuid(api: Api, bad_id: str) -> None:
    assert_error(await api.get(f"/v1.0/outdials/{bad_id}"), 400, "INVALID_ID")
    assert_error(await api.get(f"/v1.0/outdials/{uuid.uuid4()}/targets/{bad_id}"), 400, "INVALID_ID")


async def test_unknown_route_is_route_not_found(api: Api) -> None:
    assert_error(await api.get("/v1.0/nothing-here"), 404, "ROUTE_NOT_FOUND")
    assert_error(await api.http.get("/nothing"), 404, "ROUTE_NOT_FOUND")


async def test_wrong_method_is_405_in_the_envelope(api: Api) -> None:
    assert_error(await api.call("PATCH", "/v1.0/outdials"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("page_size, expected", [("1", 1), ("3", 3), ("100", 100), ("0", 100),
                                                 ("-4", 100), ("101", 100), ("5000", 100), ("", 100)])
async def test_page_size_is_clamped(api: Api, page_size: str, expected: int) -> None:
    for _ in range(101 if expected == 100 else expected + 1):
        await api.post("/v1.0/outdials", json={})
    page = (await api.get("/v1.0/outdials", params={"page_size": page_size})).json()
    assert len(page["result"]) == expected


@pytest.mark.parametrize("page_size", ["abc", "1.5", "ten"])
async def test_non_integer_page_size_is_400(api: Api, page_size: str) -> None:
    error = assert_error(await api.get("/v1.0/outdials", params={"page_size": page_size}),
                         400, "INVALID_REQUEST_PARAMETER")
    assert error["message"].startswith("page_size")


@pytest.mark.parametrize("token", ["yesterday", "2022-13-45 00:00:00.000000", "2022-04-28T01:41:40",
                                   "2022-04-28 01:41:40.503790|nope"])
async def test_bad_page_token_is_400(api: Api, token: str) -> None:
    error = assert_error(await api.get("/v1.0/outdials", params={"page_token": token}),
                         400, "INVALID_REQUEST_PARAMETER")
    assert error["message"].startswith("page_token")


async def test_empty_list_is_an_empty_page(api: Api) -> None:
    assert (await api.get("/v1.0/outdials")).json() == {"result": [], "next_page_token": ""}


async def test_every_response_has_a_request_id(api: Api) -> None:
    ok = await api.get("/v1.0/outdials")
    assert uuid.UUID(ok.headers["x-request-id"])


async def test_health_needs_no_credential(api: Api) -> None:
    response = await api.http.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_openapi_and_docs_are_served(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    assert "/v1.0/outdials/{outdial_id}/targets" in schema["paths"]
    assert all("422" not in op["responses"] for path in schema["paths"].values() for op in path.values())
    assert (await api.http.get("/docs")).status_code == 200
