"""The export says why each target waits exactly as its GET does, also when the reasons come
from a calling window and named do-not-call lists (on PostgreSQL the export inlines their
values into COPY, where a bare literal would lose its type)."""

import json
from typing import Any

from tests.conftest import Api
from tests.integration.campaign_setup import new_campaign, new_outdial

FIELDS = ("waiting_reason", "next_attempt_at", "waiting_detail")


async def test_the_export_says_why_as_the_target_does(api: Api) -> None:
    # The test clock reads 12:00 UTC: 07:00 in New York (shut), 12:00 in London (open).
    outdial = await new_outdial(api)
    targets = {}
    for name, number, zone in (("ann", "+12125550123", None), ("bob", "+442071234567", "Europe/London"),
                               ("cid", "+442071234568", "Europe/London")):
        response = await api.post(f"/v1.0/outdials/{outdial['id']}/targets", json={
            "name": name, "destination_0": {"type": "tel", "target": number}, "timezone": zone})
        assert response.status_code == 200, response.text
        targets[name] = response.json()
    listed = (await api.post("/v1.0/dnclists", json={"name": "named"})).json()
    added = await api.post(f"/v1.0/dnclists/{listed['id']}/entries", json={"value": "+442071234567"})
    assert added.status_code == 200, added.text
    campaign = await new_campaign(api, outdial=outdial, dnclist_ids=[listed["id"]], calling_window={
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "09:00", "end": "17:00",
        "timezone_default": "America/New_York"})
    running = await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "run"})
    assert running.status_code == 200, running.text

    shown = {}
    for name, target in targets.items():
        response = await api.get(f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}")
        shown[target["id"]] = {key: response.json()[key] for key in FIELDS}
    assert shown[targets["ann"]["id"]]["waiting_reason"] == "outside_calling_window"
    assert shown[targets["bob"]["id"]] == {"waiting_reason": "dnc", "waiting_detail": listed["id"],
                                           "next_attempt_at": shown[targets["bob"]["id"]]["next_attempt_at"]}
    assert shown[targets["cid"]["id"]]["waiting_reason"] == "dialable"

    response = await api.get(f"/v1.0/outdials/{outdial['id']}/targets/export",
                             params={"format": "ndjson"})
    assert response.status_code == 200, response.text
    exported: dict[str, Any] = {}
    for line in response.text.splitlines():
        row = json.loads(line)
        exported[row["id"]] = {key: row[key] for key in FIELDS}
    assert exported == shown
