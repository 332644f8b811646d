"""The seven outdial calls: create, list, get, update name/detail, campaign_id, data, soft delete."""

import uuid

from tests.conftest import Api, assert_error

NIL = "00000000-0000-0000-0000-000000000000"
NEVER = "9999-01-01 00:00:00.000000"


async def create(api: Api, **body: object) -> dict:
    response = await api.post("/v1.0/outdials", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_fills_omitted_strings_and_nil_campaign(api: Api) -> None:
    outdial = await create(api)
    assert (outdial["name"], outdial["detail"], outdial["data"]) == ("", "", "")
    assert outdial["campaign_id"] == NIL
    assert outdial["tm_update"] == NEVER and outdial["tm_delete"] == NEVER
    assert uuid.UUID(outdial["id"]).version == 4


async def test_get_returns_what_create_made(api: Api) -> None:
    outdial = await create(api, name="n", detail="d", data="x")
    assert (await api.get(f"/v1.0/outdials/{outdial['id']}")).json() == outdial


async def test_update_name_and_detail_sets_tm_update(api: Api) -> None:
    outdial = await create(api, name="n", detail="d", data="keep")
    updated = (await api.put(f"/v1.0/outdials/{outdial['id']}", json={"name": "n2", "detail": "d2"})).json()
    assert (updated["name"], updated["detail"], updated["data"]) == ("n2", "d2", "keep")
    assert updated["tm_update"] != NEVER


async def test_update_data(api: Api) -> None:
    outdial = await create(api, data="old")
    updated = (await api.put(f"/v1.0/outdials/{outdial['id']}/data", json={"data": "new"})).json()
    assert updated["data"] == "new"


async def test_campaign_id_must_name_a_campaign(api: Api) -> None:
    outdial = await create(api)
    response = await api.put(f"/v1.0/outdials/{outdial['id']}/campaign_id",
                             json={"campaign_id": str(uuid.uuid4())})
    assert "campaign_id" in assert_error(response, 400, "INVALID_ARGUMENT")["message"]
    response = await api.post("/v1.0/outdials", json={"campaign_id": str(uuid.uuid4())})
    assert_error(response, 400, "INVALID_ARGUMENT")
    cleared = await api.put(f"/v1.0/outdials/{outdial['id']}/campaign_id", json={"campaign_id": NIL})
    assert cleared.status_code == 200 and cleared.json()["campaign_id"] == NIL


async def test_delete_is_soft_and_hides_from_lists(api: Api) -> None:
    kept, gone = await create(api, name="kept"), await create(api, name="gone")
    deleted = (await api.delete(f"/v1.0/outdials/{gone['id']}")).json()
    assert deleted["tm_delete"] != NEVER
    listed = (await api.get("/v1.0/outdials")).json()["result"]
    assert [o["id"] for o in listed] == [kept["id"]]
    still = (await api.get(f"/v1.0/outdials/{gone['id']}")).json()
    assert still["tm_delete"] == deleted["tm_delete"]
    again = (await api.delete(f"/v1.0/outdials/{gone['id']}")).json()
    assert again["tm_delete"] == deleted["tm_delete"]


async def test_deleted_outdial_takes_no_targets_and_no_updates(api: Api) -> None:
    outdial = await create(api)
    await api.delete(f"/v1.0/outdials/{outdial['id']}")
    target = {"destination_0": {"type": "tel", "target": "+15559876543"}}
    assert_error(await api.post(f"/v1.0/outdials/{outdial['id']}/targets", json=target), 409, "OUTDIAL_DELETED")
    assert_error(await api.put(f"/v1.0/outdials/{outdial['id']}", json={"name": "x"}), 409, "OUTDIAL_DELETED")


async def test_list_is_newest_first(api: Api, clock) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for n in range(3):
        ids.append((await create(api, name=str(n)))["id"])
        clock.advance(1)
    listed = (await api.get("/v1.0/outdials")).json()
    assert [o["id"] for o in listed["result"]] == ids[::-1]
    assert listed["next_page_token"] == listed["result"][-1]["tm_create"]


async def test_missing_outdial_is_404(api: Api) -> None:
    assert_error(await api.get(f"/v1.0/outdials/{uuid.uuid4()}"), 404, "OUTDIAL_NOT_FOUND")
