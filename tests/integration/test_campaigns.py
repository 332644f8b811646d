"""Campaigns: their calls, validation, the outdial link, status changes and the delete rules."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text

from outdial.clock import FakeClock
from outdial.models import Campaign, Campaigncall
from tests.conftest import Api, add_agent, assert_error, assert_refused, make_tenant
from tests.integration.campaign_setup import (
    NIL,
    finish_campaigncall,
    insert_campaigncall,
    new_campaign,
    new_outdial,
    new_outplan,
    new_target,
)

CAMPAIGN_FIELDS = [
    "id", "customer_id", "type", "name", "detail", "status", "service_level", "end_handle",
    "actions", "outplan_id", "outdial_id", "queue_id", "next_campaign_id",
    "tm_create", "tm_update", "tm_delete", "concurrency", "dial_rate", "calling_window",
    "priority", "dnclist_ids",
]
NEVER = "9999-01-01 00:00:00.000000"


async def set_status(api: Api, campaign: dict[str, Any], status: str) -> Any:
    return await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": status})


async def outdial_link(api: Api, outdial: dict[str, Any]) -> str:
    return (await api.get(f"/v1.0/outdials/{outdial['id']}")).json()["campaign_id"]


# -- create, read, list -------------------------------------------------------------------------


async def test_create_campaign_with_defaults_links_its_outdial(api: Api) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    campaign = await new_campaign(api, outplan, outdial)
    assert list(campaign) == CAMPAIGN_FIELDS
    assert (campaign["type"], campaign["status"], campaign["end_handle"]) == ("call", "stop", "stop")
    assert campaign["actions"] == [] and campaign["service_level"] == 0
    assert (campaign["concurrency"], campaign["dial_rate"]) == (10, 10)
    assert (campaign["outplan_id"], campaign["outdial_id"]) == (outplan["id"], outdial["id"])
    assert campaign["queue_id"] == NIL and campaign["next_campaign_id"] == NIL
    assert campaign["tm_update"] == NEVER and campaign["tm_delete"] == NEVER
    assert await outdial_link(api, outdial) == campaign["id"]
    assert (await api.get(f"/v1.0/campaigns/{campaign['id']}")).json() == campaign


async def test_create_campaign_with_every_field(api: Api) -> None:
    first = await new_campaign(api)
    queue_id = str(uuid.uuid4())
    actions = [{"type": "talk", "option": {"text": "hello", "language": "en-US"}},
               {"type": "hangup"}]
    campaign = await new_campaign(
        api, type="call", detail="spring", service_level=80, end_handle="continue",
        actions=actions, queue_id=queue_id, next_campaign_id=first["id"],
        concurrency=1000, dial_rate=1,
    )
    assert campaign["actions"] == [actions[0], {"type": "hangup", "option": {}}]
    assert (campaign["end_handle"], campaign["service_level"], campaign["detail"]) == (
        "continue", 80, "spring")
    assert (campaign["queue_id"], campaign["next_campaign_id"]) == (queue_id, first["id"])
    assert (campaign["concurrency"], campaign["dial_rate"]) == (1000, 1)


async def test_a_field_sent_as_null_on_create_takes_its_default(api: Api) -> None:
    # As PUT keeps a field sent as null: a client sending every field, the unset ones null.
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    nulls = {name: None for name in ("type", "name", "detail", "service_level", "end_handle",
                                     "actions", "queue_id", "next_campaign_id", "concurrency",
                                     "dial_rate", "calling_window", "priority", "dnclist_ids")}
    response = await api.post("/v1.0/campaigns", json={
        **nulls, "outplan_id": outplan["id"], "outdial_id": outdial["id"]})
    assert response.status_code == 200, response.text
    campaign = response.json()
    assert (campaign["type"], campaign["name"], campaign["end_handle"], campaign["priority"]) == (
        "call", "", "stop", "due_first")
    assert (campaign["concurrency"], campaign["dial_rate"], campaign["service_level"]) == (10, 10, 0)
    assert (campaign["actions"], campaign["dnclist_ids"], campaign["calling_window"]) == ([], [], None)
    assert campaign["queue_id"] == NIL and campaign["next_campaign_id"] == NIL


async def test_campaign_refuses_bad_fields(api: Api) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    base = {"outplan_id": outplan["id"], "outdial_id": outdial["id"]}
    cases = [
        ({"type": "flow"}, "type"),
        ({"end_handle": "pause"}, "end_handle"),
        ({"actions": {"type": "talk"}}, "actions"),
        ({"actions": ["talk"]}, "actions.0"),
        ({"actions": [{"option": {}}]}, "actions.0.type"),
        ({"actions": [{"type": "hangup"}, {"type": ""}]}, "actions.1.type"),
        ({"actions": [{"type": "talk"}]}, "actions.0.option.text"),
        ({"actions": [{"type": "talk", "option": "loud"}]}, "actions.0.option"),
        # One style of field path however deep, list positions included.
        ({"actions": [{"type": "hangup"}, {"type": "play", "option": {
            "stream_urls": ["https://example.com/a.wav", "ftp://example.com/b.wav"]}}]},
         "actions.1.option.stream_urls.1"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1001}, "concurrency"),
        ({"dial_rate": 0}, "dial_rate"),
        ({"dial_rate": 1001}, "dial_rate"),
        ({"dial_rate": "10"}, "dial_rate"),
        ({"service_level": "high"}, "service_level"),
        ({"service_level": -1}, "service_level"),
        ({"service_level": 2**31}, "service_level"),
        ({"name": "spring\u0000sale"}, "name"),
        ({"outplan_id": None}, "outplan_id"),
        ({"outdial_id": NIL}, "outdial_id"),
        ({"outdial_id": "list-1"}, "outdial_id"),
        ({"queue_id": 7}, "queue_id"),
    ]
    for change, field in cases:
        assert_refused(await api.post("/v1.0/campaigns", json={**base, **change}), field)
    message = assert_refused(await api.post("/v1.0/campaigns", json={**base, "type": "sms"}), "type")
    assert "call" in message  # names the accepted values
    assert (await api.get("/v1.0/campaigns")).json()["result"] == []
    assert await outdial_link(api, outdial) == NIL


async def test_campaign_refuses_missing_deleted_or_foreign_resources(
    api: Api, app: Any, clock: FakeClock
) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    other = await make_tenant(app, clock, "other-admin")
    foreign_plan = (await api.post("/v1.0/outplans", token=other, json={})).json()
    foreign_list = (await api.post("/v1.0/outdials", token=other, json={})).json()
    dead_plan, dead_list = await new_outplan(api), await new_outdial(api)
    await api.delete(f"/v1.0/outplans/{dead_plan['id']}")
    await api.delete(f"/v1.0/outdials/{dead_list['id']}")
    made_up = str(uuid.uuid4())
    base = {"outplan_id": outplan["id"], "outdial_id": outdial["id"]}
    for field, value in [
        ("outplan_id", made_up), ("outplan_id", foreign_plan["id"]), ("outplan_id", dead_plan["id"]),
        ("outdial_id", made_up), ("outdial_id", foreign_list["id"]), ("outdial_id", dead_list["id"]),
        ("next_campaign_id", made_up),
    ]:
        assert_refused(await api.post("/v1.0/campaigns", json={**base, field: value}), field)
    assert await outdial_link(api, outdial) == NIL


async def test_list_campaigns_newest_first_without_deleted(api: Api, clock: FakeClock) -> None:
    made = []
    for n in range(3):
        made.append(await new_campaign(api, name=f"c{n}"))
        clock.advance(1)
    assert (await api.delete(f"/v1.0/campaigns/{made[1]['id']}")).status_code == 200
    first = (await api.get("/v1.0/campaigns", params={"page_size": 1})).json()
    assert [c["name"] for c in first["result"]] == ["c2"]
    rest = (await api.get("/v1.0/campaigns", params={"page_token": first["next_page_token"]})).json()
    assert [c["name"] for c in rest["result"]] == ["c0"]
    assert list(rest["result"][0]) == CAMPAIGN_FIELDS


# -- one outdial, one campaign --------------------------------------------------------------------


async def test_an_outdial_serves_one_live_campaign_at_a_time(api: Api) -> None:
    outdial = await new_outdial(api)
    first = await new_campaign(api, outdial=outdial)
    plan = await new_outplan(api)
    body = {"outplan_id": plan["id"], "outdial_id": outdial["id"]}
    assert_refused(await api.post("/v1.0/campaigns", json=body), "outdial_id", "OUTDIAL_IN_USE")
    assert (await api.delete(f"/v1.0/campaigns/{first['id']}")).status_code == 200
    assert await outdial_link(api, outdial) == NIL  # deleting the campaign frees the outdial
    second = await api.post("/v1.0/campaigns", json=body)
    assert second.status_code == 200, second.text
    assert await outdial_link(api, outdial) == second.json()["id"]


async def test_campaigns_racing_for_one_outdial_one_wins(api: Api) -> None:
    outdial = await new_outdial(api)
    plans = [await new_outplan(api) for _ in range(4)]
    responses = await asyncio.gather(*(
        api.post("/v1.0/campaigns", json={"outplan_id": plan["id"], "outdial_id": outdial["id"]})
        for plan in plans
    ))
    won = [r for r in responses if r.status_code == 200]
    assert len(won) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code != 200:
            assert_refused(response, "outdial_id", "OUTDIAL_IN_USE")
    assert await outdial_link(api, outdial) == won[0].json()["id"]


async def test_resource_info_moves_the_outdial_link(api: Api, clock: FakeClock) -> None:
    old_list, new_list, busy_list = [await new_outdial(api) for _ in range(3)]
    campaign = await new_campaign(api, outdial=old_list)
    await new_campaign(api, outdial=busy_list)
    plan = await new_outplan(api)
    path = f"/v1.0/campaigns/{campaign['id']}/resource_info"
    assert_refused(await api.put(path, json={"outplan_id": plan["id"], "outdial_id": busy_list["id"]}),
                   "outdial_id", "OUTDIAL_IN_USE")
    assert_refused(await api.put(path, json={"outdial_id": new_list["id"]}), "outplan_id")
    assert_refused(await api.put(path, json={"outplan_id": plan["id"], "outdial_id": str(uuid.uuid4())}),
                   "outdial_id")
    assert_refused(await api.put(path, json={"outplan_id": plan["id"], "outdial_id": new_list["id"],
                                             "next_campaign_id": campaign["id"]}), "next_campaign_id")
    assert await outdial_link(api, old_list) == campaign["id"]

    clock.advance(1)
    queue_id = str(uuid.uuid4())
    moved = await api.put(path, json={"outplan_id": plan["id"], "outdial_id": new_list["id"],
                                      "queue_id": queue_id})
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert list(body) == CAMPAIGN_FIELDS
    assert (body["outplan_id"], body["outdial_id"], body["queue_id"]) == (
        plan["id"], new_list["id"], queue_id)
    assert body["tm_update"] != NEVER
    assert await outdial_link(api, old_list) == NIL
    assert await outdial_link(api, new_list) == campaign["id"]


async def test_outdial_campaign_id_must_name_a_live_campaign_of_the_customer(
    api: Api, app: Any, clock: FakeClock
) -> None:
    outdial = await new_outdial(api)
    campaign = await new_campaign(api)
    gone = await new_campaign(api)
    await api.delete(f"/v1.0/campaigns/{gone['id']}")
    other = await make_tenant(app, clock, "other-admin")
    foreign = await new_campaign(Api(api.http, other))
    path = f"/v1.0/outdials/{outdial['id']}/campaign_id"
    for campaign_id in (str(uuid.uuid4()), gone["id"], foreign["id"]):
        assert_refused(await api.put(path, json={"campaign_id": campaign_id}), "campaign_id")
        assert_refused(await api.post("/v1.0/outdials", json={"campaign_id": campaign_id}),
                       "campaign_id")
    assert_refused(await api.put(path, json={"campaign_id": "c-1"}), "campaign_id")
    linked = await api.put(path, json={"campaign_id": campaign["id"]})
    assert linked.status_code == 200, linked.text
    assert linked.json()["campaign_id"] == campaign["id"]
    assert (await api.put(path, json={"campaign_id": NIL})).json()["campaign_id"] == NIL


# -- status -------------------------------------------------------------------------------------


async def test_run_then_stop_with_nothing_in_flight(api: Api, clock: FakeClock) -> None:
    campaign = await new_campaign(api)
    clock.advance(1)
    running = await set_status(api, campaign, "run")
    assert running.status_code == 200, running.text
    assert list(running.json()) == CAMPAIGN_FIELDS
    assert running.json()["status"] == "run" and running.json()["tm_update"] != NEVER
    assert (await set_status(api, campaign, "run")).json()["status"] == "run"
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stop"
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stop"
    for status in ("stopping", "pause", "RUN", ""):
        message = assert_refused(await set_status(api, campaign, status), "status")
        assert "run, stop" in message
    assert_refused(await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={}), "status")


async def test_stop_with_an_attempt_in_flight_is_stopping_until_it_ends(
    api: Api, app: Any, clock: FakeClock
) -> None:
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    campaign = await new_campaign(api, outdial=outdial)
    await set_status(api, campaign, "run")
    call_id = await insert_campaigncall(app, clock, campaign, target, status="progressing")
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stopping"
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stopping"
    assert_error(await api.delete(f"/v1.0/campaigns/{campaign['id']}"), 409, "CAMPAIGN_NOT_STOPPED")
    # Run again while stopping: the attempt carries on and the campaign runs.
    assert (await set_status(api, campaign, "run")).json()["status"] == "run"
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stopping"
    await finish_campaigncall(app, clock, call_id)
    # Once nothing is in flight, a stop request is final at once.
    assert (await set_status(api, campaign, "stop")).json()["status"] == "stop"


async def test_run_needs_a_live_outplan_and_a_live_outdial(api: Api) -> None:
    plan, outdial = await new_outplan(api), await new_outdial(api)
    on_dead_plan = await new_campaign(api, outplan=plan)
    await api.delete(f"/v1.0/outplans/{plan['id']}")
    assert_error(await set_status(api, on_dead_plan, "run"), 409, "OUTPLAN_DELETED")
    on_dead_list = await new_campaign(api, outdial=outdial)
    await api.delete(f"/v1.0/outdials/{outdial['id']}")
    assert_error(await set_status(api, on_dead_list, "run"), 409, "OUTDIAL_DELETED")
    for campaign in (on_dead_plan, on_dead_list):
        assert (await api.get(f"/v1.0/campaigns/{campaign['id']}")).json()["status"] == "stop"


async def test_run_refuses_an_outdial_pointed_at_another_campaign(api: Api) -> None:
    outdial = await new_outdial(api)
    campaign = await new_campaign(api, outdial=outdial)
    thief = await new_campaign(api)
    path = f"/v1.0/outdials/{outdial['id']}/campaign_id"
    await api.put(path, json={"campaign_id": thief["id"]})
    assert_error(await set_status(api, campaign, "run"), 409, "OUTDIAL_IN_USE")
    # Unlinked (nil), the outdial is taken back by the campaign that runs on it.
    await api.put(path, json={"campaign_id": NIL})
    assert (await set_status(api, campaign, "run")).json()["status"] == "run"
    assert await outdial_link(api, outdial) == campaign["id"]


async def test_stop_waits_for_the_engine_holding_the_campaign_row(
    api: Api, app: Any, clock: FakeClock, database_url: str
) -> None:
    """The engine ends the last attempt and stops the campaign in one locked transaction; a stop
    request arriving meanwhile must see that result, not overwrite it with `stopping`."""
    if "postgresql" not in database_url:
        pytest.skip("SQLite runs one writer at a time: there is no concurrent writer to wait for")
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    campaign = await new_campaign(api, outdial=outdial)
    await set_status(api, campaign, "run")
    call_id = await insert_campaigncall(app, clock, campaign, target)
    database = app.state.database
    async with database.transaction() as engine_session:
        row = await engine_session.scalar(
            select(Campaign).where(Campaign.id == uuid.UUID(campaign["id"])).with_for_update())
        call = await engine_session.get(Campaigncall, uuid.UUID(call_id))
        assert row is not None and call is not None
        call.status, call.result, call.outcome = "done", "success", "answered"
        row.status = "stop"
        await engine_session.flush()
        stop_request = asyncio.create_task(set_status(api, campaign, "stop"))
        async with database.engine.connect() as probe:
            for _ in range(2000):  # until the request waits on the row lock (or 20 s)
                waiting = await probe.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"))
                await probe.rollback()  # a transaction sees one snapshot of pg_stat_activity
                if waiting or stop_request.done():
                    break
                await asyncio.sleep(0.01)
        assert waiting == 1 and not stop_request.done(), "the stop request did not wait"
    response = await stop_request
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stop"


# -- other changes ------------------------------------------------------------------------------


async def test_update_campaign(api: Api, clock: FakeClock) -> None:
    campaign = await new_campaign(api, concurrency=5)
    path = f"/v1.0/campaigns/{campaign['id']}"
    clock.advance(1)
    response = await api.put(path, json={"name": "n2", "detail": "d2", "end_handle": "continue",
                                         "dial_rate": 50})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert list(updated) == CAMPAIGN_FIELDS
    assert (updated["name"], updated["detail"], updated["end_handle"]) == ("n2", "d2", "continue")
    assert (updated["dial_rate"], updated["concurrency"]) == (50, 5)  # omitted: unchanged
    assert updated["tm_update"] != NEVER
    for body, field in [({"type": "email"}, "type"), ({"end_handle": "loop"}, "end_handle"),
                        ({"concurrency": 0}, "concurrency"), ({"dial_rate": 5000}, "dial_rate"),
                        ({"name": None}, "name"), ({"service_level": -1}, "service_level")]:
        assert_refused(await api.put(path, json=body), field)
    assert (await api.get(path)).json() == updated


async def test_service_level_and_actions(api: Api) -> None:
    campaign = await new_campaign(api)
    path = f"/v1.0/campaigns/{campaign['id']}"
    level = await api.put(f"{path}/service_level", json={"service_level": 90})
    assert level.status_code == 200, level.text
    assert level.json()["service_level"] == 90 and list(level.json()) == CAMPAIGN_FIELDS
    for bad in ("90", -5, 10**12):
        assert_refused(await api.put(f"{path}/service_level", json={"service_level": bad}),
                       "service_level")
    actions = [{"type": "play", "option": {"stream_urls": ["https://example.com/a.wav"]}}]
    changed = await api.put(f"{path}/actions", json={"actions": actions})
    assert changed.status_code == 200, changed.text
    assert changed.json()["actions"] == actions
    for body, field in [({}, "actions"), ({"actions": None}, "actions"),
                        ({"actions": [{"type": ""}]}, "actions.0.type"),
                        ({"actions": [{"type": "play", "option": []}]}, "actions.0.option")]:
        assert_refused(await api.put(f"{path}/actions", json=body), field)
    assert (await api.get(path)).json()["actions"] == actions
    cleared = await api.put(f"{path}/actions", json={"actions": []})
    assert cleared.json()["actions"] == []


# -- delete -------------------------------------------------------------------------------------


async def test_delete_campaign_only_when_stopped(api: Api) -> None:
    outdial = await new_outdial(api)
    campaign = await new_campaign(api, outdial=outdial)
    path = f"/v1.0/campaigns/{campaign['id']}"
    await set_status(api, campaign, "run")
    assert_error(await api.delete(path), 409, "CAMPAIGN_NOT_STOPPED")
    await set_status(api, campaign, "stop")
    deleted = await api.delete(path)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["tm_delete"] != NEVER and deleted.json()["status"] == "stop"
    assert await outdial_link(api, outdial) == NIL
    assert (await api.get(path)).json()["tm_delete"] == deleted.json()["tm_delete"]
    for call in [api.put(path, json={"name": "x"}), set_status(api, campaign, "run"),
                 api.put(f"{path}/service_level", json={"service_level": 1}),
                 api.put(f"{path}/actions", json={"actions": []}),
                 api.put(f"{path}/resource_info", json={"outplan_id": campaign["outplan_id"],
                                                        "outdial_id": outdial["id"]})]:
        assert_error(await call, 409, "CAMPAIGN_DELETED")
    again = await api.delete(path)
    assert again.status_code == 200 and again.json() == deleted.json()


# -- tenancy and permissions ----------------------------------------------------------------------


async def test_another_customers_campaign_is_not_found(api: Api, app: Any, clock: FakeClock) -> None:
    campaign = await new_campaign(api)
    other = await make_tenant(app, clock, "other-admin")
    path = f"/v1.0/campaigns/{campaign['id']}"
    calls = [
        api.get(path, token=other), api.put(path, token=other, json={}),
        api.delete(path, token=other),
        api.put(f"{path}/status", token=other, json={"status": "run"}),
        api.put(f"{path}/service_level", token=other, json={"service_level": 1}),
        api.put(f"{path}/actions", token=other, json={"actions": []}),
        api.put(f"{path}/resource_info", token=other, json={}),
        api.get(f"{path}/campaigncalls", token=other),
    ]
    for call in calls:
        assert_error(await call, 404, "CAMPAIGN_NOT_FOUND")
    assert (await api.get("/v1.0/campaigns", token=other)).json()["result"] == []
    assert (await api.get(path)).json() == campaign
    agent = await add_agent(app, clock, campaign["customer_id"], "plain-agent", "agent")
    assert_error(await api.get(path, token=agent), 403, "PERMISSION_DENIED")
    assert_error(await set_status(Api(api.http, agent), campaign, "run"), 403, "PERMISSION_DENIED")
    assert_error(await api.get("/v1.0/campaigns/42"), 400, "INVALID_ID")
