"""Import jobs: every format, inference and normalisation, row reports, dedupe, the mapping."""

import csv
import io
import json
import uuid
from typing import Any

import pytest

from outdial.imports import reading
from outdial.settings import Settings
from tests.conftest import Api, assert_error

CSV = "text/csv"
NDJSON = "application/x-ndjson"
JSON = "application/json"


async def new_outdial(api: Api) -> str:
    response = await api.post("/v1.0/outdials", json={"name": "list"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def upload(api: Api, outdial_id: str, body: str | bytes, content_type: str, **params: Any) -> Any:
    return await api.post(
        f"/v1.0/outdials/{outdial_id}/imports", content=body if isinstance(body, bytes) else body.encode(),
        headers={"Content-Type": content_type}, params=params,
    )


async def all_targets(api: Api, outdial_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1.0/outdials/{outdial_id}/targets/export", params={"format": "ndjson"})
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


async def mapping(api: Api, outdial_id: str, import_id: str) -> dict[int, str]:
    response = await api.get(f"/v1.0/outdials/{outdial_id}/imports/{import_id}/mapping")
    assert response.status_code == 200, response.text
    return {int(r["row"]): r["target_id"] for r in csv.DictReader(io.StringIO(response.text))}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Rows checked in the serving process unless a test asks for worker processes: starting
    them would slow every test."""
    return settings.model_copy(update={"import_workers": getattr(request, "param", 0)})


def tel(number: str, **extra: str) -> dict[str, str]:
    return {"type": "tel", "target": number, "target_name": "", "name": "", "detail": "", **extra}


async def test_csv_rows_become_targets_with_inferred_types(api: Api) -> None:
    outdial = await new_outdial(api)
    body = (
        "name,detail,data,destination_0,destination_1\n"
        "Alice,vip,\"{\"\"k\"\": 1}\",+15559876543,alice@example.com\n"
        "Bob,,,sip:bob@example.com,\n"
    )
    response = await upload(api, outdial, body, CSV)
    assert response.status_code == 200, response.text
    job = response.json()
    assert list(job) == ["id", "outdial_id", "dnclist_id", "status", "rows_total", "rows_imported",
                         "rows_rejected", "rows_duplicate", "errors", "tm_create", "tm_end"]
    assert (job["status"], job["rows_total"], job["rows_imported"], job["rows_rejected"]) == ("done", 2, 2, 0)
    targets = {t["name"]: t for t in await all_targets(api, outdial)}
    alice, bob = targets["Alice"], targets["Bob"]
    assert (alice["detail"], alice["data"], alice["status"]) == ("vip", '{"k": 1}', "idle")
    assert alice["destination_0"] == tel("+15559876543")
    assert alice["destination_1"]["type"] == "email"
    assert bob["destination_0"] == {"type": "sip", "target": "sip:bob@example.com", "target_name": "",
                                    "name": "", "detail": ""}
    assert bob["destination_1"] is None
    assert (await api.get(f"/v1.0/outdials/{outdial}/imports/{job['id']}")).json() == job


async def test_ndjson_rows_take_address_objects_and_bare_values(api: Api) -> None:
    outdial = await new_outdial(api)
    lines = [
        {"name": "a", "destination_0": {"type": "tel", "target": "+15559876543", "name": "home"}},
        {"name": "b", "destination_0": "+442079460018", "destination_2": "b@example.com"},
    ]
    response = await upload(api, outdial, "\n".join(json.dumps(x) for x in lines) + "\n\n", NDJSON)
    assert response.json()["rows_imported"] == 2, response.text
    targets = {t["name"]: t for t in await all_targets(api, outdial)}
    assert targets["a"]["destination_0"] == tel("+15559876543", name="home")
    assert targets["b"]["destination_2"]["target"] == "b@example.com"


async def test_json_array_upload(api: Api) -> None:
    outdial = await new_outdial(api)
    rows = [{"name": f"n{i}", "destination_0": f"+1555987{i:04d}"} for i in range(7)]
    response = await upload(api, outdial, json.dumps(rows, indent=2), JSON)
    job = response.json()
    assert (job["status"], job["rows_imported"]) == ("done", 7), response.text
    assert sorted(t["name"] for t in await all_targets(api, outdial)) == [f"n{i}" for i in range(7)]


async def test_national_numbers_are_normalised_with_the_default_region(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "destination_0\n020 7946 0018\n12\n"
    job = (await upload(api, outdial, body, CSV, default_region="GB")).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (1, 1), job
    assert job["errors"][0]["row"] == 2 and "too short" in job["errors"][0]["message"]
    body = "destination_0\n(212) 555-0123\n+1 (555) 987-6543\n"
    job = (await upload(api, outdial, body, CSV, default_region="us")).json()
    assert job["rows_imported"] == 2, job
    numbers = sorted(t["destination_0"]["target"] for t in await all_targets(api, outdial))
    assert numbers == ["+12125550123", "+15559876543", "+442079460018"]


async def test_bad_rows_are_reported_with_row_field_and_reason(api: Api) -> None:
    outdial = await new_outdial(api)
    body = (
        "name,destination_0,destination_1\n"
        "ok,+15559876543,\n"
        "short,+1555,\n"
        "national,0201234567,\n"
        "nothing,,\n"
        "junk,+15559876543,hello\n"
    )
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["rows_total"], job["rows_imported"], job["rows_rejected"]) == (5, 1, 4)
    errors = {(e["row"], e["field"]): e["message"] for e in job["errors"]}
    assert "too short" in errors[(2, "destination_0.target")]
    assert "default_region" in errors[(3, "destination_0.target")]
    assert "at least one destination" in errors[(4, "destination_0")]
    assert "hello" in errors[(5, "destination_1")]
    report = await api.get(f"/v1.0/outdials/{outdial}/imports/{job['id']}/errors")
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(int(r["row"]), r["field"]) for r in rows] == sorted(errors)
    assert len(await all_targets(api, outdial)) == 1


async def test_validation_valid_rejects_numbers_not_in_service(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "destination_0\n+15559876543\n+12125550123\n"
    job = (await upload(api, outdial, body, CSV, validation="valid")).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (1, 1)
    assert job["errors"][0]["row"] == 1 and "in service" in job["errors"][0]["message"]


async def test_dedupe_skips_rows_already_there_or_earlier_in_the_file(api: Api) -> None:
    outdial = await new_outdial(api)
    await upload(api, outdial, "destination_0\n+15559876543\n", CSV)
    body = "destination_0\n+1 555 987 6543\n+12125550123\n+12125550123\na@example.com\n"
    job = (await upload(api, outdial, body, CSV, dedupe="true")).json()
    assert (job["rows_total"], job["rows_imported"], job["rows_duplicate"]) == (4, 2, 2), job
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["rows_imported"], job["rows_duplicate"]) == (4, 0)


async def test_dedupe_reads_addresses_as_do_not_call_lists_do(api: Api) -> None:
    # Case-folded, `sips:` and a bare user@host read as `sip:`: one person, however written.
    outdial = await new_outdial(api)
    await upload(api, outdial, "destination_0\nJörg@Example.com\n", CSV)
    body = ("name,destination_0\n"
            "a,JÖRG@example.com\nb,Bob@Example.com\nc,bob@example.com\n"
            "d,sip:Bob@Example.com\ne,sips:bob@example.com\n"
            'f,"{""type"": ""sip"", ""target"": ""BOB@example.com""}"\n'
            "g,sip:alice@example.com\n")
    job = (await upload(api, outdial, body, CSV, dedupe="true")).json()
    assert (job["rows_total"], job["rows_imported"], job["rows_duplicate"]) == (7, 3, 4), job
    names = sorted(t["name"] for t in await all_targets(api, outdial) if t["name"])
    assert names == ["b", "d", "g"]


async def test_mapping_gives_the_target_of_each_imported_row(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "name,destination_0\nr1,+15559876543\nbad,+1\nr3,+12125550123\n"
    job = (await upload(api, outdial, body, CSV)).json()
    rows = await mapping(api, outdial, job["id"])
    assert sorted(rows) == [1, 3]
    for row, target_id in rows.items():
        target = (await api.get(f"/v1.0/outdials/{outdial}/targets/{target_id}")).json()
        assert target["name"] == f"r{row}"


async def test_unsupported_content_type_is_refused(api: Api) -> None:
    outdial = await new_outdial(api)
    assert_error(await upload(api, outdial, "x", "text/plain"), 400, "UNSUPPORTED_CONTENT_TYPE")


async def test_bad_options_are_refused(api: Api) -> None:
    outdial = await new_outdial(api)
    response = await upload(api, outdial, "destination_0\n", CSV, default_region="XX")
    assert "default_region" in assert_error(response, 400, "INVALID_REQUEST_PARAMETER")["message"]
    response = await upload(api, outdial, "destination_0\n", CSV, validation="strict")
    assert "validation" in assert_error(response, 400, "INVALID_REQUEST_PARAMETER")["message"]


async def test_malformed_upload_fails_the_job_and_imports_nothing(api: Api) -> None:
    outdial = await new_outdial(api)
    body = '[{"destination_0": "+15559876543"}, {"destination_0": '
    error = assert_error(await upload(api, outdial, body, JSON), 400, "INVALID_IMPORT_FILE")
    import_id = error["message"].split("import ")[1].split(" ")[0]
    job = (await api.get(f"/v1.0/outdials/{outdial}/imports/{import_id}")).json()
    assert (job["status"], job["rows_imported"]) == ("failed", 0)
    assert await all_targets(api, outdial) == []
    assert_error(await upload(api, outdial, "name\nx\n", CSV), 400, "INVALID_IMPORT_FILE")


async def test_row_that_is_not_an_object_is_rejected(api: Api) -> None:
    outdial = await new_outdial(api)
    job = (await upload(api, outdial, '{"destination_0": "+15559876543"}\n[1]\nnot json\n', NDJSON)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (1, 2)
    assert [e["row"] for e in job["errors"]] == [2, 3]


async def test_import_into_a_deleted_or_foreign_outdial_is_refused(api: Api) -> None:
    outdial = await new_outdial(api)
    await api.delete(f"/v1.0/outdials/{outdial}")
    assert_error(await upload(api, outdial, "destination_0\n+15559876543\n", CSV), 409, "OUTDIAL_DELETED")
    assert_error(await api.get(f"/v1.0/outdials/{outdial}/imports/6f1c1d3e-0000-4000-8000-000000000001"),
                 404, "IMPORT_NOT_FOUND")


@pytest.mark.parametrize("settings", [2], indirect=True)
async def test_rows_checked_by_worker_processes(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "destination_0\n" + "".join(f"+1555{i:07d}\n" for i in range(12_000)) + "+1\n"
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (12_000, 1), job
    assert job["errors"] == [{"row": 12_001, "field": "destination_0.target",
                              "message": job["errors"][0]["message"]}]


@pytest.mark.parametrize("settings", [2], indirect=True)
async def test_imported_targets_get_ids_in_file_order(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across chunks checked by different worker processes and landed in file order: the
    import's ids ascend with the rows (imports.ids), so a page of its targets, newest first,
    is the end of the file backwards."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 2048)
    outdial = await new_outdial(api)
    body = "name,destination_0\n" + "".join(f"r{i},+1555{i:07d}\n" for i in range(1, 3001))
    job = (await upload(api, outdial, body, CSV)).json()
    assert job["rows_imported"] == 3000, job
    rows = await mapping(api, outdial, job["id"])
    ids = [rows[row] for row in range(1, 3001)]
    assert ids == sorted(ids) and len(set(ids)) == 3000
    assert all(uuid.UUID(i).version == 4 for i in ids)
    page = (await api.get(f"/v1.0/outdials/{outdial}/targets", params={"page_size": 100})).json()
    assert [t["name"] for t in page["result"]] == [f"r{i}" for i in range(3000, 2900, -1)]


async def test_a_timezone_column_is_checked_by_the_api_s_rule_and_stored(api: Api) -> None:
    outdial = await new_outdial(api)
    body = (
        "name,destination_0,timezone\n"
        "ann,+12125550123,\n"
        "cid,+13105550100,America/Chicago\n"
        "bad,+13105550101,Mars/Olympus\n"
    )
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (2, 1)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [(3, "timezone")]
    refused = await api.post(f"/v1.0/outdials/{outdial}/targets", json={
        "destination_0": tel("+13105550101"), "timezone": "Mars/Olympus"})
    assert job["errors"][0]["message"] in assert_error(refused, 400, "INVALID_ARGUMENT")["message"]
    targets = {t["name"]: t for t in await all_targets(api, outdial)}
    assert (targets["ann"]["timezone"], targets["cid"]["timezone"]) == (None, "America/Chicago")
    ndjson = json.dumps({"destination_0": "+13105550102", "timezone": "Europe/London"}) + "\n"
    assert (await upload(api, outdial, ndjson, "application/x-ndjson")).json()["rows_imported"] == 1
    # Text the API refuses as text is refused in the same words by an import.
    for zone in ("America/New\u0000York", "\ud800", "x" * 2000):
        row = json.dumps({"destination_0": "+13105550103", "timezone": zone}) + "\n"
        job = (await upload(api, outdial, row, "application/x-ndjson")).json()
        refused = await api.post(f"/v1.0/outdials/{outdial}/targets", content=json.dumps({
            "destination_0": tel("+13105550103"), "timezone": zone}),
            headers={"content-type": "application/json"})
        said = assert_error(refused, 400, "INVALID_ARGUMENT")["message"]
        assert said == f"timezone: {job['errors'][0]['message']}", (zone, said, job["errors"])


@pytest.mark.parametrize("settings", [0], indirect=True)
async def test_imported_targets_get_the_zone_key_the_api_gives(api: Api, app: Any) -> None:
    from sqlalchemy import select

    from outdial.models import OutdialTarget
    from outdial.strategy.windows import zone_key

    outdial = await new_outdial(api)
    body = ("destination_0,destination_1,timezone\n+16055550100,,\n+442071234567,a@example.com,\n"
            "+12125550123,,Asia/Tokyo\n")
    assert (await upload(api, outdial, body, CSV)).json()["rows_imported"] == 3
    async with app.state.database.transaction() as session:
        rows = (await session.scalars(select(OutdialTarget))).all()
    keys = sorted(r.zone_key for r in rows)
    assert keys == sorted([
        zone_key(None, [tel("+16055550100")]),
        zone_key(None, [tel("+442071234567"), {"type": "email", "target": "a@example.com"}]),
        "Asia/Tokyo",
    ])
    assert "America/Denver America/North_Dakota/Center" in keys


async def test_a_quote_inside_an_unquoted_field_is_text_across_chunks(api: Api) -> None:
    # As the csv module reads it: a quote opens a quoted field only at the field's start. The
    # file is cut into chunks of whole records; a quote counted as an opening one would cut
    # them inside a record (or never), and a valid file would be refused.
    outdial = await new_outdial(api)
    rows = ['name,destination_0', 'Tom 6" tall,+15550000000']
    rows += [f'"q{i}\nwith ""quotes""",+1556{i:07d}' for i in range(16000)]
    rows += [f"r{i},+1555{i:07d}" for i in range(1, 4000)]
    body = "\n".join(rows) + "\n"
    assert len(body) > 2 * 256 * 1024  # several chunks
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["status"], job["rows_total"], job["rows_imported"]) == ("done", 20000, 20000), job
    names = {t["name"] for t in await all_targets(api, outdial)}
    assert {'Tom 6" tall', 'q0\nwith "quotes"', 'q15999\nwith "quotes"', "r3999"} <= names


@pytest.mark.parametrize("content_type, body", [
    (CSV, b"name,destination_0\rA,+15559876543\rB,+15559876544\r"),
    (NDJSON, b'{"destination_0":"+15559876543"}\r{"destination_0":"+15559876544"}\r'),
])
async def test_a_file_whose_lines_end_with_cr_alone_is_refused_saying_so(
    api: Api, content_type: str, body: bytes
) -> None:
    outdial = await new_outdial(api)
    error = assert_error(await upload(api, outdial, body, content_type), 400, "INVALID_IMPORT_FILE")
    assert "carriage return alone" in error["message"] and "LF or CRLF" in error["message"]
    assert await all_targets(api, outdial) == []


async def test_crlf_and_doubled_cr_line_ends_are_read(api: Api) -> None:
    outdial = await new_outdial(api)
    job = (await upload(api, outdial, b'{"destination_0":"+15559876543"}\r\r\n'
                                      b'{"destination_0":"+15559876544"}\r\n', NDJSON)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (2, 0), job
    job = (await upload(api, outdial, b"destination_0\r\n+15559876545\r\n", CSV)).json()
    assert job["rows_imported"] == 1, job


@pytest.mark.parametrize("content_type", [CSV, NDJSON])
async def test_a_record_over_4_mib_refuses_the_file_naming_where_it_starts(
    api: Api, content_type: str
) -> None:
    outdial = await new_outdial(api)
    huge = "x" * (5 * 1024 * 1024)
    body = (f"destination_0,data\n+15559876543,small\n+15559876544,{huge}\n" if content_type == CSV
            else '{"destination_0": "+15559876543"}\n'
                 f'{{"destination_0": "+15559876544", "data": "{huge}"}}\n')
    error = assert_error(await upload(api, outdial, body, content_type), 400, "INVALID_IMPORT_FILE")
    start = body.index("+15559876544") - (0 if content_type == CSV else len('{"destination_0": "'))
    assert f"at byte {start} is longer than 4194304 bytes (4 MiB)" in error["message"], error
    assert await all_targets(api, outdial) == []


async def test_a_csv_cell_over_the_api_limit_is_a_rejected_row_naming_its_field(api: Api) -> None:
    # Longer than the csv module's own default limit (131,072) too: read, then refused by ours.
    outdial = await new_outdial(api)
    body = f"destination_0,data\n+15559876543,small\n+15559876544,{'x' * 200_000}\n"
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["status"], job["rows_imported"], job["rows_rejected"]) == ("done", 1, 1), job
    assert job["errors"] == [{"row": 2, "field": "data",
                              "message": "is 200000 characters long; at most 65536 are accepted"}]
