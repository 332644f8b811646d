"""Every /v1.0 route: another customer's ids answer 404, a plain agent gets 403."""

import re
from typing import Any

import pytest

from outdial.clock import FakeClock
from tests.conftest import Api, add_agent, assert_error, make_tenant
from tests.integration.campaign_setup import insert_campaigncall, new_campaign

TEL = {"type": "tel", "target": "+15559876543"}
NIL = "00000000-0000-0000-0000-000000000000"
# One body valid for every route that takes one (each reads its own keys), so that the answer
# depends on whose id is in the path, not on the body.
VALID_BODY = {"destination_0": TEL, "campaign_id": NIL, "name": "n", "detail": "d", "data": "x",
              "expire": 3600, "status": "stop", "actions": [], "service_level": 0,
              "outplan_id": NIL, "outdial_id": NIL, "queue_id": NIL, "next_campaign_id": NIL,
              "value": "+15559876543"}
# A webhook's status words differ from a campaign's.
WEBHOOK_BODY = {"url": "https://hooks.example.invalid/in", "status": "enabled"}


def v1_routes(app: Any) -> list[tuple[str, str]]:
    """Every authenticated route, as the OpenAPI document lists it."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items() if path.startswith("/v1.0")
        for method in operations
    )


async def owned_ids(api: Api, app: Any, clock: FakeClock) -> dict[str, str]:
    """One of each resource owned by the logged-in customer, by path parameter name."""
    outdial = (await api.post("/v1.0/outdials", json={})).json()
    target = (await api.post(f"/v1.0/outdials/{outdial['id']}/targets", json={"destination_0": TEL})).json()
    key = (await api.post("/v1.0/accesskeys", json={"expire": 3600})).json()
    campaign = await new_campaign(api)
    call_id = await insert_campaigncall(app, clock, campaign, target, status="done")
    job = (await api.post(f"/v1.0/outdials/{outdial['id']}/imports", content=b"destination_0\n+15559876543\n",
                          headers={"content-type": "text/csv"})).json()
    channel = (await api.post("/v1.0/channels", json={"type": "simulated"})).json()
    webhook = (await api.post("/v1.0/webhooks", json={"url": "https://hooks.example.invalid/in"})).json()
    dnclist = (await api.post("/v1.0/dnclists", json={"name": "dnc"})).json()
    entry = (await api.post(f"/v1.0/dnclists/{dnclist['id']}/entries",
                            json={"value": "+15551112222"})).json()
    return {"webhook_id": webhook["id"], "delivery_id": "11111111-1111-4111-8111-111111111111",
            "dnclist_id": dnclist["id"], "entry_id": entry["id"],
            "outdial_id": outdial["id"], "target_id": target["id"], "key_id": key["id"],
            "outplan_id": campaign["outplan_id"], "campaign_id": campaign["id"],
            "campaigncall_id": call_id, "import_id": job["id"], "channel_id": channel["id"]}


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def test_another_customers_ids_answer_404_on_every_route(api: Api, app: Any, clock: FakeClock) -> None:
    theirs = await owned_ids(api, app, clock)
    intruder = await make_tenant(app, clock, "intruder")
    checked = 0
    for method, path in v1_routes(app):
        if "{" not in path:
            continue
        body = WEBHOOK_BODY if path.startswith("/v1.0/webhooks") else VALID_BODY
        response = await api.call(method, fill(path, theirs), token=intruder, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert_error(response, 404, response.json()["error"]["reason"])
        checked += 1
    assert checked >= 10
    # And nothing of theirs shows in the intruder's lists.
    assert (await api.get("/v1.0/outdials", token=intruder)).json()["result"] == []
    assert (await api.get("/v1.0/accesskeys", token=intruder)).json()["result"] == []


async def test_plain_agent_gets_403_on_every_route(api: Api, app: Any, clock: FakeClock) -> None:
    ids = await owned_ids(api, app, clock)
    customer_id = (await api.get(f"/v1.0/outdials/{ids['outdial_id']}")).json()["customer_id"]
    agent = await add_agent(app, clock, customer_id, "plain", "agent")
    routes = v1_routes(app)
    assert len(routes) >= 35
    for method, path in routes:
        response = await api.call(method, fill(path, ids), token=agent, json={})
        assert_error(response, 403, "PERMISSION_DENIED")


@pytest.mark.parametrize("permission", ["admin", "manager"])
async def test_admin_and_manager_of_the_same_customer_share_its_resources(
    api: Api, app: Any, clock: FakeClock, permission: str
) -> None:
    ids = await owned_ids(api, app, clock)
    customer_id = (await api.get(f"/v1.0/outdials/{ids['outdial_id']}")).json()["customer_id"]
    colleague = await add_agent(app, clock, customer_id, f"colleague-{permission}", permission)
    response = await api.get(f"/v1.0/outdials/{ids['outdial_id']}/targets/{ids['target_id']}", token=colleague)
    assert response.status_code == 200
