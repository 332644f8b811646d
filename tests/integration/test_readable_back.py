"""What is accepted must be readable back: values no page could serve are refused at the door,
by the API (400 naming the field) and by imports (a rejected row), on both databases."""

import json
from typing import Any

import pytest

from outdial.settings import Settings
from tests.conftest import Api, assert_error
from tests.integration.campaign_setup import new_outdial, new_outplan
from tests.integration.test_imports import CSV, JSON, NDJSON, all_targets, upload

GOOD = "+15559876543"


def nested(levels: int) -> dict[str, Any]:
    """{"a": {"a": … {}}}, `levels` objects deep."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def raw_json(api: Api, method: str, path: str, body: bytes) -> Any:
    """A body sent as bytes, so that it may hold what json.dumps would never write."""
    return api.call(method, path, content=body, headers={"Content-Type": "application/json"})


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update={"import_workers": getattr(request, "param", 0)})


# -- the API ----------------------------------------------------------------------------------


async def test_deeply_nested_action_option_is_refused_and_nothing_is_stored(api: Api) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    body = {"outplan_id": outplan["id"], "outdial_id": outdial["id"],
            "actions": [{"type": "talk", "option": nested(300)}]}
    error = assert_error(await api.post("/v1.0/campaigns", json=body), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("actions.0.option: nests deeper than 32 levels")
    listed = await api.get("/v1.0/campaigns")
    assert listed.status_code == 200 and listed.json()["result"] == []
    outdial_now = (await api.get(f"/v1.0/outdials/{outdial['id']}")).json()
    assert outdial_now["campaign_id"] == "00000000-0000-0000-0000-000000000000"

    # At the limit it is accepted, and every read serves it (a talk needs its text; other keys
    # of an option are kept as given).
    body["actions"] = [{"type": "talk", "option": {"text": "hello", "a": nested(31)}}]
    created = await api.post("/v1.0/campaigns", json=body)
    assert created.status_code == 200, created.text
    assert created.json()["actions"][0]["option"] == body["actions"][0]["option"]
    assert (await api.get("/v1.0/campaigns")).json()["result"][0]["actions"] == body["actions"]

    deeper = {"actions": [{"type": "talk", "option": {"text": "hello", "steps": [nested(32)]}}]}
    response = await api.put(f"/v1.0/campaigns/{created.json()['id']}/actions", json=deeper)
    assert "actions.0.option: nests deeper" in assert_error(response, 400, "INVALID_ARGUMENT")["message"]


@pytest.mark.parametrize("option, field, problem", [
    pytest.param({"text": "a\x00b"}, "actions.0.option.text", "NUL", id="NUL"),
    pytest.param({"say": ["ok", 2**63]}, "actions.0.option.say.1", "64-bit range", id="2**63"),
    pytest.param({"rate": 1e400}, "actions.0.option.rate", "not a JSON number", id="1e400"),
    pytest.param({"blob": "x" * 70_000}, "actions.0.option", "at most 65536", id="70 kB"),
])
async def test_free_json_breaking_a_rule_names_where(
    api: Api, option: dict[str, Any], field: str, problem: str
) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    body = json.dumps({"outplan_id": outplan["id"], "outdial_id": outdial["id"],
                       "actions": [{"type": "talk", "option": option}]}).replace("Infinity", "1e400")
    error = assert_error(await raw_json(api, "POST", "/v1.0/campaigns", body.encode()), 400,
                         "INVALID_ARGUMENT")
    assert error["message"].startswith(f"{field}: ") and problem in error["message"], error
    assert (await api.get("/v1.0/campaigns")).json()["result"] == []


@pytest.mark.parametrize("body, field", [
    (b'{"name": "\\ud800"}', "name"),
    (b'{"name": "ok", "detail": "left \\udfff alone"}', "detail"),
])
async def test_lone_surrogate_in_a_body_is_400_naming_the_field(api: Api, body: bytes, field: str) -> None:
    error = assert_error(await raw_json(api, "POST", "/v1.0/outdials", body), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith(f"{field}: must not contain a lone surrogate"), error
    assert (await api.get("/v1.0/outdials")).json()["result"] == []


async def test_lone_surrogate_anywhere_a_body_stores_text_is_400(api: Api) -> None:
    outdial = await new_outdial(api)
    targets = f"/v1.0/outdials/{outdial['id']}/targets"
    body = b'{"destination_0": {"type": "tel", "target": "%s", "name": "\\ud83d"}}' % GOOD.encode()
    error = assert_error(await raw_json(api, "POST", targets, body), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("destination_0.name: must not contain a lone surrogate")
    outplan = await new_outplan(api)
    body = (b'{"outplan_id": "%s", "outdial_id": "%s", "actions": [{"type": "talk", '
            b'"option": {"\\udc00": 1}}]}' % (outplan["id"].encode(), outdial["id"].encode()))
    error = assert_error(await raw_json(api, "POST", "/v1.0/campaigns", body), 400, "INVALID_ARGUMENT")
    assert "actions.0.option: has a key containing a lone surrogate" in error["message"]
    # A surrogate pair is one character outside the BMP: fine, and served back as it came.
    body = b'{"name": "\\ud83d\\ude00"}'
    created = await raw_json(api, "POST", "/v1.0/outdials", body)
    assert created.status_code == 200 and created.json()["name"] == "\U0001F600"
    assert (await api.get("/v1.0/outdials")).status_code == 200


@pytest.mark.parametrize("body, problem", [
    pytest.param(b'{"name": ' + b"1" * 5000 + b"}", "a number written with 5000 characters",
                 id="5000 digits"),
    pytest.param(b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests deeper than",
                 id="5000 levels"),
    pytest.param(b'{"name": NaN}', "NaN, which is not JSON", id="NaN"),
])
async def test_bodies_json_cannot_read_safely_are_invalid_json_body(api: Api, body: bytes, problem: str) -> None:
    error = assert_error(await raw_json(api, "POST", "/v1.0/outdials", body), 400, "INVALID_JSON_BODY")
    assert error["message"].startswith("body: ") and problem in error["message"], error


@pytest.mark.parametrize("field, length, limit", [("name", 256, 255), ("detail", 4097, 4096),
                                                  ("data", 65_537, 65_536)])
async def test_texts_longer_than_their_field_takes_are_refused(
    api: Api, field: str, length: int, limit: int
) -> None:
    error = assert_error(await api.post("/v1.0/outdials", json={field: "x" * length}), 400,
                         "INVALID_ARGUMENT")
    assert error["message"] == f"{field}: is {length} characters long; at most {limit} are accepted"
    assert (await api.post("/v1.0/outdials", json={field: "x" * limit})).status_code == 200


async def test_page_token_outside_the_calendar_in_utc_is_400(api: Api) -> None:
    for token in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        response = await api.get("/v1.0/outdials", params={"page_token": token})
        assert "page_token" in assert_error(response, 400, "INVALID_REQUEST_PARAMETER")["message"]


async def test_an_event_id_past_64_bits_is_400(api: Api) -> None:
    """Event ids are 64-bit: a larger one is a mistake to name, not a failure of the server."""
    for name, value in (("after", str(2**63)), ("page_token", "1180591620717411303424"),
                        ("after", "+5"), ("after", "1_000"), ("after", "-1")):
        response = await api.get("/v1.0/events", params={name: value})
        assert name in assert_error(response, 400, "INVALID_REQUEST_PARAMETER")["message"]
    assert (await api.get("/v1.0/events", params={"after": str(2**63 - 1)})).status_code == 200


# -- destinations -----------------------------------------------------------------------------


@pytest.mark.parametrize("extra, field", [
    ({"destination_5": {"type": "tel", "target": GOOD}}, "destination_5"),
    ({"destination": {"type": "tel", "target": GOOD}}, "destination"),
    ({"Destination_1": {"type": "tel", "target": GOOD}}, "Destination_1"),
    ({" destination_1": {"type": "tel", "target": GOOD}}, '" destination_1"'),
    ({"destination_0": {"type": "tel", "target": GOOD, "colour": "red"}}, "destination_0.colour"),
])
async def test_unknown_destination_keys_are_refused_not_dropped(
    api: Api, extra: dict[str, Any], field: str
) -> None:
    outdial = await new_outdial(api)
    targets = f"/v1.0/outdials/{outdial['id']}/targets"
    body = {"destination_0": {"type": "tel", "target": GOOD}, **extra}
    error = assert_error(await api.post(targets, json=body), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith(f"{field}: "), error
    assert (await api.get(targets)).json()["result"] == []
    # Other unknown keys are still ignored, as VoIPbin clients send whole objects back.
    read_back = {"destination_0": {"type": "tel", "target": GOOD}, "status": "done", "try_count_0": 3}
    assert (await api.post(targets, json=read_back)).status_code == 200


async def test_local_only_number_is_not_e164(api: Api) -> None:
    outdial = await new_outdial(api)
    response = await api.post(f"/v1.0/outdials/{outdial['id']}/targets",
                              json={"destination_0": {"type": "tel", "target": "+12025550"}})
    message = assert_error(response, 400, "INVALID_ARGUMENT")["message"]
    assert message.startswith("destination_0.target: '+12025550'") and "local-only number" in message


async def test_sip_target_written_user_at_host_is_stored_as_given(api: Api) -> None:
    outdial = await new_outdial(api)
    targets = f"/v1.0/outdials/{outdial['id']}/targets"
    created = await api.post(targets, json={"destination_0": {"type": "sip", "target": "alice@example.com"}})
    assert created.status_code == 200, created.text
    assert created.json()["destination_0"]["target"] == "alice@example.com"
    response = await api.post(targets, json={"destination_0": {"type": "sip", "target": "example.com"}})
    assert "is not a SIP URI" in assert_error(response, 400, "INVALID_ARGUMENT")["message"]


# -- imports ----------------------------------------------------------------------------------


def rejected(job: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {error["row"]: (error["field"], error["message"]) for error in job["errors"]}


@pytest.mark.parametrize("settings", [0, 1], indirect=True)
async def test_ndjson_rows_the_api_would_refuse_are_rejected_rows(api: Api) -> None:
    outdial = (await new_outdial(api))["id"]
    lines = [
        b'{"name": "\\ud800", "destination_0": "+15559876501"}',
        b'{"name": "a\\u0000b", "destination_0": "+15559876502"}',
        b'{"name": "n", "data": ' + b"1" * 5000 + b', "destination_0": "+15559876503"}',
        b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b', "destination_0": "+15559876504"}',
        b'{"name": "six", "destination_5": "+15559876505"}',
        b'{"destination_0": "+15559876511", "Destination_1": "+15559876512"}',
        b'{"destination_0": {"type": "tel", "target": "+15559876506", "colour": "red"}}',
        b'{"destination_0": "+12025550"}',
        b'{"detail": "' + b"x" * 4097 + b'", "destination_0": "+15559876508"}',
        b'{"destination_0": {"type": "sip", "target": "bob@example.com", "name": "\\udc00"}}',
        b'{"name": "kept \\ud83d\\ude00", "destination_0": {"type": "sip", "target": "bob@example.com"}}',
    ]
    response = await upload(api, outdial, b"\n".join(lines) + b"\n", NDJSON)
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["rows_total"], job["rows_imported"], job["rows_rejected"]) == (11, 1, 10)
    errors = rejected(job)
    assert errors[1][0] == "name" and "lone surrogate" in errors[1][1]
    assert errors[2][0] == "name" and "NUL" in errors[2][1]
    assert "a number written with 5000 characters" in errors[3][1]
    assert "nests deeper than" in errors[4][1]
    assert errors[5][0] == "destination_5" and "is not a destination" in errors[5][1]
    assert errors[6][0] == "Destination_1" and "in lower case" in errors[6][1]
    assert errors[7][0] == "destination_0.colour"
    assert errors[8][0] == "destination_0.target" and "local-only" in errors[8][1]
    assert errors[9] == ("detail", "is 4097 characters long; at most 4096 are accepted")
    assert errors[10][0] == "destination_0.name" and "lone surrogate" in errors[10][1]
    # Every page with the imported rows still answers.
    page = await api.get(f"/v1.0/outdials/{outdial}/targets")
    assert page.status_code == 200 and [t["name"] for t in page.json()["result"]] == ["kept \U0001F600"]
    assert [t["name"] for t in await all_targets(api, outdial)] == ["kept \U0001F600"]


@pytest.mark.parametrize("settings", [0, 1], indirect=True)
async def test_json_array_elements_json_cannot_read_are_rejected_rows_and_the_file_goes_on(api: Api) -> None:
    outdial = (await new_outdial(api))["id"]
    body = (b'[{"name": ' + b"1" * 5000 + b', "destination_0": "+15559876501"},\n'
            + b'{"name": "deep", "data": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000
            + b', "destination_0": "+15559876502"},\n'
            + b'{"name": "\\ud800", "destination_0": "+15559876503"},\n'
            + b'{"name": "fine", "destination_0": "+15559876504"}]')
    response = await upload(api, outdial, body, JSON)
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["rows_total"], job["rows_imported"], job["rows_rejected"]) == (4, 1, 3)
    errors = rejected(job)
    assert "a number written with 5000 characters" in errors[1][1]
    assert "nests deeper than" in errors[2][1]
    assert errors[3][0] == "name" and "lone surrogate" in errors[3][1]
    assert [t["name"] for t in await all_targets(api, outdial)] == ["fine"]


async def test_csv_json_cells_json_cannot_read_are_rejected_rows(api: Api) -> None:
    outdial = (await new_outdial(api))["id"]
    deep = '{""a"": ' * 3000 + "1" + "}" * 3000
    body = ("name,destination_0\n"
            f'deep,"{deep}"\n'
            f'long,"{{""type"": ""tel"", ""target"": {"1" * 5000}}}"\n'
            "nul,\"{\"\"type\"\": \"\"tel\"\", \"\"target\"\": \"\"+15559876503\"\", \"\"name\"\": \"\"\\u0000\"\"}\"\n"
            "fine,+15559876504\n")
    response = await upload(api, outdial, body, CSV)
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["rows_total"], job["rows_imported"], job["rows_rejected"]) == (4, 1, 3)
    errors = rejected(job)
    assert errors[1] == ("destination_0", "nests deeper than 32 levels")
    assert errors[2][0] == "destination_0" and "5000 characters" in errors[2][1]
    assert errors[3][0] == "destination_0.name" and "NUL" in errors[3][1]
    assert [t["name"] for t in await all_targets(api, outdial)] == ["fine"]


async def test_a_display_name_with_a_line_break_is_refused_by_the_api_and_imports(
    api: Api,
) -> None:
    """target_name is an email's display name (To, From): a line break would end the header
    inside it. One rule for the API and imports; a target's own name and detail may hold
    several lines."""
    outdial = (await new_outdial(api))["id"]
    address = {"type": "email", "target": "ann@example.com", "target_name": "Ann\r\nBcc: x@y.z"}
    response = await api.post(f"/v1.0/outdials/{outdial}/targets",
                              json={"destination_0": address})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"] == ("destination_0.target_name: must be one line: no line break "
                                "or other control character (U+000D)")
    response = await api.post("/v1.0/outplans", json={"source": {**address,
                                                                 "target_name": "Sales\nTeam"}})
    assert "source.target_name: must be one line" in assert_error(
        response, 400, "INVALID_ARGUMENT")["message"]
    response = await api.post("/v1.0/channels", json={"type": "smtp", "name": "relay", "settings": {
        "host": "127.0.0.1", "from_address": "news@example.com", "from_name": "Ops\tTeam"}})
    assert "from_name" in response.text and "must be one line" in response.text
    assert response.status_code == 400

    lines = [json.dumps({"destination_0": address}).encode(),
             json.dumps({"name": "two\nlines", "destination_0": {
                 **address, "target_name": "Ann Smith"}}).encode()]
    job = (await upload(api, outdial, b"\n".join(lines) + b"\n", NDJSON)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (1, 1)
    assert rejected(job)[1] == ("destination_0.target_name", "must be one line: no line break "
                                "or other control character (U+000D)")
    [target] = await all_targets(api, outdial)
    assert target["name"] == "two\nlines" and target["destination_0"]["target_name"] == "Ann Smith"
