"""The do-not-call fact (listed_until) of imported targets: on PostgreSQL the import sets it in
one statement before its commit instead of the row trigger (migration 0015); it must be what
the trigger would have stored, with entries or without, and engine writes that change no
destination must not run the upkeep at all."""

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text, update

from outdial.models import OutdialTarget
from outdial.strategy import reasons
from tests.conftest import Api, make_tenant
from tests.integration.test_imports import CSV, new_outdial, upload

FOREVER = dt.datetime(9999, 12, 31)


async def stored_facts(app: Any, outdial_id: str) -> dict[str, dt.datetime | None]:
    """listed_until of every target of the outdial, keyed on its first destination's number."""
    async with app.state.database.transaction() as session:
        rows = (await session.execute(
            select(OutdialTarget.destination_0, OutdialTarget.listed_until)
            .where(OutdialTarget.outdial_id == uuid.UUID(outdial_id)))).all()
    return {row.destination_0["target"]: reasons.as_datetime(row.listed_until) for row in rows}


async def add_entry(api: Api, list_id: str, value: str, expire: str | None = None,
                    token: str | None = None) -> None:
    body = {"value": value} if expire is None else {"value": value, "tm_expire": expire}
    response = await api.post(f"/v1.0/dnclists/{list_id}/entries", json=body,
                              **({"token": token} if token else {}))
    assert response.status_code == 200, response.text


async def new_list(api: Api, token: str | None = None) -> str:
    response = await api.post("/v1.0/dnclists", json={}, **({"token": token} if token else {}))
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def test_imported_targets_get_the_listed_until_of_their_entries(
        api: Api, app: Any, clock: Any) -> None:
    registry, other = await new_list(api), await new_list(api)
    await add_entry(api, registry, "+12125550101")                        # never expires
    await add_entry(api, registry, "+12125550103", "2027-01-01 00:00:00.000000")
    await add_entry(api, other, "+12125550103", "2027-06-01 00:00:00.000000")  # the later one
    await add_entry(api, registry, "ann@example.com", "2026-01-02 00:00:00.000000")
    clock.advance(2 * 86400)  # ann's entry has expired
    # Another customer's entry lists nobody of ours.
    theirs = await make_tenant(app, clock, "other")
    await add_entry(api, await new_list(api, token=theirs), "+12125550105", token=theirs)

    outdial = await new_outdial(api)
    body = ("destination_0,destination_1\n"
            "+12125550101,\n"
            "+12125550102,+12125550103\n"      # its second slot is listed
            "+12125550104,Ann@Example.com\n"   # normalised like the entry
            "+12125550105,\n"
            "(212) 555-0106,\n")
    job = (await upload(api, outdial, body, CSV, default_region="US")).json()
    assert job["status"] == "done" and job["rows_imported"] == 5, job
    assert await stored_facts(app, outdial) == {
        "+12125550101": FOREVER,
        "+12125550102": dt.datetime(2027, 6, 1),
        "+12125550104": dt.datetime(2026, 1, 2),
        "+12125550105": None,
        "+12125550106": None,
    }

    # What the import stored is what the triggers keep from then on.
    await add_entry(api, registry, "+12125550106")
    assert (await stored_facts(app, outdial))["+12125550106"] == FOREVER


async def test_an_import_for_a_customer_without_entries_lists_nobody(api: Api, app: Any) -> None:
    await new_list(api)  # a list, empty
    outdial = await new_outdial(api)
    job = (await upload(api, outdial, "destination_0\n+12125550101\n+12125550102\n", CSV)).json()
    assert job["status"] == "done" and job["rows_imported"] == 2, job
    assert await stored_facts(app, outdial) == {"+12125550101": None, "+12125550102": None}
    registry = await new_list(api)
    await add_entry(api, registry, "+12125550102")
    assert await stored_facts(app, outdial) == {"+12125550101": None, "+12125550102": FOREVER}


async def test_an_import_s_setting_does_not_outlive_its_transaction(api: Api, app: Any) -> None:
    """After an import, a target added through the API on any connection still gets its fact
    from the trigger."""
    registry = await new_list(api)
    await add_entry(api, registry, "+12125550101")
    outdial = await new_outdial(api)
    for _ in range(3):  # the import's connections go back to the pool
        job = (await upload(api, outdial, "destination_0\n+12125550199\n", CSV)).json()
        assert job["status"] == "done", job
    other = await new_outdial(api)
    response = await api.post(f"/v1.0/outdials/{other}/targets", json={
        "destination_0": {"type": "tel", "target": "+12125550101"}})
    assert response.status_code == 200, response.text
    assert await stored_facts(app, other) == {"+12125550101": FOREVER}


async def test_writes_that_change_no_destination_do_not_run_the_upkeep(api: Api, app: Any) -> None:
    """The engine's UPDATEs of targets (tries, times, status) leave the fact alone without
    computing it again: the trigger function is not even called (PostgreSQL counts the calls
    of the transaction in pg_stat_xact_user_functions)."""
    if app.state.database.is_sqlite:
        pytest.skip("SQLite's trigger fires on a changed destination only since 0014")
    outdial = await new_outdial(api)
    rows = "".join(f"+1212555{n:04d}\n" for n in range(50))
    assert (await upload(api, outdial, "destination_0\n" + rows, CSV)).json()["rows_imported"] == 50

    async def calls_of(statement: Any) -> int:
        async with app.state.database.transaction() as session:
            await session.execute(text("SET LOCAL track_functions = 'pl'"))
            await session.execute(statement)
            return await session.scalar(text(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions "
                "WHERE funcname LIKE 'outdial_targets_listed%'"))

    targets = update(OutdialTarget).where(OutdialTarget.outdial_id == uuid.UUID(outdial))
    assert await calls_of(targets.values(try_count_0=1, status="idle")) == 0
    assert await calls_of(targets.values(destination_0=OutdialTarget.destination_0)) == 0
    one = targets.where(OutdialTarget.destination_0["target"].as_string() == "+12125550007")
    assert await calls_of(one.values(destination_0={"type": "tel", "target": "+12125550107"})) == 1
