"""OUTDIAL_TIME_FORMAT: the tutorial's timestamps and sentinel, or RFC 3339 with null, in
responses, page tokens and exports; either form is read back as a page token."""

import csv
import io
import json
import re
from typing import Any

import pytest

from outdial.clock import FakeClock
from outdial.settings import Settings
from tests.conftest import Api
from tests.integration.campaign_setup import (
    finish_campaigncall,
    insert_campaigncall,
    new_campaign,
    new_outdial,
    new_target,
)
from tests.integration.test_imports import NDJSON, upload

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
TUTORIAL = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}")
NEVER = "9999-01-01 00:00:00.000000"


@pytest.fixture(params=["tutorial", "rfc3339"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update={"time_format": request.param, "import_workers": 0})


def time_form(settings: Settings) -> tuple[re.Pattern[str], str | None]:
    """How a set time looks, and what an unset one is, in the app's time format."""
    return (RFC3339, None) if settings.time_format == "rfc3339" else (TUTORIAL, NEVER)


async def test_responses_write_set_times_and_unset_ones_in_the_format(
    api: Api, app: Any, clock: FakeClock, settings: Settings
) -> None:
    stamp, unset = time_form(settings)
    outdial = await new_outdial(api)
    assert stamp.fullmatch(outdial["tm_create"]) and outdial["tm_update"] == outdial["tm_delete"] == unset
    clock.advance(1.5)
    updated = (await api.put(f"/v1.0/outdials/{outdial['id']}", json={"name": "renamed"})).json()
    assert stamp.fullmatch(updated["tm_update"]) and updated["tm_delete"] == unset
    if settings.time_format == "rfc3339":
        assert updated["tm_create"] == "2026-01-01T12:00:00.000000Z"
        assert updated["tm_update"] == "2026-01-01T12:00:01.500000Z"

    campaign = await new_campaign(api)
    assert campaign["tm_update"] == campaign["tm_delete"] == unset
    target = await new_target(api, campaign["outdial_id"])
    assert stamp.fullmatch(target["tm_update"]) and target["tm_delete"] == unset
    call_id = await insert_campaigncall(app, clock, campaign, target)
    call = (await api.get(f"/v1.0/campaigncalls/{call_id}")).json()
    assert call["tm_end"] == call["tm_delete"] == unset
    await finish_campaigncall(app, clock, call_id)
    assert stamp.fullmatch((await api.get(f"/v1.0/campaigncalls/{call_id}")).json()["tm_end"])

    key = (await api.post("/v1.0/accesskeys", json={"name": "k"})).json()
    assert stamp.fullmatch(key["tm_expire"]) and key["tm_update"] == unset
    job = (await upload(api, outdial["id"], '{"destination_0": "+15559876543"}\n', NDJSON)).json()
    assert stamp.fullmatch(job["tm_create"]) and stamp.fullmatch(job["tm_end"])


async def test_page_tokens_are_in_the_format_and_page_without_skips_or_repeats(
    api: Api, clock: FakeClock, settings: Settings
) -> None:
    stamp, _ = time_form(settings)
    outdial = (await new_outdial(api))["id"]
    # Three targets in one instant (the token then carries an id), two in later ones.
    for _ in range(3):
        await new_target(api, outdial)
    for _ in range(2):
        clock.advance(ms=1)
        await new_target(api, outdial)
    path = f"/v1.0/outdials/{outdial}/targets"
    seen, token, tokens = [], "", []
    while True:
        page = (await api.get(path, params={"page_size": 1, "page_token": token})).json()
        if not page["result"]:
            assert page["next_page_token"] == ""
            break
        seen += [t["id"] for t in page["result"]]
        token = page["next_page_token"]
        tokens.append(token)
        assert stamp.fullmatch(token.partition("|")[0]), token
    assert len(seen) == len(set(seen)) == 5
    assert any("|" in t for t in tokens)


@pytest.mark.parametrize("written", ["2026-01-01 12:00:00.001000", "2026-01-01T12:00:00.001000Z",
                                     "2026-01-01T13:00:00.001+01:00"])
async def test_either_form_is_read_as_a_page_token(api: Api, clock: FakeClock, written: str) -> None:
    outdial = (await new_outdial(api))["id"]
    older = await new_target(api, outdial)
    clock.advance(ms=1)
    await new_target(api, outdial)
    page = (await api.get(f"/v1.0/outdials/{outdial}/targets", params={"page_token": written})).json()
    assert [t["id"] for t in page["result"]] == [older["id"]]


async def test_exports_write_times_in_the_format(api: Api, clock: FakeClock, settings: Settings) -> None:
    stamp, unset = time_form(settings)
    outdial = (await new_outdial(api))["id"]
    await new_target(api, outdial)
    lines = (await api.get(f"/v1.0/outdials/{outdial}/targets/export",
                           params={"format": "ndjson"})).text.splitlines()
    exported = json.loads(lines[0])
    assert stamp.fullmatch(exported["tm_create"]) and exported["tm_delete"] == unset
    rows = list(csv.DictReader(io.StringIO(
        (await api.get(f"/v1.0/outdials/{outdial}/targets/export")).text)))
    assert stamp.fullmatch(rows[0]["tm_create"]) and stamp.fullmatch(rows[0]["tm_update"])
