"""Fuzzed: whatever the value rules accept goes through JSON and the database and comes back
equal, and serves as a response; the API's bodies accept exactly what the rules accept."""

import asyncio
import json
import math
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from outdial.auth.service import AuthService
from outdial.campaigns.schemas import Action, CampaignOut
from outdial.clock import FakeClock
from outdial.db import Database
from outdial.models import Campaign, Outdial
from outdial.outdials.schemas import OutdialCreate, OutdialOut
from outdial.validation import MAX_JSON_DEPTH, decode_json, json_problem, text_problem
from tests import databases

# Any code point, lone surrogates and NUL included, with the surrogate range and its edges often.
characters = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010, exclude_categories=()),
    st.sampled_from(["\x00", "\U0001F600", "é", "\\", '"', "\n"]),
)
texts = st.text(characters, max_size=40)
scalars = st.one_of(
    st.none(), st.booleans(), texts,
    st.integers(), st.integers(-(2**63), 2**63 - 1),
    st.floats(), st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)), max_leaves=25)


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    """An action's option: an object, sometimes nested around the depth limit."""
    option = draw(st.dictionaries(texts, json_values, max_size=5))
    for _ in range(draw(st.sampled_from([0, 0, 0, MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH - 1]))):
        option = {"a": option}
    return option


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 and 1.0 differ, -0.0 and 0.0 do not."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


class Store:
    """A migrated database with one customer, driven from synchronous hypothesis examples."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.database = Database(url)
        self.clock = FakeClock()
        self.customer_id = self.runner.run(self._customer())

    async def _customer(self) -> uuid.UUID:
        from outdial.migrations import upgrade_database

        await upgrade_database(self.database)
        async with self.database.transaction() as session:
            return (await AuthService(session, self.clock).create_customer("fuzz")).id

    def round_trip(self, name: str, data: str, option: dict[str, Any]) -> tuple[Outdial, Campaign]:
        return self.runner.run(self._round_trip(name, data, option))

    async def _round_trip(self, name: str, data: str, option: dict[str, Any]) -> tuple[Outdial, Campaign]:
        outdial = Outdial(id=uuid.uuid4(), customer_id=self.customer_id, name=name, detail=name,
                          data=data, tm_create=self.clock.now())
        campaign = Campaign(id=uuid.uuid4(), customer_id=self.customer_id, name=name,
                            actions=[{"type": "talk", "option": option}], tm_create=self.clock.now())
        async with self.database.transaction() as session:
            session.add_all([outdial, campaign])
        async with self.database.sessions() as session:
            read_outdial = await session.get(Outdial, outdial.id)
            read_campaign = await session.get(Campaign, campaign.id)
        assert read_outdial is not None and read_campaign is not None
        return read_outdial, read_campaign

    def close(self) -> None:
        self.runner.run(self.database.dispose())
        self.runner.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        shutil.copy(migrated_sqlite, tmp_path / "outdial.db")
        url = f"sqlite+aiosqlite:///{tmp_path / 'outdial.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        asyncio.run(databases.truncate_postgres(url))
    made = Store(url)
    yield made
    made.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=texts, data=st.text(characters, max_size=300), option=options())
def test_what_the_rules_accept_reads_back_equal(store: Store, name: str, data: str,
                                                option: dict[str, Any]) -> None:
    # The API's bodies apply exactly these rules.
    text_ok = text_problem("name", name) is None and text_problem("data", data) is None
    option_ok = json_problem(option) is None
    try:
        OutdialCreate.model_validate({"name": name, "detail": name, "data": data})
    except ValidationError:
        assert not text_ok
    else:
        assert text_ok
    try:
        Action.model_validate({"type": "talk", "option": option})
    except ValidationError:
        assert not option_ok
    else:
        assert option_ok
    assume(text_ok and option_ok)

    # JSON, as the API and the export write it, decodes back to the same value.
    for encoded in (json.dumps(option), json.dumps(option, ensure_ascii=False).encode()):
        assert same(decode_json(encoded), option)

    # The database gives it back equal, and the responses that serve it encode.
    outdial, campaign = store.round_trip(name, data, option)
    assert (outdial.name, outdial.detail, outdial.data) == (name, name, data)
    assert same(campaign.actions, [{"type": "talk", "option": option}])
    served = json.loads(CampaignOut.of(campaign).model_dump_json().encode())
    assert same(served["actions"][0]["option"], option)
    assert json.loads(OutdialOut.of(outdial).model_dump_json().encode())["data"] == data
