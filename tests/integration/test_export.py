"""Export of targets: streamed CSV and NDJSON with status and try counts, importing back unchanged."""

import csv
import io
import json

import pytest

from outdial.settings import Settings
from tests.conftest import Api, assert_error
from tests.integration.test_imports import CSV, NDJSON, all_targets, new_outdial, upload


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"import_workers": 0})


def content(target: dict) -> tuple:
    """What an import carries over: everything but ids, status, try counts and times."""
    return (target["name"], target["detail"], target["data"],
            *(json.dumps(target[f"destination_{n}"], sort_keys=True) for n in range(5)))


async def seed(api: Api) -> str:
    outdial = await new_outdial(api)
    targets = [
        {"name": "plain", "destination_0": {"type": "tel", "target": "+15559876543"}},
        {"name": "tab\there", "detail": "line\nbreak, \"quoted\"", "data": "back\\slash é",
         "destination_0": {"type": "email", "target": "+odd@example.com"},
         "destination_1": {"type": "sip", "target": "sip:a@example.com", "name": "desk"},
         "destination_4": {"type": "tel", "target": "+442079460018", "target_name": "Ann"}},
    ]
    for body in targets:
        assert (await api.post(f"/v1.0/outdials/{outdial}/targets", json=body)).status_code == 200
    return outdial


@pytest.mark.parametrize("format", ["csv", "ndjson"])
async def test_export_then_import_gives_identical_targets(api: Api, format: str) -> None:
    source = await seed(api)
    exported = await api.get(f"/v1.0/outdials/{source}/targets/export", params={"format": format})
    assert exported.status_code == 200, exported.text
    copy = await new_outdial(api)
    job = (await upload(api, copy, exported.content, CSV if format == "csv" else NDJSON)).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (2, 0), job
    assert sorted(map(content, await all_targets(api, copy))) == sorted(
        map(content, await all_targets(api, source)))


async def test_csv_export_carries_status_and_try_counts(api: Api) -> None:
    outdial = await seed(api)
    response = await api.get(f"/v1.0/outdials/{outdial}/targets/export")
    assert response.headers["content-type"].startswith("text/csv")
    rows = sorted(csv.DictReader(io.StringIO(response.text)), key=lambda r: r["name"])
    assert [r["name"] for r in rows] == ["plain", "tab\there"]
    assert rows[0]["status"] == "idle" and rows[0]["try_count_0"] == "0"
    assert rows[0]["destination_0"] == "+15559876543"  # bare: imports back as the same tel
    # An email starting with '+' would be read back as a phone number: written as an object.
    assert json.loads(rows[1]["destination_0"])["type"] == "email"


async def test_export_leaves_out_deleted_targets(api: Api) -> None:
    outdial = await seed(api)
    first = (await all_targets(api, outdial))[0]
    await api.delete(f"/v1.0/outdials/{outdial}/targets/{first['id']}")
    assert [t["id"] for t in await all_targets(api, outdial)] != [first["id"]]
    assert len(await all_targets(api, outdial)) == 1


async def test_export_pages_through_many_targets_sharing_one_instant(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "name,destination_0\n" + "".join(f"n{i},+1555{i:07d}\n" for i in range(12_345))
    assert (await upload(api, outdial, body, CSV)).json()["rows_imported"] == 12_345
    names = [t["name"] for t in await all_targets(api, outdial)]
    assert sorted(names) == sorted(f"n{i}" for i in range(12_345))


async def test_export_format_is_checked(api: Api) -> None:
    outdial = await new_outdial(api)
    response = await api.get(f"/v1.0/outdials/{outdial}/targets/export", params={"format": "xml"})
    assert_error(response, 400, "INVALID_REQUEST_PARAMETER")


async def test_export_writes_addresses_as_edited(api: Api) -> None:
    """An edit changes the stored addresses and their forms (destinations.address_forms) in
    one write: the export writes the new ones, whatever form they had before."""
    outdial = await new_outdial(api)
    created = await api.post(f"/v1.0/outdials/{outdial}/targets", json={
        "name": "edited", "destination_0": {"type": "tel", "target": "+15559876543"},
        "destination_1": {"type": "email", "target": "a@example.com"}})
    target = created.json()["id"]
    edited = await api.put(f"/v1.0/outdials/{outdial}/targets/{target}", json={
        "name": "edited", "destination_0": {"type": "tel", "target": "+15550001111"},
        "destination_1": {"type": "email", "target": "a@example.com", "name": "Ann"}})
    assert edited.status_code == 200, edited.text
    row = next(csv.DictReader(io.StringIO(
        (await api.get(f"/v1.0/outdials/{outdial}/targets/export")).text)))
    assert row["destination_0"] == "+15550001111"
    assert row["destination_1"] == ('{"type":"email","target":"a@example.com","target_name":"",'
                                    '"name":"Ann","detail":""}')
    line = json.loads((await api.get(f"/v1.0/outdials/{outdial}/targets/export",
                                     params={"format": "ndjson"})).text)
    assert line["destination_0"]["target"] == "+15550001111"
    assert line["destination_1"]["name"] == "Ann"
