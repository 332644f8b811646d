"""Campaigncalls: reading attempts, per campaign and in all, and deleting only finished ones."""

import uuid
from typing import Any

from outdial.clock import FakeClock
from tests.conftest import Api, assert_error, make_tenant
from tests.integration.campaign_setup import (
    NIL,
    finish_campaigncall,
    insert_campaigncall,
    new_campaign,
    new_outdial,
    new_target,
)

CAMPAIGNCALL_FIELDS = [
    "id", "customer_id", "campaign_id", "outplan_id", "outdial_id", "outdial_target_id",
    "queue_id", "activeflow_id", "flow_id", "reference_type", "reference_id", "status", "result",
    "source", "destination", "destination_index", "try_count", "tm_create", "tm_update",
    "tm_delete", "outcome", "tm_end", "channel_id", "channel_type", "sip_code", "sip_reason",
    "hangup_by", "digits", "smtp_code", "smtp_reply", "message_id",
    "outcome_detail",
]
NEVER = "9999-01-01 00:00:00.000000"


async def campaign_with_targets(api: Api, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    outdial = await new_outdial(api)
    targets = [await new_target(api, outdial["id"], f"+1555987654{n}") for n in range(count)]
    return await new_campaign(api, outdial=outdial), targets


async def test_campaigncall_wire_format(api: Api, app: Any, clock: FakeClock) -> None:
    campaign, [target] = await campaign_with_targets(api, 1)
    call_id = await insert_campaigncall(app, clock, campaign, target)
    response = await api.get(f"/v1.0/campaigncalls/{call_id}")
    assert response.status_code == 200, response.text
    call = response.json()
    assert list(call) == CAMPAIGNCALL_FIELDS
    assert (call["campaign_id"], call["outdial_target_id"]) == (campaign["id"], target["id"])
    assert (call["outplan_id"], call["outdial_id"]) == (campaign["outplan_id"], campaign["outdial_id"])
    assert call["queue_id"] == call["activeflow_id"] == call["flow_id"] == call["reference_id"] == NIL
    assert (call["status"], call["result"], call["outcome"]) == ("dialing", "", "")
    assert call["source"] is None
    assert call["destination"] == target["destination_0"]
    assert (call["destination_index"], call["try_count"]) == (0, 1)
    assert call["tm_end"] == NEVER and call["tm_delete"] == NEVER
    clock.advance(30)
    await finish_campaigncall(app, clock, call_id)
    ended = (await api.get(f"/v1.0/campaigncalls/{call_id}")).json()
    assert (ended["status"], ended["result"], ended["outcome"]) == ("done", "fail", "busy")
    assert ended["tm_end"] != NEVER and ended["tm_end"] > ended["tm_create"]


async def test_list_campaigncalls_in_all_and_per_campaign(
    api: Api, app: Any, clock: FakeClock
) -> None:
    first, first_targets = await campaign_with_targets(api, 2)
    second, [second_target] = await campaign_with_targets(api, 1)
    made = []
    for campaign, target in [(first, first_targets[0]), (second, second_target),
                             (first, first_targets[1])]:
        made.append(await insert_campaigncall(app, clock, campaign, target))
        clock.advance(1)
    everything = (await api.get("/v1.0/campaigncalls")).json()
    assert [c["id"] for c in everything["result"]] == made[::-1]  # newest first
    assert list(everything["result"][0]) == CAMPAIGNCALL_FIELDS
    page = (await api.get(f"/v1.0/campaigns/{first['id']}/campaigncalls",
                          params={"page_size": 1})).json()
    assert [c["id"] for c in page["result"]] == [made[2]]
    rest = (await api.get(f"/v1.0/campaigns/{first['id']}/campaigncalls",
                          params={"page_token": page["next_page_token"]})).json()
    assert [c["id"] for c in rest["result"]] == [made[0]]
    only_second = (await api.get(f"/v1.0/campaigns/{second['id']}/campaigncalls")).json()
    assert [c["id"] for c in only_second["result"]] == [made[1]]


async def test_a_campaigncall_is_deleted_only_when_done(api: Api, app: Any, clock: FakeClock) -> None:
    campaign, targets = await campaign_with_targets(api, 2)
    dialing = await insert_campaigncall(app, clock, campaign, targets[0])
    answered = await insert_campaigncall(app, clock, campaign, targets[1], status="progressing")
    for call_id in (dialing, answered):
        assert_error(await api.delete(f"/v1.0/campaigncalls/{call_id}"), 409,
                     "CAMPAIGNCALL_IN_PROGRESS")
    await finish_campaigncall(app, clock, dialing)
    clock.advance(1)
    deleted = await api.delete(f"/v1.0/campaigncalls/{dialing}")
    assert deleted.status_code == 200, deleted.text
    assert list(deleted.json()) == CAMPAIGNCALL_FIELDS and deleted.json()["tm_delete"] != NEVER
    shown = await api.get(f"/v1.0/campaigncalls/{dialing}")
    assert shown.json()["tm_delete"] == deleted.json()["tm_delete"]
    assert [c["id"] for c in (await api.get("/v1.0/campaigncalls")).json()["result"]] == [answered]
    listed = (await api.get(f"/v1.0/campaigns/{campaign['id']}/campaigncalls")).json()["result"]
    assert [c["id"] for c in listed] == [answered]
    again = await api.delete(f"/v1.0/campaigncalls/{dialing}")
    assert again.status_code == 200 and again.json() == deleted.json()


async def test_another_customers_campaigncall_is_not_found(
    api: Api, app: Any, clock: FakeClock
) -> None:
    campaign, [target] = await campaign_with_targets(api, 1)
    call_id = await insert_campaigncall(app, clock, campaign, target, status="done")
    other = await make_tenant(app, clock, "other-admin")
    path = f"/v1.0/campaigncalls/{call_id}"
    assert_error(await api.get(path, token=other), 404, "CAMPAIGNCALL_NOT_FOUND")
    assert_error(await api.delete(path, token=other), 404, "CAMPAIGNCALL_NOT_FOUND")
    assert (await api.get("/v1.0/campaigncalls", token=other)).json() == {
        "result": [], "next_page_token": ""}
    assert (await api.get(path)).json()["tm_delete"] == NEVER
    assert_error(await api.get(f"/v1.0/campaigncalls/{uuid.uuid4()}"), 404, "CAMPAIGNCALL_NOT_FOUND")
    assert_error(await api.get("/v1.0/campaigncalls/call-1"), 400, "INVALID_ID")
    assert_error(await api.get("/v1.0/campaigns/not-an-id/campaigncalls"), 400, "INVALID_ID")
