"""The answer to POST …/targets is the target as every other route shows it.

The hot route tells a new target's waiting from what its INSERT returns when the outdial's
campaign does not run, and asks the rules otherwise: either way its body must be byte for
byte what GET …/targets/{id} (the general path, strategy.reasons through a session) answers
for the same target at the same moment (the clock is fake: no time passes in between)."""

from typing import Any

import pytest

from outdial.outdials.service import OutdialService
from tests.conftest import Api
from tests.integration.campaign_setup import new_campaign, new_outdial, new_outplan

# 12:00 UTC on the fake clock's Thursday: 07:00 in New York (closed), 12:00 in London (open).
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00",
          "timezone_default": "America/New_York", "holidays": []}
NEW_YORK = {"type": "tel", "target": "+12125550101"}
LONDON = {"type": "tel", "target": "+442071838750"}
EVERY_FIELD = {
    "name": "Ann \u00e9 \"quoted\"", "detail": "line\nbreak", "data": '{"crm": 7}',
    "timezone": "Europe/London",
    "destination_0": {"type": "tel", "target": "+442071838750", "name": "office",
                      "detail": "desk", "target_name": "Ann"},
    "destination_1": {"type": "sip", "target": "sips:ann@example.com:5061", "name": "sip"},
    "destination_2": {"type": "email", "target": "Ann@Example.com", "target_name": "Ann E."},
    "destination_3": {"type": "tel", "target": "+15559876543"},
    "destination_4": {"type": "sip", "target": "sip:ann@[2001:db8::1]:5060;transport=tcp"},
}


async def post_and_get(api: Api, outdial_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the target, and check its answer's bytes against GET's."""
    path = f"/v1.0/outdials/{outdial_id}/targets"
    posted = await api.post(path, json=body)
    assert posted.status_code == 200, posted.text
    got = await api.get(f"{path}/{posted.json()['id']}")
    assert got.status_code == 200, got.text
    assert posted.content == got.content
    return posted.json()


@pytest.fixture
def rules_not_asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails a POST that asks the rules' SQL for the new target's waiting (set `asked` to
    allow it)."""
    asked: list[str] = []
    ask = OutdialService.waiting_of

    async def waiting_of(self: OutdialService, *args: Any, **kwargs: Any) -> Any:
        asked.append("waiting_of")
        return await ask(self, *args, **kwargs)

    monkeypatch.setattr(OutdialService, "waiting_of", waiting_of)
    return asked


async def test_a_target_of_an_outdial_without_campaign(
    api: Api, rules_not_asked: list[str]
) -> None:
    outdial = await new_outdial(api)
    for body in (EVERY_FIELD, {"destination_2": {"type": "email", "target": "a@example.com"}},
                 {"destination_0": NEW_YORK, "timezone": "America/Chicago", "data": ""}):
        rules_not_asked.clear()
        target = await post_and_get(api, outdial["id"], body)
        assert (target["waiting_reason"], target["next_attempt_at"], target["waiting_detail"]) \
            == ("campaign_not_running", None, None)
        assert rules_not_asked == ["waiting_of"]  # by GET only
    stats = (await api.get(f"/v1.0/outdials/{outdial['id']}/stats?reasons=true")).json()
    assert stats["targets"] == stats["idle"] == 3
    assert stats["waiting_reasons"]["campaign_not_running"] == 3


async def test_a_target_of_an_outdial_whose_campaign_does_not_run(
    api: Api, rules_not_asked: list[str]
) -> None:
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    stopped = await new_campaign(api, outplan, outdial, calling_window=WINDOW)
    assert stopped["status"] == "stop"
    assert (await post_and_get(api, outdial["id"], EVERY_FIELD))["waiting_reason"] \
        == "campaign_not_running"
    # The outdial names a campaign that runs, but on another outdial: it does not run this one.
    elsewhere = await new_campaign(api, outplan)
    assert (await set_status(api, elsewhere, "run"))["status"] == "run"
    other = await new_outdial(api)
    named = await api.put(f"/v1.0/outdials/{other['id']}/campaign_id",
                          json={"campaign_id": elsewhere["id"]})
    assert named.status_code == 200, named.text
    rules_not_asked.clear()
    target = await post_and_get(api, other["id"], {"destination_0": LONDON})
    assert target["waiting_reason"] == "campaign_not_running"
    assert rules_not_asked == ["waiting_of"]  # by GET only


async def set_status(api: Api, campaign: dict[str, Any], status: str) -> dict[str, Any]:
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": status})
    assert response.status_code == 200, response.text
    return response.json()


async def test_targets_of_a_running_campaign_wait_as_the_rules_say(api: Api) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={"name": "registry"})).json()
    listed = await api.post(f"/v1.0/dnclists/{dnclist['id']}/entries",
                            json={"value": "+44 20 7183 8750"})
    assert listed.status_code == 200, listed.text
    outplan, outdial = await new_outplan(api), await new_outdial(api)
    campaign = await new_campaign(api, outplan, outdial, calling_window=WINDOW,
                                  dnclist_ids=[dnclist["id"]])
    await set_status(api, campaign, "run")
    cases = [
        ({"destination_0": NEW_YORK}, "outside_calling_window"),
        ({"destination_0": NEW_YORK, "timezone": "Asia/Tokyo"}, "outside_calling_window"),
        ({"destination_0": LONDON}, "dnc"),  # open zone, listed number
        ({**EVERY_FIELD, "destination_0": {"type": "tel", "target": "+442071838751"}},
         "dialable"),
    ]
    for body, reason in cases:
        target = await post_and_get(api, outdial["id"], body)
        assert target["waiting_reason"] == reason, body
    # The counts the database keeps in the INSERT's transaction see every one of them.
    stats = (await api.get(f"/v1.0/outdials/{outdial['id']}/stats?reasons=true")).json()
    assert stats["targets"] == stats["idle"] == len(cases)
    assert {r: n for r, n in stats["waiting_reasons"].items() if n} == {
        "outside_calling_window": 2, "dnc": 1, "dialable": 1}
