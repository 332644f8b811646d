"""Do-not-call lists: checked at each claim, expiry, applies_to_all, normalisation, the
waiting reason, and the lists' API (tenancy, validation, one entry per value)."""

import asyncio
import datetime as dt
import uuid

import pytest

from outdial.models import Campaign, DncEntry, Dnclist
from outdial.strategy import dnc, reasons
from outdial.timestamps import written
from tests.conftest import Api, assert_error, make_tenant
from tests.engine_support import database  # noqa: F401 - fixture
from tests.engine_support import make_campaign, make_engine, run_round, scripted_dialer, tel
from tests.integration.campaign_setup import new_campaign
from tests.integration.test_import_jobs import StalledUpload

A, B, C = tel("+12125550101"), tel("+12125550102"), tel("+12125550103")


async def new_list(scenario, *, applies_to_all=False, named=True) -> uuid.UUID:
    dnclist = Dnclist(id=uuid.uuid4(), customer_id=scenario.customer_id, name="dnc",
                      applies_to_all=applies_to_all, tm_create=scenario.clock.now())
    async with scenario.database.transaction() as session:
        session.add(dnclist)
    if named:
        campaign = await scenario.campaign()
        await scenario.update(Campaign, scenario.campaign_id,
                              dnclist_ids=[*campaign.dnclist_ids, str(dnclist.id)])
    return dnclist.id


async def add_entry(scenario, list_id, written, region=None, expire=None) -> None:
    kind, value = dnc.entry_value(written, region)
    async with scenario.database.transaction() as session:
        session.add(DncEntry(id=uuid.uuid4(), customer_id=scenario.customer_id, dnclist_id=list_id,
                             type=kind, value=value, tm_expire=expire, tm_create=scenario.clock.now()))


async def test_an_entry_added_mid_campaign_counts_from_the_next_claim(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A]], max_try_counts=(1, 1, 0, 0, 0))
    clock.advance(1)
    await scenario.add_target(B, C)  # due after the first
    list_id = await new_list(scenario)
    engine = make_engine(database, scripted_dialer(), clock, claim_batch=1)
    assert await run_round(engine) == 1  # the first target, dialed
    # Written another way than the target's destination: the same number.
    await add_entry(scenario, list_id, "(212) 555-0102", region="US")
    # The second target's next destination is listed: that is why it waits.
    async with database.transaction() as session:
        outdial = await session.get(reasons.Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, clock.now())
        waiting = await reasons.waiting_of(session, s, [scenario.target_ids[1]])
    assert waiting[scenario.target_ids[1]].reason == "dnc"
    assert waiting[scenario.target_ids[1]].detail == str(list_id)

    assert await run_round(engine) == 1  # B passed over as dnc, C dialed at once
    calls = await scenario.calls(scenario.target_ids[1])
    assert sorted((c.destination_index, c.outcome, c.channel_type) for c in calls) == [
        (0, "dnc", ""), (1, "answered", "simulated")]
    target = await scenario.target(scenario.target_ids[1])
    assert target.first_slot == 1 and target.try_count_0 == 0 and target.status == "done"


async def test_a_target_whose_every_destination_is_listed_is_done_undialed(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A, B]], max_try_counts=(2, 2, 0, 0, 0))
    list_id = await new_list(scenario)
    await add_entry(scenario, list_id, A["target"])
    await add_entry(scenario, list_id, B["target"])
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 0
    assert [c.outcome for c in await scenario.calls()] == ["dnc", "dnc"]
    target = await scenario.target(scenario.target_ids[0])
    assert target.status == "done" and (target.try_count_0, target.try_count_1) == (0, 0)
    assert (await scenario.campaign()).status == "stop"  # nothing left: end_handle stop


async def test_an_expired_entry_no_longer_counts(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A], [B]])
    list_id = await new_list(scenario)
    await add_entry(scenario, list_id, A["target"], expire=clock.now() - dt.timedelta(seconds=1))
    await add_entry(scenario, list_id, B["target"], expire=clock.now() + dt.timedelta(hours=1))
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 1
    outcomes = {c.outdial_target_id: c.outcome for c in await scenario.calls()}
    assert outcomes == {scenario.target_ids[0]: "answered", scenario.target_ids[1]: "dnc"}


async def test_lists_applying_to_all_count_without_being_named(database, clock) -> None:
    scenario = await make_campaign(database, clock, targets=[[A], [B], [C]])
    for_all = await new_list(scenario, applies_to_all=True, named=False)
    unnamed = await new_list(scenario, named=False)
    await add_entry(scenario, for_all, A["target"])
    await add_entry(scenario, unnamed, B["target"])
    # Another customer's list that applies to all never counts here.
    other = await make_campaign(database, clock)
    theirs = await new_list(other, applies_to_all=True, named=False)
    await add_entry(other, theirs, C["target"])
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 2
    outcomes = {c.outdial_target_id: c.outcome for c in await scenario.calls()}
    assert outcomes == {scenario.target_ids[0]: "dnc", scenario.target_ids[1]: "answered",
                        scenario.target_ids[2]: "answered"}


# Letters that Python's str.lower, PostgreSQL's lower() (by locale) and SQLite's built-in
# lower() each treat their own way: final sigma, dotted capital I, capital sharp s, the Kelvin
# sign, a title-case digraph, "I" (dotless under a Turkish locale).
TRICKY_CASES = ("ΟΔΥΣΣΕΑΣ@example.gr", "οδυσσεας@example.gr", "İLKER@example.com.tr",
                "STRAẞE@example.de", "\u212aelvin@example.com", "\u01c5ungla@example.com",
                "INFO@EXAMPLE.COM")


def test_normalised_values_are_one_rule_in_python_and_sql() -> None:
    assert dnc.entry_value("+1 (212) 555-0101") == ("tel", "+12125550101")
    assert dnc.entry_value("212.555.0101", "US") == ("tel", "+12125550101")
    assert dnc.entry_value("Alice@Example.COM") == ("email", "alice@example.com")
    assert dnc.entry_value("SIPS:Bob@Host.Example") == ("sip", "sip:bob@host.example")
    assert dnc.entry_value({"type": "sip", "target": "Bob@host.example"}) == (
        "sip", "sip:bob@host.example")


async def test_sql_and_python_normalise_alike(database, clock) -> None:
    addresses = [A, {"type": "email", "target": "Ann@Example.com"},
                 {"type": "email", "target": "JÖRG.ÅSE@Example.com"},
                 *({"type": "email", "target": t} for t in TRICKY_CASES),
                 {"type": "sip", "target": "sips:Bob@Host.example"},
                 {"type": "sip", "target": "carol@host.example"},
                 {"type": "sip", "target": "SIP:dave@host.example:5060"}]
    scenario = await make_campaign(database, clock, targets=[[a] for a in addresses])
    from sqlalchemy import select
    async with database.transaction() as session:
        rows = (await session.execute(select(
            reasons.TARGETS.c.destination_0, dnc.value_sql(reasons.TARGETS.c.destination_0))
            .where(reasons.TARGETS.c.outdial_id == scenario.outdial_id))).all()
    assert sorted(v for _, v in rows) == sorted(dnc.normalised(d) for d, _ in rows)


@pytest.mark.parametrize(("target", "entry"), [
    # SQLite's built-in lower() folds ASCII letters only: the target's value was `jÖrg@…`, and
    # the listed person was mailed.
    ("JÖRG@example.com", "jörg@Example.com"),
    # Python's str.lower and PostgreSQL's lower() disagreed on these: the entry's key ended in
    # "ς" (or began "i" and a combining dot), the target's in "σ" (or "i"). And "ς" and "σ"
    # are one letter in two cases.
    ("ΟΔΥΣΣΕΑΣ@example.gr", "ΟΔΥΣΣΕΑΣ@example.gr"),
    ("ΟΔΥΣΣΕΑΣ@example.gr", "οδυσσεας@example.gr"),
    ("İLKER@example.com.tr", "İlker@example.com.tr"),
    ("STRAẞE@example.de", "straße@example.de"),
    ("sip:ΟΔΥΣΣΕΑΣ@Host.example", "SIPS:οδυσσεας@host.example"),
])
async def test_an_entry_matches_a_destination_written_in_other_case_beyond_ascii(
    database, clock, target, entry
) -> None:
    kind = "sip" if target.startswith("sip:") else "email"
    written = {**tel(""), "type": kind, "target": target}
    scenario = await make_campaign(database, clock, targets=[[written], [A]])
    list_id = await new_list(scenario)
    await add_entry(scenario, list_id, entry)
    async with database.transaction() as session:
        outdial = await session.get(reasons.Outdial, scenario.outdial_id)
        s = await reasons.situation(session, outdial, clock.now())
        assert (await reasons.reason_counts(session, s))["dnc"] == 1
        waiting = await reasons.waiting_of(session, s, [scenario.target_ids[0]])
    assert waiting[scenario.target_ids[0]].reason == "dnc"
    engine = make_engine(database, scripted_dialer(), clock)
    assert await run_round(engine) == 1
    outcomes = {c.outdial_target_id: c.outcome for c in await scenario.calls()}
    assert outcomes == {scenario.target_ids[0]: "dnc", scenario.target_ids[1]: "answered"}


# -- the API ---------------------------------------------------------------------------------


async def test_dnclists_and_entries_over_the_api(api: Api) -> None:
    created = (await api.post("/v1.0/dnclists", json={"name": "registry",
                                                      "applies_to_all": True})).json()
    assert created["applies_to_all"] is True
    url = f"/v1.0/dnclists/{created['id']}/entries"
    first = await api.post(url, json={"value": "+1 212 555 0101",
                                      "tm_expire": "2027-01-01T00:00:00Z"})
    assert first.status_code == 200, first.text
    assert first.json()["value"] == "+12125550101" and first.json()["type"] == "tel"
    assert first.json()["tm_expire"] == "2027-01-01 00:00:00.000000"
    # The same number written the national way is the same entry.
    again = await api.post(url, json={"value": "(212) 555-0101", "default_region": "US"})
    assert_error(again, 409, "DNC_ENTRY_EXISTS")
    email = (await api.post(url, json={"value": "Alice@Example.com"})).json()
    assert email["value"] == "alice@example.com"
    page = (await api.get(url, params={"page_size": 1})).json()
    assert len(page["result"]) == 1 and page["next_page_token"]
    rest = (await api.get(url, params={"page_token": page["next_page_token"]})).json()
    assert {e["value"] for e in page["result"] + rest["result"]} == {
        "+12125550101", "alice@example.com"}
    deleted = await api.delete(f"{url}/{email['id']}")
    assert deleted.status_code == 200
    assert len((await api.get(url)).json()["result"]) == 1
    renamed = (await api.put(f"/v1.0/dnclists/{created['id']}", json={"name": "r2"})).json()
    assert renamed["name"] == "r2" and renamed["applies_to_all"] is False
    gone = (await api.delete(f"/v1.0/dnclists/{created['id']}")).json()
    assert gone["tm_delete"] != "9999-01-01 00:00:00.000000"


async def test_entries_are_found_by_their_value_however_it_is_written(api: Api, app, clock) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    tel = (await api.post(url, json={"value": "+1 212 555 0101"})).json()
    email = (await api.post(url, json={"value": "Alice@Example.com"})).json()
    await api.post(url, json={"value": "+12125550102"})

    async def found(**params: str) -> list[str]:
        response = await api.get(url, params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["result"]]

    assert await found(value="+12125550101") == [tel["id"]]
    assert await found(value="(212) 555-0101", default_region="us") == [tel["id"]]
    assert await found(value="ALICE@example.com") == [email["id"]]
    assert await found(value="+12125550199") == []
    for params, field in [({"value": "212 555 0101"}, "value"),
                          ({"value": "+12125550101", "default_region": "XX"}, "default_region")]:
        error = assert_error(await api.get(url, params=params), 400, "INVALID_ARGUMENT")
        assert field in error["message"], (params, error)
    # Another customer's list is not searched.
    intruder = await make_tenant(app, clock, "other")
    assert (await api.get(url, params={"value": "+12125550101"}, token=intruder)).status_code == 404


async def test_a_value_whose_entry_expired_can_be_listed_again(api: Api, clock) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    first = await api.post(url, json={"value": "+12125550199",
                                      "tm_expire": written(clock.now() + dt.timedelta(days=1))})
    assert first.status_code == 200, first.text
    clock.advance(2 * 86400)
    # Expired: the person opts out again. Refused as a duplicate, they would stay dialable.
    again = await api.post(url, json={"value": "(212) 555-0199", "default_region": "US"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["tm_expire"] == "9999-01-01 00:00:00.000000"  # in force, no expiry
    [listed] = (await api.get(url, params={"value": "+12125550199"})).json()["result"]
    assert listed["tm_expire"] == "9999-01-01 00:00:00.000000"
    # In force: a duplicate.
    assert_error(await api.post(url, json={"value": "+12125550199"}), 409, "DNC_ENTRY_EXISTS")


async def test_an_import_lists_again_a_value_whose_entry_expired(api: Api, clock) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    soon = written(clock.now() + dt.timedelta(days=1))
    expired = (await api.post(url, json={"value": "+12125550199", "tm_expire": soon})).json()
    kept = (await api.post(url, json={"value": "+12125550198"})).json()
    clock.advance(2 * 86400)
    # A registry sent again after its entries ran out: the person is listed again, not counted
    # a duplicate of the entry that no longer lists them.
    upload = "value,tm_expire\n(212) 555-0199,\n(212) 555-0198,\n+12125550197,\n"
    job = (await api.post(f"/v1.0/dnclists/{dnclist['id']}/imports", content=upload.encode(),
                          params={"default_region": "US"},
                          headers={"content-type": "text/csv"})).json()
    assert job["status"] == "done", job
    assert (job["rows_imported"], job["rows_duplicate"]) == (2, 1)
    entries = {e["value"]: e for e in (await api.get(url)).json()["result"]}
    assert sorted(entries) == ["+12125550197", "+12125550198", "+12125550199"]
    assert entries["+12125550199"]["id"] != expired["id"]
    assert entries["+12125550199"]["tm_expire"] == "9999-01-01 00:00:00.000000"  # in force
    assert entries["+12125550198"] == kept


async def test_an_import_and_an_add_renewing_one_expired_entry_at_once_list_it_once(
    api: Api, clock
) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    soon = written(clock.now() + dt.timedelta(days=1))
    assert (await api.post(url, json={"value": "+12125550199", "tm_expire": soon})).status_code \
        == 200
    clock.advance(2 * 86400)
    upload = b"value\n+12125550199\n+12125550197\n"
    imported, added = await asyncio.gather(
        api.post(f"/v1.0/dnclists/{dnclist['id']}/imports", content=upload,
                 headers={"content-type": "text/csv"}),
        api.post(url, json={"value": "+12125550199"}))
    # Whichever comes second finds the value listed: the import counts it a duplicate, or the
    # add is refused as one, or (the two interleaved) the import fails whole as a conflict,
    # asking for the file again. Never listed twice, never lost, never a 500.
    job = imported.json()
    assert added.status_code in (200, 409), added.text
    if imported.status_code != 200:
        assert_error(imported, 409, "IMPORT_CONFLICT")
        assert added.status_code == 200
    elif added.status_code == 200:
        assert (job["rows_imported"], job["rows_duplicate"]) == (1, 1), job
    else:
        assert_error(added, 409, "DNC_ENTRY_EXISTS")
        assert (job["rows_imported"], job["rows_duplicate"]) == (2, 0), job
    [entry] = (await api.get(url, params={"value": "+12125550199"})).json()["result"]
    assert entry["tm_expire"] == "9999-01-01 00:00:00.000000"


async def test_an_entry_renewed_while_an_import_runs_fails_the_import_as_a_conflict(
    api: Api, clock
) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    soon = written(clock.now() + dt.timedelta(days=1))
    assert (await api.post(url, json={"value": "+12125550199", "tm_expire": soon})).status_code \
        == 200
    clock.advance(2 * 86400)
    # The import has read that the entry expired; the add renews it before the import's rows
    # land. The import must not replace an entry in force: it fails whole, changing nothing.
    stalled = StalledUpload("value\n+12125550197\n", "+12125550199\n")
    importing = asyncio.create_task(api.post(
        f"/v1.0/dnclists/{dnclist['id']}/imports", content=stalled,
        headers={"content-type": "text/csv"}))
    await asyncio.wait_for(stalled.sent.wait(), 10)
    renewed = await api.post(url, json={"value": "+12125550199"})
    assert renewed.status_code == 200, renewed.text
    stalled.release.set()
    error = assert_error(await asyncio.wait_for(importing, 30), 409, "IMPORT_CONFLICT")
    assert "send the file again" in error["message"], error
    [job] = (await api.get(f"/v1.0/dnclists/{dnclist['id']}/imports")).json()["result"]
    assert (job["status"], job["rows_imported"]) == ("failed", 0), job
    assert [e["value"] for e in (await api.get(url)).json()["result"]] == ["+12125550199"]
    [entry] = (await api.get(url, params={"value": "+12125550199"})).json()["result"]
    assert entry == renewed.json()


async def test_bad_entries_and_references_are_refused_naming_the_field(api: Api, app, clock) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    unquoted = assert_error(await api.post(url, json={"value": 12125550123}), 400,
                            "INVALID_ARGUMENT")
    assert unquoted["message"].startswith("value: must be a phone number, SIP URI or email "
                                          "address as a string"), unquoted
    for body, field in [({"value": "not a number"}, "value"), ({"value": ""}, "value"),
                        ({"value": None}, "value"), ({"value": [1]}, "value"),
                        ({"value": "212 555 0101"}, "value: '212 555 0101' is not a valid E.164"),
                        ({"value": "+12125550101", "tm_expire": "soon"}, "tm_expire"),
                        ({"value": "+12125550101", "tm_expire": 5}, "tm_expire: must be a "
                         "timestamp string, or empty for never"),  # as an import's row says
                        ({"value": "+12125550101", "tm_expire": written(clock.now())},
                         "tm_expire"),
                        ({"value": "+12125550101", "default_region": "XX"}, "default_region")]:
        error = assert_error(await api.post(url, json=body), 400, "INVALID_ARGUMENT")
        assert field in error["message"], (body, error)
    # A campaign names lists that exist, of its own customer.
    intruder = await make_tenant(app, clock, "other")
    theirs = (await api.post("/v1.0/dnclists", json={}, token=intruder)).json()
    response = await api.post("/v1.0/campaigns", json={"dnclist_ids": [dnclist["id"], theirs["id"]]})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert "dnclist_ids.1" in error["message"]
    campaign = await new_campaign(api, dnclist_ids=[dnclist["id"]], priority="fresh_first")
    assert campaign["dnclist_ids"] == [dnclist["id"]] and campaign["priority"] == "fresh_first"
    error = assert_error(await api.put(f"/v1.0/campaigns/{campaign['id']}",
                                       json={"priority": "oldest"}), 400, "INVALID_ARGUMENT")
    assert "priority" in error["message"]
    # A list deleted since: the campaign still names it (it applies no more), and a client
    # that sends back what it read is not refused for it; a deleted list is not newly named.
    await api.delete(f"/v1.0/dnclists/{dnclist['id']}")
    read = (await api.get(f"/v1.0/campaigns/{campaign['id']}")).json()
    assert read["dnclist_ids"] == [dnclist["id"]]
    sent_back = await api.put(f"/v1.0/campaigns/{campaign['id']}", json={
        "name": "renamed", "dnclist_ids": read["dnclist_ids"]})
    assert sent_back.status_code == 200, sent_back.text
    assert sent_back.json()["dnclist_ids"] == [dnclist["id"]]
    another = await new_campaign(api)
    error = assert_error(await api.put(f"/v1.0/campaigns/{another['id']}", json={
        "dnclist_ids": [dnclist["id"]]}), 400, "INVALID_ARGUMENT")
    assert "dnclist_ids.0" in error["message"]
    # Their lists and entries are not ours to see.
    assert (await api.get(f"/v1.0/dnclists/{theirs['id']}/entries")).status_code == 404
    assert (await api.get("/v1.0/dnclists", token=intruder)).json()["result"] == [theirs]


async def test_two_adds_of_one_value_at_once_make_one_entry(api: Api) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    answers = await asyncio.gather(api.post(url, json={"value": "+12125550199"}),
                                   api.post(url, json={"value": "+1 212-555-0199"}))
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert len((await api.get(url)).json()["result"]) == 1


async def test_two_adds_renewing_one_expired_entry_at_once_renew_it_once(api: Api, clock) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={})).json()
    url = f"/v1.0/dnclists/{dnclist['id']}/entries"
    soon = written(clock.now() + dt.timedelta(days=1))
    first = await api.post(url, json={"value": "+12125550199", "tm_expire": soon})
    clock.advance(2 * 86400)
    later = written(clock.now() + dt.timedelta(days=30))
    answers = await asyncio.gather(api.post(url, json={"value": "+12125550199"}),
                                   api.post(url, json={"value": "+12125550199",
                                                       "tm_expire": later}))
    assert sorted(a.status_code for a in answers) == [200, 409]
    [renewed] = [a.json() for a in answers if a.status_code == 200]
    assert renewed["id"] == first.json()["id"]
    assert (await api.get(url)).json()["result"] == [renewed]


async def test_retry_rules_over_the_api(api: Api) -> None:
    rules = {"busy": {"interval": 120000, "max_tries": 3, "next": "retry", "backoff": 2},
             "rejected": {"interval": 0, "next": "finish"}}
    outplan = (await api.post("/v1.0/outplans", json={"retry_rules": rules})).json()
    assert outplan["retry_rules"] == {
        "busy": {"interval": 120000, "max_tries": 3, "next": "retry", "backoff": 2.0},
        "rejected": {"interval": 0, "max_tries": None, "next": "finish", "backoff": None}}
    assert (await api.get(f"/v1.0/outplans/{outplan['id']}")).json()["retry_rules"] == \
        outplan["retry_rules"]
    for bad, field in [({"answered": {"interval": 0}}, "retry_rules.answered"),
                       ({"busy": {"interval": -1}}, "retry_rules.busy.interval"),
                       ({"busy": {"max_tries": 3}}, "retry_rules.busy.interval: is required"),
                       ({"busy": {"interval": 1, "max_tries": 0}}, "retry_rules.busy.max_tries"),
                       ({"busy": {"interval": 1, "next": "later"}}, "retry_rules.busy.next"),
                       ({"busy": {"interval": 1, "backoff": 0.5}}, "retry_rules.busy.backoff"),
                       ({"busy": {"interval": 1, "every": 2}}, "retry_rules.busy.every"),
                       ([], "retry_rules")]:
        response = await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info",
                                 json={"retry_rules": bad})
        error = assert_error(response, 400, "INVALID_ARGUMENT")
        assert field in error["message"], (bad, error)
    kept = (await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info", json={})).json()
    assert kept["retry_rules"] == outplan["retry_rules"]
    cleared = (await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info",
                             json={"retry_rules": None})).json()
    assert cleared["retry_rules"] is None


async def test_import_and_export_of_a_list(api: Api) -> None:
    dnclist = (await api.post("/v1.0/dnclists", json={"name": "registry"})).json()
    base = f"/v1.0/dnclists/{dnclist['id']}"
    assert (await api.post(f"{base}/entries", json={"value": "+12125550101"})).status_code == 200
    upload = ("value,tm_expire,note\n"
              "(212) 555-0101,,already on the list\n"
              "+1 212 555 0102,2027-06-30T00:00:00Z,\n"
              "212.555.0102,,twice in the file\n"
              "Alice@Example.com,,\n"
              "sips:Bob@Host.example,,\n"
              "not a number,,\n"
              "+12125550103,someday,\n"
              "+12125550104,2020-01-01T00:00:00Z,expired already\n")
    response = await api.post(f"{base}/imports", params={"default_region": "US"},
                              content=upload.encode(), headers={"content-type": "text/csv"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "done" and job["dnclist_id"] == dnclist["id"]
    assert job["outdial_id"] == "00000000-0000-0000-0000-000000000000"
    assert (job["rows_total"], job["rows_imported"], job["rows_duplicate"], job["rows_rejected"]) \
        == (8, 3, 2, 3)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [
        (6, "value"), (7, "tm_expire"), (8, "tm_expire")]
    assert "2020-01-01 00:00:00.000000 UTC has passed" in job["errors"][2]["message"]
    assert (await api.get(f"{base}/imports/{job['id']}")).json()["status"] == "done"
    assert [j["id"] for j in (await api.get(f"{base}/imports")).json()["result"]] == [job["id"]]
    errors = (await api.get(f"{base}/imports/{job['id']}/errors")).text
    assert errors.splitlines()[0] == "row,field,message" and len(errors.splitlines()) == 4

    exported = (await api.get(f"{base}/entries/export")).text
    lines = exported.splitlines()
    assert lines[0] == "value,tm_expire,type,id,tm_create"
    assert sorted(line.split(",")[:2] for line in lines[1:]) == [
        ["+12125550101", ""], ["+12125550102", "2027-06-30 00:00:00.000000"],
        ["alice@example.com", ""], ["sip:bob@host.example", ""]]
    # What is exported imports back unchanged into another list.
    other = (await api.post("/v1.0/dnclists", json={})).json()
    again = (await api.post(f"/v1.0/dnclists/{other['id']}/imports", content=exported.encode(),
                            headers={"content-type": "text/csv"})).json()
    assert again["rows_imported"] == 4 and again["rows_rejected"] == 0
    ndjson = (await api.get(f"/v1.0/dnclists/{other['id']}/entries/export",
                            params={"format": "ndjson"})).text
    import json
    assert sorted((e["value"], e["tm_expire"]) for e in map(json.loads, ndjson.splitlines())) == [
        ("+12125550101", None), ("+12125550102", "2027-06-30 00:00:00.000000"),
        ("alice@example.com", None), ("sip:bob@host.example", None)]
    # An NDJSON file, and a CSV without a value column.
    third = (await api.post("/v1.0/dnclists", json={})).json()
    job = (await api.post(f"/v1.0/dnclists/{third['id']}/imports", content=ndjson.encode(),
                          headers={"content-type": "application/x-ndjson"})).json()
    assert job["rows_imported"] == 4
    refused = await api.post(f"/v1.0/dnclists/{third['id']}/imports", content=b"number\n+1212\n",
                             headers={"content-type": "text/csv"})
    assert "value" in assert_error(refused, 400, "INVALID_IMPORT_FILE")["message"]
    # A column named twice: one of the two would be dropped unsaid.
    refused = await api.post(f"/v1.0/dnclists/{third['id']}/imports",
                             content=b"value,value\n+12125550103,+12125550104\n",
                             headers={"content-type": "text/csv"})
    assert "names the column 'value' twice" in assert_error(
        refused, 400, "INVALID_IMPORT_FILE")["message"]



async def test_an_entry_whose_type_its_form_would_not_tell_exports_and_imports_back(api: Api) -> None:
    # `+15559876543@example.com` is an email address, yet reads as a phone number by its form:
    # the entry's `type`, which the export writes beside the value, says which it is.
    dnclist = (await api.post("/v1.0/dnclists", json={"name": "mixed"})).json()
    base = f"/v1.0/dnclists/{dnclist['id']}"
    email = "+15559876543@example.com"
    added = await api.post(f"{base}/entries", json={"value": email, "type": "email"})
    assert added.status_code == 200, added.text
    assert (added.json()["type"], added.json()["value"]) == ("email", email)
    wrong = await api.post(f"{base}/entries", json={"value": "+15559876543", "type": "email"})
    assert assert_error(wrong, 400, "INVALID_ARGUMENT")["message"].startswith("value: ")
    unknown = await api.post(f"{base}/entries", json={"value": "+15559876543", "type": "fax"})
    assert assert_error(unknown, 400, "INVALID_ARGUMENT")["message"].startswith('type: "fax"')
    assert (await api.post(f"{base}/entries", json={"value": "+15559876543", "type": ""})
            ).json()["type"] == "tel"

    for format, content_type in (("csv", "text/csv"), ("ndjson", "application/x-ndjson")):
        exported = (await api.get(f"{base}/entries/export", params={"format": format})).text
        other = (await api.post("/v1.0/dnclists", json={})).json()
        job = (await api.post(f"/v1.0/dnclists/{other['id']}/imports", content=exported.encode(),
                              headers={"content-type": content_type})).json()
        assert (job["rows_imported"], job["rows_rejected"]) == (2, 0), job
        entries = (await api.get(f"/v1.0/dnclists/{other['id']}/entries")).json()["result"]
        assert sorted((e["type"], e["value"]) for e in entries) == [
            ("email", email), ("tel", "+15559876543")]

    rows = "value,type\n+15559876544@example.com,email\n+15559876545,fax\n+15559876546,\n"
    job = (await api.post(f"{base}/imports", content=rows.encode(),
                          headers={"content-type": "text/csv"})).json()
    assert (job["rows_imported"], job["rows_rejected"]) == (2, 1)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [(2, "type")]
