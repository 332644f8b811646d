"""PostgreSQL's export through COPY writes byte for byte what the Python exporter writes, for
awkward values, in both formats and both time formats, across batch boundaries."""

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, text

from outdial.db import Database
from outdial.models import Campaign, Campaigncall, Customer, Outdial, OutdialTarget, Outplan
from outdial.outdials import export
from outdial.timestamps import use_time_format

AWKWARD = [
    "", "plain", "comma, here", 'quote " here', "new\nline", "carriage\rreturn", "crlf\r\n",
    "tab\there", "back\\slash", "é unicode ñ", "emoji 😀 astral", "line\u2028separator",
    "del\x7fchar", "ctrl\x01\x1fchars", "\\N", "\\.", ' lead and trail ', '"', ",", "\\",
    "{\"json\": [1, 2]}", "x" * 300,
]

DESTINATIONS: list[Any] = [
    None,
    {"type": "tel", "target": "+15559876543"},
    {"type": "tel", "target": "+15559876543", "target_name": "", "name": "", "detail": ""},
    {"type": "email", "target": "+odd@example.com"},
    {"type": "sip", "target": "sip:a@example.com", "name": "desk, \"front\""},
    {"type": "email", "target": "Ünïcode@exämple.com"},
    {"type": "tel", "target": "+442079460018", "target_name": "Ann 😀"},
    {"type": "email", "target": "\u00a0pad@example.com"},
    {"type": "email", "target": "pad@example.com\u2003"},
    {"type": "email", "target": "{brace@example.com"},
    {"type": "sip", "target": "SIPS:upper@example.com"},
    {"type": "tel", "target": "no-type-inferred"},
    {"type": "email", "target": "tab\t@example.com", "detail": "new\nline"},
]

# Stored text as another writer may have left it: other key order, other spacing, escapes.
RAW_JSON = [
    '{"target":"+15550001111","type":"tel"}',
    '{ "type" : "email" , "target" : "caf\\u00e9@example.com" }',
    '{"type": "sip", "target": "sip:x@example.com", "name": "caf\u00e9"}',
    # Written as is only when that is what json.dumps would write: these are all near misses.
    '{"type": "tel", "target": "+15550001111", "name": null}',
    '{"type": "sip", "target": "sip:q@example.com", "name": "a\\", \\"b"}',
    '{"type": "tel", "target": "+15550002222", "tries": 3}',
    '{"type": "tel", "target": "+15550002222", "name": "n", "tries":3}',
    '{"type": "tel", "target": "+15550003333", "extra": {"k": "v"}}',
    '{"type": "tel", "target": "+15550003333", "extra": ["k", "v"]}',
    '{"type":"tel", "target": "+15550004444"}',
    '{"type": "tel",  "target": "+15550004444"}',
    '{"target": "nullable@example.com", "type": "email"}',
    '{"type": "email", "target": "del\u007f@example.com"}',
    '{"type": "tel", "target": "+15550005555", "name": "tab\\tand \\u0001"}',
]


async def situation(database: Database, outdial: uuid.UUID) -> Any:
    return await export.situation_of(database, outdial, dt.datetime(2026, 3, 4, 6, 0, 0))


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite exports through the Python path only")


async def seed(database: Database) -> uuid.UUID:
    now = dt.datetime(2026, 3, 4, 5, 6, 7, 0)
    customer, outdial = uuid.uuid4(), uuid.uuid4()
    async with database.transaction() as session:
        session.add(Customer(id=customer, name="c", detail="", tm_create=now))
        await session.flush()
        session.add(Outdial(id=outdial, customer_id=customer, tm_create=now))
        await session.flush()
        rows = []
        for i in range(60):
            rows.append({
                "id": uuid.uuid4(), "customer_id": customer, "outdial_id": outdial,
                "name": AWKWARD[i % len(AWKWARD)], "detail": AWKWARD[(i * 7) % len(AWKWARD)],
                "data": AWKWARD[(i * 5 + 3) % len(AWKWARD)],
                "status": ("idle", "progressing", "done")[i % 3],
                **{f"destination_{n}": DESTINATIONS[(i + n * 4) % len(DESTINATIONS)] for n in range(5)},
                **{f"try_count_{n}": (i + n) % 4 for n in range(5)},
                # Many rows share one instant, as an import gives them; microseconds vary.
                "tm_create": now + dt.timedelta(microseconds=(i // 7) * 1001),
                "tm_update": None if i % 4 == 0 else now + dt.timedelta(seconds=i, microseconds=i),
                "tm_delete": now if i % 11 == 10 else None,
            })
        await session.execute(insert(OutdialTarget.__table__), rows)
        # One done target was answered, the others were not: the export tells them apart.
        outplan = Outplan(id=uuid.uuid4(), customer_id=customer, tm_create=now)
        session.add(outplan)
        await session.flush()
        campaign = Campaign(id=uuid.uuid4(), customer_id=customer, outplan_id=outplan.id,
                            outdial_id=outdial, tm_create=now)
        session.add(campaign)
        await session.flush()
        answered = rows[2]
        assert answered["status"] == "done" and answered["tm_delete"] is None
        session.add(Campaigncall(
            id=uuid.uuid4(), customer_id=customer, campaign_id=campaign.id, outplan_id=outplan.id,
            outdial_id=outdial, outdial_target_id=answered["id"], status="done", result="success",
            destination_index=0, try_count=1, tm_create=now))
        live = [row for row in rows if row["tm_delete"] is None]
        for i, raw in enumerate(RAW_JSON):
            await session.execute(text(
                "UPDATE outdial_targets SET destination_3 = CAST(:raw AS json) WHERE id = :id"),
                {"raw": raw, "id": live[i * 2]["id"]})
    return outdial


async def collect(chunks: Any) -> bytes:
    pieces = [chunk async for chunk in chunks]
    assert all(type(piece) is bytes for piece in pieces)  # what a streamed response takes
    return b"".join(pieces)


@pytest.mark.parametrize("form", ["tutorial", "rfc3339"])
@pytest.mark.parametrize("format", ["csv", "ndjson"])
async def test_copy_export_is_byte_identical_to_the_python_export(
    database: Database, postgres_only: None, monkeypatch: pytest.MonkeyPatch, format: str, form: str
) -> None:
    outdial = await seed(database)
    monkeypatch.setattr(export, "COPY_BATCH_ROWS", 8)  # many batches, boundaries inside instants
    with use_time_format(form):  # type: ignore[arg-type]
        expected = await collect(export.python_export(database, outdial, format, await situation(database, outdial)))
        got = await collect(export.copy_export(database, outdial, format, await situation(database, outdial)))
    assert expected.count(b"\n") > 50
    if got != expected:  # show the first line that differs
        for mine, theirs in zip(got.split(b"\n"), expected.split(b"\n"), strict=False):
            assert mine == theirs
    assert got == expected
    if format == "ndjson":
        lines = [json.loads(line) for line in got.splitlines()]
        assert len(lines) == 60 - 5
        reasons = [line["waiting_reason"] for line in lines if line["status"] == "done"]
        assert reasons.count("answered") == 1 and "exhausted" in reasons


async def test_a_client_that_goes_away_leaves_the_pool_usable(
    database: Database, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    outdial = await seed(database)
    monkeypatch.setattr(export, "COPY_BATCH_ROWS", 4)
    stream = export.copy_export(database, outdial, "csv", await situation(database, outdial))
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert (await collect(export.copy_export(database, outdial, "csv", await situation(database, outdial)))) == (
        await collect(export.python_export(database, outdial, "csv", await situation(database, outdial))))


async def test_batches_run_ahead_at_once_and_arrive_in_order(
    database: Database, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPIES_AHEAD batches run at once, each on its own connection, and are written out in
    key order whichever finishes first: the lines equal the Python export's."""
    outdial = await seed(database)
    monkeypatch.setattr(export, "COPY_BATCH_ROWS", 5)
    running, most = 0, 0
    started = export._Copy._run

    async def counted(self: Any, database: Database, query: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await started(self, database, query)
        finally:
            running -= 1

    monkeypatch.setattr(export._Copy, "_run", counted)
    got = await collect(export.copy_export(database, outdial, "ndjson",
                                           await situation(database, outdial)))
    assert most == export.COPIES_AHEAD == 2
    assert got == await collect(export.python_export(database, outdial, "ndjson",
                                                     await situation(database, outdial)))


async def test_a_batch_that_fails_ends_the_export_with_its_error(
    database: Database, postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error of a batch running ahead reaches the reader when it comes to that batch (not
    a truncated export that looks complete), and every connection goes back to the pool."""
    import asyncpg

    outdial = await seed(database)
    monkeypatch.setattr(export, "COPY_BATCH_ROWS", 5)
    made = 0
    query_of = export.copy_query

    def third_fails(*args: Any) -> str:
        nonlocal made
        made += 1
        return "SELECT 1 / 0" if made == 3 else query_of(*args)

    monkeypatch.setattr(export, "copy_query", third_fails)
    lines = 0
    with pytest.raises(asyncpg.DivisionByZeroError):
        async for chunk in export.copy_export(database, outdial, "ndjson",
                                              await situation(database, outdial)):
            lines += chunk.count(b"\n")
    assert lines == 2 * 5  # the two batches before it
    monkeypatch.setattr(export, "copy_query", query_of)
    assert database.engine.pool.checkedout() == 0
    assert (await collect(export.copy_export(database, outdial, "csv", await situation(database, outdial)))) == (
        await collect(export.python_export(database, outdial, "csv", await situation(database, outdial))))


def test_a_sqlalchemy_expression_becomes_a_column_of_the_copy() -> None:
    from sqlalchemy import case, literal

    table = OutdialTarget.__table__
    reason = case((table.c.status == "done", literal("finished")), else_=literal("it's waiting"))
    column = export.Column("reason", lambda form: export.csv_cell(export.sql_text(reason)),
                           lambda form: export.json_string(export.sql_text(reason)))
    assert "'it''s waiting'" in column.csv("tutorial") and "outdial_targets.status" in column.json("rfc3339")


async def test_the_export_is_held_to_addresses_of_every_form(
    database: Database, postgres_only: None
) -> None:
    """The seed's addresses take each path of the COPY's address columns (destinations
    .address_forms): written with a known form through the model, and left unknown where an
    UPDATE that did not write the forms changed them (the RAW_JSON texts)."""
    outdial = await seed(database)
    async with database.sessions() as session:
        rows = (await session.execute(text(
            "SELECT address_forms, destination_3::text AS raw FROM outdial_targets "
            "WHERE outdial_id = :outdial"), {"outdial": outdial})).all()
    forms = {(row.address_forms >> 2 * n) & 3 for row in rows for n in range(5)}
    assert forms == {0, 1, 2, 3}
    for row in rows:
        if row.raw in RAW_JSON:
            assert (row.address_forms >> 6) & 3 == 0, row.raw


async def test_an_update_that_writes_the_forms_keeps_them(
    database: Database, postgres_only: None
) -> None:
    outdial = await seed(database)
    address = json.dumps({"type": "tel", "target": "+15550009999"})
    async with database.transaction() as session:
        target = (await session.execute(text(
            "SELECT id, address_forms FROM outdial_targets WHERE outdial_id = :outdial "
            "AND destination_0 IS NOT NULL AND address_forms & 3 <> 3 LIMIT 1"),
            {"outdial": outdial})).one()
        await session.execute(text(
            "UPDATE outdial_targets SET destination_0 = CAST(:address AS json), "
            "address_forms = address_forms | 3 WHERE id = :id"), {"address": address, "id": target.id})
        forms = (await session.execute(text(
            "SELECT address_forms FROM outdial_targets WHERE id = :id"), {"id": target.id})).scalar()
    assert forms == target.address_forms | 3
    for format in ("csv", "ndjson"):
        assert (await collect(export.copy_export(database, outdial, format, await situation(database, outdial)))) == (
            await collect(export.python_export(database, outdial, format, await situation(database, outdial))))
