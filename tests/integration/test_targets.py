"""Targets: destinations and their validation, paging, status filter, update and delete."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from outdial.db.engine import WriterQueue
from outdial.models import OutdialTarget
from tests.conftest import Api, assert_error

NEVER = "9999-01-01 00:00:00.000000"
TEL = {"type": "tel", "target": "+15559876543"}


async def new_outdial(api: Api) -> str:
    return (await api.post("/v1.0/outdials", json={"name": "list"})).json()["id"]


async def add_target(api: Api, outdial_id: str, **body: object) -> dict:
    response = await api.post(f"/v1.0/outdials/{outdial_id}/targets", json={"destination_0": TEL, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def test_new_target_is_idle_with_null_unset_destinations(api: Api) -> None:
    outdial_id = await new_outdial(api)
    target = await add_target(api, outdial_id, destination_2={"type": "email", "target": "a@example.com"})
    assert target["status"] == "idle"
    assert target["destination_1"] is None and target["destination_3"] is None
    assert target["destination_2"] == {"type": "email", "target": "a@example.com", "target_name": "",
                                       "name": "", "detail": ""}
    assert [target[f"try_count_{n}"] for n in range(5)] == [0] * 5
    assert target["tm_update"] == target["tm_create"] and target["tm_delete"] == NEVER


@pytest.mark.parametrize("destination", [
    {"type": "tel", "target": "+442071838750"},
    {"type": "tel", "target": "+15559876543"},
    {"type": "sip", "target": "sip:alice@example.com"},
    {"type": "sip", "target": "sips:bob@10.0.0.1:5061"},
    {"type": "sip", "target": "sip:carol@[2001:db8::1]:5060;transport=tcp"},
    {"type": "email", "target": "someone@example.org", "target_name": "Some One"},
])
async def test_good_destinations_are_accepted(api: Api, destination: dict) -> None:
    target = await add_target(api, await new_outdial(api), destination_0=destination)
    assert target["destination_0"]["target"] == destination["target"]


@pytest.mark.parametrize("slot, destination, fragment", [
    (0, {"type": "fax", "target": "+15559876543"}, "destination_0.type: 'fax' is not a destination type"),
    (1, {"type": "tel", "target": "+1555"}, "destination_1.target: '+1555' is not a valid E.164"),
    (2, {"type": "tel", "target": "5551234567"}, "destination_2.target: '5551234567' is not a valid E.164"),
    (3, {"type": "sip", "target": "sip:"}, "destination_3.target: 'sip:' is not a SIP URI"),
    (3, {"type": "sip", "target": "sip:bob@"}, "destination_3.target: 'sip:bob@' is not a SIP URI"),
    (4, {"type": "email", "target": "not-an-email@"}, "destination_4.target: 'not-an-email@' is not a valid email"),
    (4, {"type": "email", "target": "a@b@c.com"}, "destination_4.target: 'a@b@c.com' is not a valid email"),
    (0, {"type": "tel"}, "destination_0.target: is required"),
    (0, {"type": "tel", "target": 15559876543}, "destination_0.target: must be a string"),
    (0, "+15559876543", "destination_0: must be a JSON object"),
])
async def test_bad_destination_is_400_naming_slot_and_reason(
    api: Api, slot: int, destination: object, fragment: str
) -> None:
    outdial_id = await new_outdial(api)
    body = {f"destination_{slot}": destination}
    if slot:
        body["destination_0"] = TEL
    response = await api.post(f"/v1.0/outdials/{outdial_id}/targets", json=body)
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith(fragment), error["message"]
    assert (await api.get(f"/v1.0/outdials/{outdial_id}/targets")).json()["result"] == []


async def test_target_needs_a_destination(api: Api) -> None:
    response = await api.post(f"/v1.0/outdials/{await new_outdial(api)}/targets", json={"name": "x"})
    assert "at least one destination" in assert_error(response, 400, "INVALID_ARGUMENT")["message"]


async def test_status_and_try_counts_are_read_only(api: Api) -> None:
    target = await add_target(api, await new_outdial(api), status="done", try_count_0=5)
    assert target["status"] == "idle" and target["try_count_0"] == 0


async def test_thousand_targets_of_one_instant_page_exactly_once(api: Api) -> None:
    outdial_id = await new_outdial(api)
    made = {(await add_target(api, outdial_id, name=str(n)))["id"] for n in range(1000)}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await api.get(f"/v1.0/outdials/{outdial_id}/targets",
                                 params={"page_size": 7, "page_token": token})
        page = response.json()
        if not page["result"]:
            assert page["next_page_token"] == ""
            break
        assert len(page["result"]) <= 7
        seen += [t["id"] for t in page["result"]]
        token = page["next_page_token"]
        pages += 1
    assert len(seen) == 1000 and set(seen) == made
    assert pages == 143  # ceil(1000 / 7)


async def test_page_token_in_rfc3339_is_accepted(api: Api, clock) -> None:  # type: ignore[no-untyped-def]
    outdial_id = await new_outdial(api)
    older = await add_target(api, outdial_id)
    clock.advance(1)
    newer = await add_target(api, outdial_id)
    stamp = newer["tm_create"].replace(" ", "T") + "Z"
    page = (await api.get(f"/v1.0/outdials/{outdial_id}/targets", params={"page_token": stamp})).json()
    assert [t["id"] for t in page["result"]] == [older["id"]]


async def test_deleted_targets_are_never_listed(api: Api) -> None:
    outdial_id = await new_outdial(api)
    kept, gone = await add_target(api, outdial_id), await add_target(api, outdial_id)
    deleted = (await api.delete(f"/v1.0/outdials/{outdial_id}/targets/{gone['id']}")).json()
    assert deleted["tm_delete"] != NEVER
    listed = (await api.get(f"/v1.0/outdials/{outdial_id}/targets", params={"page_size": 1})).json()
    assert [t["id"] for t in listed["result"]] == [kept["id"]]
    rest = (await api.get(f"/v1.0/outdials/{outdial_id}/targets",
                          params={"page_token": listed["next_page_token"]})).json()
    assert rest["result"] == []
    assert (await api.get(f"/v1.0/outdials/{outdial_id}/targets/{gone['id']}")).json()["tm_delete"] != NEVER


async def test_status_filter(api: Api, app) -> None:  # type: ignore[no-untyped-def]
    outdial_id = await new_outdial(api)
    idle, done = await add_target(api, outdial_id), await add_target(api, outdial_id)
    async with app.state.database.transaction() as session:
        await session.execute(update(OutdialTarget).where(OutdialTarget.id == uuid.UUID(done["id"]))
                              .values(status="done"))
    for status, expected in (("idle", [idle["id"]]), ("done", [done["id"]]), ("progressing", [])):
        page = (await api.get(f"/v1.0/outdials/{outdial_id}/targets", params={"status": status})).json()
        assert [t["id"] for t in page["result"]] == expected
    bad = await api.get(f"/v1.0/outdials/{outdial_id}/targets", params={"status": "sleeping"})
    assert "status" in assert_error(bad, 400, "INVALID_ARGUMENT")["message"]


async def test_update_replaces_fields_and_destinations(api: Api) -> None:
    outdial_id = await new_outdial(api)
    target = await add_target(api, outdial_id, destination_1={"type": "sip", "target": "sip:a@b.c"})
    response = await api.put(f"/v1.0/outdials/{outdial_id}/targets/{target['id']}",
                             json={"name": "new", "destination_0": {"type": "email", "target": "x@y.org"}})
    updated = response.json()
    assert updated["name"] == "new" and updated["destination_0"]["target"] == "x@y.org"
    assert updated["destination_1"] is None
    assert updated["tm_update"] >= target["tm_update"]


async def test_update_refused_while_progressing(api: Api, app) -> None:  # type: ignore[no-untyped-def]
    outdial_id = await new_outdial(api)
    target = await add_target(api, outdial_id)
    async with app.state.database.transaction() as session:
        await session.execute(update(OutdialTarget).where(OutdialTarget.id == uuid.UUID(target["id"]))
                              .values(status="progressing"))
    response = await api.put(f"/v1.0/outdials/{outdial_id}/targets/{target['id']}", json={"destination_0": TEL})
    assert_error(response, 409, "OUTDIAL_TARGET_PROGRESSING")


async def test_update_validates_like_create(api: Api) -> None:
    outdial_id = await new_outdial(api)
    target = await add_target(api, outdial_id)
    response = await api.put(f"/v1.0/outdials/{outdial_id}/targets/{target['id']}",
                             json={"destination_0": {"type": "tel", "target": "+1555"}})
    assert_error(response, 400, "INVALID_ARGUMENT")
    assert (await api.get(f"/v1.0/outdials/{outdial_id}/targets/{target['id']}")).json() == target


async def test_target_under_another_outdial_is_404(api: Api) -> None:
    first, second = await new_outdial(api), await new_outdial(api)
    target = await add_target(api, first)
    for method in ("GET", "PUT", "DELETE"):
        response = await api.call(method, f"/v1.0/outdials/{second}/targets/{target['id']}",
                                  json={"destination_0": TEL} if method == "PUT" else None)
        assert_error(response, 404, "OUTDIAL_TARGET_NOT_FOUND")


async def test_a_new_target_takes_one_turn_among_sqlite_writers(
    api: Api, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's reads (the waiting reason) come after the commit, outside any transaction:
    on SQLite they do not queue for the writer a second time."""
    if not app.state.database.is_sqlite:
        pytest.skip("PostgreSQL has no writers' queue")
    outdial_id = await new_outdial(api)
    await add_target(api, outdial_id)  # the credential is known to the process from here on
    request_task = asyncio.current_task()  # the test client runs the app in this task
    turns: list[WriterQueue] = []
    take_turn = WriterQueue.acquire

    async def counted(queue: WriterQueue, timeout: float) -> None:
        if asyncio.current_task() is request_task:
            turns.append(queue)
        await take_turn(queue, timeout)

    monkeypatch.setattr(WriterQueue, "acquire", counted)
    target = await add_target(api, outdial_id)
    assert len(turns) == 1
    assert target["waiting_reason"] == "campaign_not_running"
