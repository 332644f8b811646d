"""One outdial, one running campaign — held where targets are claimed, not only at create — and
a campaign whose outdial is deleted under it stops."""

import asyncio
import uuid
from typing import Any

from outdial.clock import FakeClock
from outdial.dialers import OutcomeKind
from outdial.models import Campaign, Outdial
from tests.conftest import Api, assert_error
from tests.engine_support import HangingDialer, make_campaign, make_engine, scripted_dialer, tel
from tests.integration.campaign_setup import NIL, new_campaign, new_outdial, new_outplan, new_target


async def set_status(api: Api, campaign: dict[str, Any], status: str) -> Any:
    return await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": status})


async def status_of(api: Api, campaign: dict[str, Any]) -> str:
    return (await api.get(f"/v1.0/campaigns/{campaign['id']}")).json()["status"]


async def link(api: Api, outdial: dict[str, Any], campaign_id: str) -> Any:
    return await api.put(f"/v1.0/outdials/{outdial['id']}/campaign_id",
                         json={"campaign_id": campaign_id})


async def two_campaigns_on_one_outdial(api: Api) -> tuple[dict, dict, dict]:
    """A and B both pointing at one outdial (possible once A let go of it), neither running;
    the outdial names B."""
    outdial = await new_outdial(api)
    await new_target(api, outdial["id"])
    first = await new_campaign(api, outdial=outdial)
    assert (await link(api, outdial, NIL)).status_code == 200
    second = await new_campaign(api, outdial=outdial)
    return outdial, first, second


# -- the API -------------------------------------------------------------------------------------


async def test_the_outdial_of_a_running_campaign_cannot_be_unlinked_or_given_away(api: Api) -> None:
    outdial, first, second = await two_campaigns_on_one_outdial(api)
    await link(api, outdial, first["id"])
    assert (await set_status(api, first, "run")).json()["status"] == "run"

    assert_error(await link(api, outdial, NIL), 409, "OUTDIAL_CAMPAIGN_RUNNING")
    assert_error(await link(api, outdial, second["id"]), 409, "OUTDIAL_CAMPAIGN_RUNNING")
    assert_error(await set_status(api, second, "run"), 409, "OUTDIAL_IN_USE")
    assert await status_of(api, second) == "stop"
    # Linking it to the campaign already running on it changes nothing and is allowed.
    assert (await link(api, outdial, first["id"])).status_code == 200

    # Stopped, the outdial is free again.
    await set_status(api, first, "stop")
    assert (await link(api, outdial, second["id"])).status_code == 200
    assert (await set_status(api, second, "run")).json()["status"] == "run"


async def test_a_running_campaign_cannot_move_to_another_outdial(api: Api) -> None:
    outdial = await new_outdial(api)
    campaign = await new_campaign(api, outdial=outdial)
    await set_status(api, campaign, "run")
    elsewhere = await new_outdial(api)
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/resource_info", json={
        "outplan_id": campaign["outplan_id"], "outdial_id": elsewhere["id"]})
    assert_error(response, 409, "CAMPAIGN_NOT_STOPPED")
    assert (await api.get(f"/v1.0/outdials/{outdial['id']}")).json()["campaign_id"] == campaign["id"]


async def test_two_campaigns_started_at_once_on_one_outdial_one_runs(api: Api) -> None:
    for _ in range(3):
        outdial, first, second = await two_campaigns_on_one_outdial(api)
        await link(api, outdial, NIL)  # free: each would take it back on `run`
        answers = await asyncio.gather(set_status(api, first, "run"), set_status(api, second, "run"))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert_error(refused, 409, "OUTDIAL_IN_USE")
        assert sorted([await status_of(api, first), await status_of(api, second)]) == ["run", "stop"]


async def test_unlinking_and_starting_at_once_never_leaves_two_running(api: Api) -> None:
    """Racing the old bypass: unlink the outdial of a running campaign while another starts."""
    for _ in range(3):
        outdial, first, second = await two_campaigns_on_one_outdial(api)
        await link(api, outdial, first["id"])
        await set_status(api, first, "run")
        await asyncio.gather(link(api, outdial, NIL), set_status(api, second, "run"))
        statuses = [await status_of(api, first), await status_of(api, second)]
        assert statuses == ["run", "stop"]


async def test_deleting_the_outdial_of_a_running_campaign_stops_it(
    api: Api, app: Any, clock: FakeClock
) -> None:
    idle = await new_campaign(api)
    await set_status(api, idle, "run")
    assert (await api.delete(f"/v1.0/outdials/{idle['outdial_id']}")).status_code == 200
    assert await status_of(api, idle) == "stop"  # nothing in flight: at once

    outdial = await new_outdial(api)
    await new_target(api, outdial["id"])
    busy = await new_campaign(api, outdial=outdial)
    await set_status(api, busy, "run")
    dialer = HangingDialer()
    engine = make_engine(app.state.database, dialer, clock)
    assert await engine.step() == 1
    assert (await api.delete(f"/v1.0/outdials/{outdial['id']}")).status_code == 200
    assert await status_of(api, busy) == "stopping"  # its attempt in flight ends first
    dialer.release(OutcomeKind.BUSY)
    await engine.wait_dials()
    await engine.record()
    assert await engine.step() == 0
    assert await status_of(api, busy) == "stop"
    # A deleted outplan cannot happen under a running campaign: it is refused while in use.
    plan = await new_outplan(api)
    running = await new_campaign(api, outplan=plan)
    await set_status(api, running, "run")
    assert_error(await api.delete(f"/v1.0/outplans/{plan['id']}"), 409, "OUTPLAN_IN_USE")


# -- the engine, whatever was written to the database ----------------------------------------------


async def test_the_engine_claims_nothing_for_a_campaign_its_outdial_no_longer_names(
    database: Any, clock: FakeClock
) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    await scenario.update(Outdial, scenario.outdial_id, campaign_id=uuid.UUID(int=0))
    engine = make_engine(database, scripted_dialer(), clock)

    assert await engine.step() == 0
    assert await scenario.calls() == []
    assert (await scenario.campaign()).status == "stop"


async def test_the_engine_stops_a_campaign_whose_outdial_or_outplan_was_deleted(
    database: Any, clock: FakeClock
) -> None:
    from outdial.models import Outplan

    for model in (Outdial, Outplan):
        scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]],
                                       end_handle="continue")
        dialer = HangingDialer()
        engine = make_engine(database, dialer, clock)
        await scenario.add_target(tel("+15550000002"))
        assert await engine.step() == 2
        row_id = scenario.outdial_id if model is Outdial else scenario.outplan_id
        await scenario.update(model, row_id, tm_delete=clock.now())

        assert await engine.step() == 0
        assert (await scenario.campaign()).status == "stopping"
        dialer.release()
        await engine.wait_dials()
        await engine.record()
        await engine.step()
        assert (await scenario.campaign()).status == "stop"
        await scenario.update(Campaign, scenario.campaign_id, tm_delete=clock.now())
