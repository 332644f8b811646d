"""Outplans: the retry plan's calls, its ranges and defaults, tenancy, and the delete rule."""

import uuid
from typing import Any

from outdial.clock import FakeClock
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

OUTPLAN_FIELDS = [
    "id", "customer_id", "name", "detail", "source", "dial_timeout", "try_interval",
    "max_try_count_0", "max_try_count_1", "max_try_count_2", "max_try_count_3",
    "max_try_count_4", "tm_create", "tm_update", "tm_delete", "sip_channel_id", "email_channel_id",
    "retry_rules",
]
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
NEVER = "9999-01-01 00:00:00.000000"


async def test_create_outplan_with_defaults(api: Api) -> None:
    outplan = await new_outplan(api, detail="three tries")
    assert list(outplan) == OUTPLAN_FIELDS
    assert outplan["name"] == "plan" and outplan["detail"] == "three tries"
    assert outplan["source"] is None
    assert outplan["dial_timeout"] == 30000 and outplan["try_interval"] == 60000
    assert [outplan[f"max_try_count_{n}"] for n in range(5)] == [1, 0, 0, 0, 0]
    assert outplan["tm_update"] == NEVER and outplan["tm_delete"] == NEVER
    fetched = await api.get(f"/v1.0/outplans/{outplan['id']}")
    assert fetched.json() == outplan


async def test_create_outplan_with_every_field_at_its_limits(api: Api) -> None:
    outplan = await new_outplan(
        api, source={"type": "sip", "target": "sip:caller@pbx.example.com", "name": "desk"},
        dial_timeout=600000, try_interval=THIRTY_DAYS_MS,
        max_try_count_0=100, max_try_count_1=0, max_try_count_2=3, max_try_count_4=100,
    )
    assert outplan["source"] == {"type": "sip", "target": "sip:caller@pbx.example.com",
                                 "target_name": "", "name": "desk", "detail": ""}
    assert outplan["try_interval"] == THIRTY_DAYS_MS  # beyond 32 bits: stored whole
    assert [outplan[f"max_try_count_{n}"] for n in range(5)] == [100, 0, 3, 0, 100]
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json() == outplan
    low = await new_outplan(api, dial_timeout=1000, try_interval=0, max_try_count_0=0)
    assert (low["dial_timeout"], low["try_interval"], low["max_try_count_0"]) == (1000, 0, 0)


BAD_DIAL_INFO = [
    ({"dial_timeout": 999}, "dial_timeout"),
    ({"dial_timeout": 600001}, "dial_timeout"),
    ({"dial_timeout": "30000"}, "dial_timeout"),
    ({"try_interval": -1}, "try_interval"),
    ({"try_interval": THIRTY_DAYS_MS + 1}, "try_interval"),
    ({"try_interval": 1.5}, "try_interval"),
    ({"max_try_count_0": 101}, "max_try_count_0"),
    ({"max_try_count_3": -1}, "max_try_count_3"),
    ({"max_try_count_4": True}, "max_try_count_4"),
    ({"source": {"type": "fax", "target": "+15559876543"}}, "source.type"),
    ({"source": {"type": "tel", "target": "+1555"}}, "source.target"),
    ({"source": {"type": "email", "target": "not-an-address"}}, "source.target"),
    ({"source": {"type": "tel", "target": ""}}, "source.target"),
    ({"source": {"type": "tel"}}, "source.target"),
    ({"source": "+15559876543"}, "source"),
    ({"source": {"type": "tel", "target": "+15559876543", "name": "a\u0000"}}, "source.name"),
]


async def test_outplan_refuses_values_out_of_range(api: Api) -> None:
    for body, field in BAD_DIAL_INFO:
        assert_refused(await api.post("/v1.0/outplans", json=body), field)
    assert (await api.get("/v1.0/outplans")).json()["result"] == []


async def test_dial_info_replaces_the_plan_and_is_validated(api: Api, clock: FakeClock) -> None:
    outplan = await new_outplan(api, dial_timeout=5000, max_try_count_0=3)
    clock.advance(1)
    response = await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info", json={
        "source": {"type": "tel", "target": "+15551234567"}, "try_interval": 600000,
        "max_try_count_0": 2, "max_try_count_1": 1})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert list(updated) == OUTPLAN_FIELDS
    assert updated["source"]["target"] == "+15551234567"
    assert updated["dial_timeout"] == 30000  # omitted: back to its default
    assert (updated["try_interval"], updated["max_try_count_0"], updated["max_try_count_1"]) == (
        600000, 2, 1)
    assert updated["name"] == "plan" and updated["tm_update"] != NEVER
    for body, field in BAD_DIAL_INFO:
        assert_refused(await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info", json=body), field)
    # A refused change leaves the plan as it was.
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json() == updated


async def test_dial_info_without_retry_rules_keeps_them_and_null_takes_them_away(
    api: Api,
) -> None:
    rules = {"rejected": {"interval": 60000, "max_tries": None, "next": "finish"}}
    outplan = await new_outplan(api, retry_rules=rules)
    rules = outplan["retry_rules"]  # as read back: with every field
    assert rules["rejected"]["next"] == "finish"
    here = f"/v1.0/outplans/{outplan['id']}/dial_info"
    # A client that knows only VoIPbin's fields changes the interval: the rules stay.
    response = await api.put(here, json={"try_interval": 120000, "max_try_count_0": 2})
    assert response.status_code == 200, response.text
    assert (response.json()["try_interval"], response.json()["retry_rules"]) == (120000, rules)
    # Refused rules change nothing.
    assert_refused(await api.put(here, json={"retry_rules": {"busy": {"interval": 1000, "next": "again"}}}),
                   "retry_rules.busy.next")
    # The value is quoted as JSON, cut to a hundred characters.
    for step, said in ((None, "null is not one of"), ("x" * 3000, f'"{"x" * 99}… is not one of')):
        message = assert_refused(await api.put(here, json={"retry_rules": {"busy": {
            "interval": 1000, "next": step}}}), "retry_rules.busy.next")
        assert message.startswith(f"retry_rules.busy.next: {said}"), message
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json()["retry_rules"] == rules
    response = await api.put(here, json={"try_interval": 120000, "retry_rules": None})
    assert response.status_code == 200, response.text
    assert response.json()["retry_rules"] is None
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json()["retry_rules"] is None


async def test_update_outplan_name_and_detail(api: Api, clock: FakeClock) -> None:
    outplan = await new_outplan(api, dial_timeout=5000)
    clock.advance(1)
    response = await api.put(f"/v1.0/outplans/{outplan['id']}", json={"name": "n2", "detail": "d2"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["detail"], updated["dial_timeout"]) == ("n2", "d2", 5000)
    assert updated["tm_update"] > outplan["tm_create"]
    assert_refused(await api.put(f"/v1.0/outplans/{outplan['id']}", json={"name": 1}), "name")


async def test_list_outplans_newest_first_in_pages_without_deleted(
    api: Api, clock: FakeClock
) -> None:
    made = []
    for n in range(3):
        made.append(await new_outplan(api, name=f"p{n}"))
        clock.advance(1)
    await api.delete(f"/v1.0/outplans/{made[1]['id']}")
    first = (await api.get("/v1.0/outplans", params={"page_size": 1})).json()
    assert [o["name"] for o in first["result"]] == ["p2"]
    second = (await api.get("/v1.0/outplans", params={
        "page_size": 1, "page_token": first["next_page_token"]})).json()
    assert [o["name"] for o in second["result"]] == ["p0"]
    assert list(second["result"][0]) == OUTPLAN_FIELDS


async def test_delete_outplan_is_soft_and_freezes_it(api: Api) -> None:
    outplan = await new_outplan(api)
    deleted = await api.delete(f"/v1.0/outplans/{outplan['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["tm_delete"] != NEVER
    shown = await api.get(f"/v1.0/outplans/{outplan['id']}")
    assert shown.json()["tm_delete"] == deleted.json()["tm_delete"]
    assert_error(await api.put(f"/v1.0/outplans/{outplan['id']}", json={"name": "x"}),
                 409, "OUTPLAN_DELETED")
    assert_error(await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info", json={}),
                 409, "OUTPLAN_DELETED")
    again = await api.delete(f"/v1.0/outplans/{outplan['id']}")
    assert again.status_code == 200 and again.json() == deleted.json()


async def test_outplan_is_deleted_only_when_no_campaign_runs_on_it(
    api: Api, app: Any, clock: FakeClock
) -> None:
    outplan = await new_outplan(api)
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    campaign = await new_campaign(api, outplan, outdial)
    status_path = f"/v1.0/campaigns/{campaign['id']}/status"
    assert (await api.put(status_path, json={"status": "run"})).json()["status"] == "run"
    assert_error(await api.delete(f"/v1.0/outplans/{outplan['id']}"), 409, "OUTPLAN_IN_USE")

    call_id = await insert_campaigncall(app, clock, campaign, target)
    assert (await api.put(status_path, json={"status": "stop"})).json()["status"] == "stopping"
    assert_error(await api.delete(f"/v1.0/outplans/{outplan['id']}"), 409, "OUTPLAN_IN_USE")
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json()["tm_delete"] == NEVER

    await finish_campaigncall(app, clock, call_id)
    assert (await api.put(status_path, json={"status": "stop"})).json()["status"] == "stop"
    response = await api.delete(f"/v1.0/outplans/{outplan['id']}")
    assert response.status_code == 200, response.text


async def test_only_managers_of_the_owner_reach_an_outplan(api: Api, app: Any, clock: FakeClock) -> None:
    outplan = await new_outplan(api)
    other = await make_tenant(app, clock, "other-admin")
    path = f"/v1.0/outplans/{outplan['id']}"
    assert_error(await api.get(path, token=other), 404, "OUTPLAN_NOT_FOUND")
    assert_error(await api.put(path, token=other, json={"name": "x"}), 404, "OUTPLAN_NOT_FOUND")
    assert_error(await api.put(f"{path}/dial_info", token=other, json={}), 404, "OUTPLAN_NOT_FOUND")
    assert_error(await api.delete(path, token=other), 404, "OUTPLAN_NOT_FOUND")
    assert (await api.get("/v1.0/outplans", token=other)).json()["result"] == []
    assert (await api.get(path)).json()["tm_delete"] == NEVER
    agent = await add_agent(app, clock, outplan["customer_id"], "plain-agent", "agent")
    assert_error(await api.get("/v1.0/outplans", token=agent), 403, "PERMISSION_DENIED")
    assert_error(await api.post("/v1.0/outplans", token=agent, json={}), 403, "PERMISSION_DENIED")
    assert_error(await api.get("/v1.0/outplans/not-a-uuid"), 400, "INVALID_ID")
    assert_error(await api.delete(f"/v1.0/outplans/{NIL}"), 400, "INVALID_ID")
    assert_error(await api.get(f"/v1.0/outplans/{uuid.uuid4()}"), 404, "OUTPLAN_NOT_FOUND")
