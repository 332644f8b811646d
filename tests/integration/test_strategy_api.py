"""The strategy settings through the API: target timezone, calling windows, contact limits,
and the waiting reason on targets, export and stats."""

from tests.conftest import Api, assert_error
from tests.integration.campaign_setup import new_campaign, new_outdial, new_outplan

WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00",
          "timezone_default": "America/New_York", "holidays": ["2026-12-25"]}


async def test_a_target_s_timezone_is_stored_and_checked(api: Api) -> None:
    outdial = await new_outdial(api)
    path = f"/v1.0/outdials/{outdial['id']}/targets"
    body = {"destination_0": {"type": "tel", "target": "+15559876543"}, "timezone": "America/Chicago"}
    target = (await api.post(path, json=body)).json()
    assert target["timezone"] == "America/Chicago"
    assert target["waiting_reason"] == "campaign_not_running"
    got = (await api.get(f"{path}/{target['id']}")).json()
    assert got["timezone"] == "America/Chicago"
    for zone in ("Mars/Olympus", "localtime", "Factory"):
        bad = await api.post(path, json={**body, "timezone": zone})
        assert "timezone" in assert_error(bad, 400, "INVALID_ARGUMENT")["message"]


async def test_a_campaign_s_calling_window_is_checked_naming_the_field(api: Api) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    campaign = await new_campaign(api, outplan, outdial, calling_window=WINDOW)
    assert campaign["calling_window"] == WINDOW
    for bad, field in [
        ({**WINDOW, "days": ["moon"]}, "calling_window.days"),
        ({**WINDOW, "start": "25:00"}, "calling_window.start"),
        ({**WINDOW, "end": "08:00"}, "calling_window.end"),
        ({**WINDOW, "timezone_default": "Nowhere"}, "calling_window.timezone_default"),
        ({**WINDOW, "holidays": ["2026-13-01"]}, "calling_window.holidays"),
        ({**WINDOW, "holidays": ["2026-W52-5"]}, "calling_window.holidays"),
        ({**WINDOW, "start": "0\u00b2:00"}, "calling_window.start"),
        ({**WINDOW, "end": "\u0662\u0660:\u0660\u0660"}, "calling_window.end"),
    ]:
        response = await api.put(f"/v1.0/campaigns/{campaign['id']}",
                                 json={"name": "c", "calling_window": bad})
        assert field in assert_error(response, 400, "INVALID_ARGUMENT")["message"], field
    cleared = await api.put(f"/v1.0/campaigns/{campaign['id']}", json={"name": "c", "calling_window": None})
    assert cleared.json()["calling_window"] is None


async def test_contact_limits_are_set_and_checked(api: Api) -> None:
    assert (await api.get("/v1.0/contactlimits")).json() == {"limits": []}
    limits = [{"max": 3, "window": 86400000}, {"max": 1, "window": 604800000, "count": "answered"}]
    response = await api.put("/v1.0/contactlimits", json={"limits": limits})
    assert response.json()["limits"] == [{**limits[0], "count": "attempts"}, limits[1]]
    assert (await api.get("/v1.0/contactlimits")).json() == response.json()
    bad = await api.put("/v1.0/contactlimits", json={"limits": [{"max": 0, "window": 86400000}]})
    assert "limits.0.max" in assert_error(bad, 400, "INVALID_ARGUMENT")["message"]


async def test_stats_and_export_carry_the_waiting_reason(api: Api) -> None:
    outdial = await new_outdial(api)
    await api.post(f"/v1.0/outdials/{outdial['id']}/targets",
                   json={"destination_0": {"type": "tel", "target": "+15559876543"}})
    stats = (await api.get(f"/v1.0/outdials/{outdial['id']}/stats?reasons=true")).json()
    assert stats["waiting_reasons"]["campaign_not_running"] == 1
    exported = (await api.get(f"/v1.0/outdials/{outdial['id']}/targets/export")).text
    header, row = exported.splitlines()[:2]
    assert header.endswith("timezone,waiting_reason,next_attempt_at,waiting_detail")
    assert ",campaign_not_running," in row
