"""Every event type is written exactly when its change commits, by the API, the engine and
imports alike, and never when the change rolls back; its data is the resource as the API
returns it."""

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from outdial.channels.service import ChannelService
from outdial.clock import FakeClock
from outdial.db import Database
from outdial.dialers import OutcomeKind
from outdial.dialers.base import Outcome
from outdial.engine import repository as engine_repo
from outdial.events.outbox import EVENTS
from outdial.models import Campaign
from tests.conftest import Api, make_tenant
from tests.engine_support import make_campaign, make_engine, run_round, scripted_dialer, tel
from tests.integration.campaign_setup import new_campaign, new_outdial, new_target


async def all_events(database: Database) -> list[Any]:
    async with database.transaction() as session:
        return list((await session.execute(select(EVENTS).order_by(EVENTS.c.id))).all())


async def events_of(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1.0/events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


# -- the engine -----------------------------------------------------------------------------


async def test_an_attempt_that_is_answered_then_ends(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    engine = make_engine(database, scripted_dialer(), clock)
    await engine.step()
    events = await all_events(database)
    assert [e.type for e in events] == ["outdialtarget_updated", "campaigncall_created"]
    target, created = events[0].data, events[1].data
    assert target["status"] == "progressing" and target["try_count_0"] == 1
    assert created["status"] == "dialing" and created["outdial_target_id"] == target["id"]
    assert created["sip_code"] == 0 and created["tm_end"] == "9999-01-01 00:00:00.000000"

    await engine.wait_dials()
    await engine.record()
    events = (await all_events(database))[2:]
    assert [e.type for e in events] == ["campaigncall_updated", "outdialtarget_updated"]
    ended = events[0].data
    assert ended["status"] == "done" and ended["outcome"] == "answered"
    assert ended["result"] == "success"
    assert events[1].data["status"] == "done"
    assert {e.customer_id for e in await all_events(database)} == {scenario.customer_id}

    # The data is what the API's GET answers.
    calls = await scenario.calls()
    from outdial.campaigns.schemas import CampaigncallOut
    assert ended == CampaigncallOut.of(calls[0]).model_dump(mode="json")

    # The campaign has nothing left: the engine stops it, and says so.
    await engine.step()
    last = (await all_events(database))[-1]
    assert last.type == "campaign_updated" and last.data["status"] == "stop"
    assert last.data["id"] == str(scenario.campaign_id)


async def test_answer_then_end_with_sip_code_and_digits(database: Database, clock: FakeClock) -> None:
    await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    answered = asyncio.Event()
    finish = asyncio.Event()

    async def dial(attempt: Any) -> Outcome:
        attempt.answered()
        answered.set()
        await finish.wait()
        return Outcome(OutcomeKind.ANSWERED, sip_code=200, digits="1#")

    from outdial.dialers import MockDialer
    engine = make_engine(database, MockDialer(dial), clock)
    await engine.step()
    await answered.wait()
    await engine.record()
    talking = (await all_events(database))[-1]
    assert talking.type == "campaigncall_updated" and talking.data["status"] == "progressing"
    finish.set()
    await engine.wait_dials()
    await engine.record()
    ended = [e for e in await all_events(database) if e.type == "campaigncall_updated"][-1]
    assert ended.data["status"] == "done"
    assert ended.data["sip_code"] == 200 and ended.data["digits"] == "1#"


async def test_a_claim_that_rolls_back_writes_no_event(database: Database, clock: FakeClock) -> None:
    scenario = await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            claimed = await engine_repo.take_turn(
                session, scenario.campaign_id, worker_id="w", now=clock.now(),
                lease_seconds=30, most=10,
            )
            assert claimed
            raise RuntimeError("the claim fails before its commit")
    assert await all_events(database) == []


async def test_reaped_attempts_are_events_too(database: Database, clock: FakeClock) -> None:
    await make_campaign(database, clock, targets=[[tel("+15550000001")]],
                        max_try_counts=(2, 0, 0, 0, 0))
    engine = make_engine(database, scripted_dialer(), clock, lease_seconds=30)
    async with database.transaction() as session:
        campaign_id = (await session.scalars(select(Campaign.id))).one()
        await engine_repo.take_turn(session, campaign_id, worker_id="dead", now=clock.now(),
                                    lease_seconds=30, most=10)
    clock.advance(31)
    assert await engine.reap_if_due() == 1
    types = [(e.type, e.data["status"]) for e in (await all_events(database))[2:]]
    assert types == [("campaigncall_updated", "done"), ("outdialtarget_updated", "idle")]


async def test_engine_events_follow_the_time_format(database: Database, clock: FakeClock) -> None:
    await make_campaign(database, clock, targets=[[tel("+15550000001")]])
    engine = make_engine(database, scripted_dialer(), clock, time_format="rfc3339")
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop))
    for _ in range(500):
        if len(await all_events(database)) >= 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await runner
    created = next(e for e in await all_events(database) if e.type == "campaigncall_created")
    assert created.data["tm_end"] is None and created.data["tm_create"].endswith("Z")


async def test_emission_costs_one_event_per_change_in_a_batch(database: Database, clock: FakeClock) -> None:
    await make_campaign(database, clock, targets=[[tel(f"+1555000{n:04d}")] for n in range(30)],
                        concurrency=30, dial_rate=30)
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 30
    counts: dict[str, int] = {}
    for event in await all_events(database):
        counts[event.type] = counts.get(event.type, 0) + 1
    assert counts == {"outdialtarget_updated": 60, "campaigncall_created": 30,
                      "campaigncall_updated": 30}


# -- the API --------------------------------------------------------------------------------


async def test_campaign_status_changes_and_edits(api: Api, clock: FakeClock) -> None:
    outdial = await new_outdial(api)
    await new_target(api, outdial["id"])
    campaign = await new_campaign(api, outdial=outdial)
    assert await events_of(api) == []  # creating is not a change of an existing resource
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "run"})
    assert response.status_code == 200, response.text
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "stop"})
    assert response.status_code == 200, response.text
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/service_level",
                             json={"service_level": 50})
    assert response.status_code == 200, response.text
    events = await events_of(api)
    assert [(e["type"], e["data"]["status"]) for e in events] == [
        ("campaign_updated", "run"), ("campaign_updated", "stop"), ("campaign_updated", "stop")]
    assert events[2]["data"] == response.json()  # exactly the API's answer
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert set(events[0]) == {"id", "type", "customer_id", "tm_create", "data"}


async def test_a_refused_change_writes_no_event(api: Api) -> None:
    campaign = await new_campaign(api)  # no target, no channel: it may still run or not
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "nope"})
    assert response.status_code == 400
    response = await api.put(f"/v1.0/campaigns/{campaign['id']}/service_level",
                             json={"service_level": -1})
    assert response.status_code == 400
    assert await events_of(api) == []


async def test_target_edits_and_deletes(api: Api) -> None:
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    path = f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}"
    response = await api.put(path, json={"name": "renamed",
                                         "destination_0": {"type": "tel", "target": "+15550001111"}})
    assert response.status_code == 200, response.text
    edited = response.json()
    response = await api.delete(path)
    assert response.status_code == 200, response.text
    events = await events_of(api, type="outdialtarget_updated")
    assert [e["data"] for e in events] == [edited, response.json()]


async def test_campaigncall_delete(api: Api, app: Any, clock: FakeClock) -> None:
    from tests.integration.campaign_setup import insert_campaigncall
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    campaign = await new_campaign(api, outdial=outdial)
    call_id = await insert_campaigncall(app, clock, campaign, target, status="done")
    response = await api.delete(f"/v1.0/campaigncalls/{call_id}")
    assert response.status_code == 200, response.text
    events = await events_of(api)
    assert [(e["type"], e["data"]) for e in events] == [("campaigncall_updated", response.json())]


async def test_channel_check(api: Api, app: Any) -> None:
    response = await api.post("/v1.0/channels", json={
        "name": "sim", "type": "simulated", "settings": {}})
    assert response.status_code == 200, response.text
    channel = response.json()
    response = await api.post(f"/v1.0/channels/{channel['id']}/check")
    assert response.status_code == 200, response.text
    events = await events_of(api)
    assert [e["type"] for e in events] == ["channel_check_done"]
    assert events[0]["data"] == {"channel_id": channel["id"], **response.json()}


async def test_channel_check_not_committed_writes_nothing(api: Api, app: Any, clock: FakeClock) -> None:
    response = await api.post("/v1.0/channels", json={
        "name": "sim", "type": "simulated", "settings": {}})
    channel = response.json()
    from outdial.auth.service import Principal  # noqa: F401 - the service's caller
    async with app.state.database.sessions() as session:
        principal = await _principal(app, session, api)
        service = ChannelService(session, clock, app.state.channel_secrets)
        await service.check_channel(principal, uuid.UUID(channel["id"]))
        await session.rollback()
    assert await events_of(api) == []


async def _principal(app: Any, session: Any, api: Api) -> Any:
    from outdial.auth.service import AuthService
    return await AuthService(session, app.state.clock).authenticate(
        api.token, app.state.signing_secret)


async def test_import_done_and_failed(api: Api) -> None:
    outdial = await new_outdial(api)
    path = f"/v1.0/outdials/{outdial['id']}/imports"
    good = "destination_0\n+15550000001\nnot-a-number\n"
    response = await api.post(path, content=good.encode(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    done = response.json()
    response = await api.post(path, content=b"\xff\xff\xff", headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    events = await events_of(api, type="import_updated")
    assert [e["data"]["status"] for e in events] == ["done", "failed"]
    assert events[0]["data"] == done
    assert done["rows_imported"] == 1 and done["rows_rejected"] == 1


# -- reading ---------------------------------------------------------------------------------


async def test_list_paging_resume_and_type_filter(api: Api) -> None:
    outdial = await new_outdial(api)
    target = await new_target(api, outdial["id"])
    path = f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}"
    for n in range(5):
        response = await api.put(path, json={
            "name": f"n{n}", "destination_0": {"type": "tel", "target": "+15550001111"}})
        assert response.status_code == 200
    response = await api.get("/v1.0/events", params={"page_size": "2"})
    page = response.json()
    assert [e["data"]["name"] for e in page["result"]] == ["n0", "n1"]
    response = await api.get("/v1.0/events", params={"page_token": page["next_page_token"]})
    rest = response.json()
    assert [e["data"]["name"] for e in rest["result"]] == ["n2", "n3", "n4"]
    response = await api.get("/v1.0/events", params={"after": rest["next_page_token"]})
    assert response.json() == {"result": [], "next_page_token": ""}
    both = await events_of(api, type=["campaign_updated", "outdialtarget_updated"])
    assert len(both) == 5
    assert await events_of(api, type="campaign_updated,import_updated") == []


@pytest.mark.parametrize("params, field", [
    ({"type": "target_exploded"}, "type"),
    ({"type": "campaign_updated,nope"}, "type"),
    ({"after": "ten"}, "after"),
    ({"after": "-1"}, "after"),
    ({"page_token": "x"}, "page_token"),
])
async def test_bad_parameters_are_400_naming_the_field(api: Api, params: dict[str, str], field: str) -> None:
    for path in ("/v1.0/events", "/v1.0/events/stream"):
        if path.endswith("stream") and field == "page_token":
            continue
        response = await api.get(path, params=params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["reason"] == "INVALID_REQUEST_PARAMETER"
        assert error["message"].startswith(f"{field}:")


async def test_another_customers_events_are_never_visible(api: Api, app: Any, clock: FakeClock) -> None:
    other = Api(api.http, await make_tenant(app, clock, "other-tenant"))
    outdial = await new_outdial(other)
    target = await new_target(other, outdial["id"])
    response = await other.delete(f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}")
    assert response.status_code == 200
    assert len(await events_of(other)) == 1
    assert await events_of(api) == []
    assert await events_of(api, after="0", type="outdialtarget_updated") == []


async def test_events_need_a_credential(api: Api) -> None:
    response = await api.http.get("/v1.0/events")
    assert response.status_code == 401
    response = await api.http.get("/v1.0/events/stream")
    assert response.status_code == 401


# -- the stream, in process (the e2e test runs it over a real server and a restart) -----------


async def _stream(api: Api, app: Any, clock: FakeClock, **kwargs: Any) -> str:
    """The stream's body up to the server's stop: the clock moves past two heartbeats first."""
    request = asyncio.create_task(api.get("/v1.0/events/stream", **kwargs))
    for _ in range(40):  # the stream polls on the fake clock: move it on, look after look
        await asyncio.sleep(0.02)
        clock.advance(app.state.settings.events_poll_seconds)
        if request.done():
            break
    app.state.stopping = True  # as `outdial serve` does on SIGTERM: the stream ends
    for _ in range(1500):  # at its next look, whenever the stream reaches it
        if request.done():
            break
        clock.advance(app.state.settings.events_poll_seconds)
        await asyncio.sleep(0.02)
    response = await asyncio.wait_for(request, 1)
    app.state.stopping = False
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return response.text


def _sent(body: str) -> list[dict[str, Any]]:
    import json
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
                      and ": " in line)
        if "data" in fields:
            data = json.loads(fields["data"])
            assert fields["id"] == str(data["id"]) and fields["event"] == data["type"]
            events.append(data)
    return events


async def test_stream_resumes_after_last_event_id_for_its_customer_only(
    api: Api, app: Any, clock: FakeClock
) -> None:
    other = Api(api.http, await make_tenant(app, clock, "other-streamer"))
    for client in (api, other, api, api):
        outdial = await new_outdial(client)
        target = await new_target(client, outdial["id"])
        await client.delete(f"/v1.0/outdials/{outdial['id']}/targets/{target['id']}")
    mine = await events_of(api)
    assert len(mine) == 3
    body = await _stream(api, app, clock, headers={"Last-Event-ID": str(mine[0]["id"])})
    assert _sent(body) == mine[1:]
    assert body.startswith("retry: ")
    assert ": heartbeat" in body  # the clock passed the heartbeat period with nothing new
    assert _sent(await _stream(api, app, clock, params={"after": str(mine[1]["id"])})) == mine[2:]
    assert _sent(await _stream(api, app, clock, params={"type": "campaign_updated"})) == []


async def test_engines_prune_old_events_once_a_period(database: Database, clock: FakeClock) -> None:
    from outdial.events.outbox import emit_many
    scenario = await make_campaign(database, clock, targets=[], status="stop")
    old = clock.now()
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", scenario.customer_id, {})] * 5, now=old)
    engine = make_engine(database, scripted_dialer(), clock, events_retention_seconds=3600,
                         events_prune_batch=2, events_prune_seconds=60)
    assert await engine.prune_if_due() == 0  # none is older than an hour yet
    clock.advance(3601)
    assert await engine.prune_if_due() == 5  # in batches of two
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", scenario.customer_id, {})], now=old)
    clock.advance(30)
    assert await engine.prune_if_due() == 0  # pruned a moment ago: not again within the period
    clock.advance(30)
    async with database.transaction() as session:
        await emit_many(session, [("campaign_updated", scenario.customer_id, {"new": 1})],
                        now=clock.now())
    assert await engine.prune_if_due() == 1
    assert [e.data for e in await all_events(database)] == [{"new": 1}]
