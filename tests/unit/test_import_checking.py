"""Cutting uploads into chunks and checking them, without a server: the shapes the fast paths
take must be exactly those of the general ones."""

import asyncio
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from outdial.errors import InvalidArgument
from outdial.imports import reading
from outdial.imports.checking import (
    TEL_JSON,
    RowRules,
    _destination,
    check_chunk,
    decode_targets,
)
from outdial.imports.ids import MAX_CHUNK_ROWS, MAX_CHUNKS, chunk_ids, new_salt
from outdial.imports.reading import Chunk, read_chunks
from outdial.outdials.destinations import validate_destination

RULES = RowRules(import_id=uuid.uuid4(), customer_id=uuid.uuid4(), outdial_id=uuid.uuid4(),
                 tm_create=dt.datetime(2024, 5, 1, 12, 0, 0), default_region="US",
                 require_valid=False, dedupe=True, encoding="rows", id_salt=new_salt())


def test_bare_e164_cell_is_stored_as_the_general_path_stores_it() -> None:
    address = validate_destination(0, "+15559876543", from_import=True)
    assert TEL_JSON % "+15559876543" == json.dumps(address)


@pytest.mark.parametrize("cell", [
    "(212) 555-1234", "212.555.1234 ", "212 555 12", "(212) 555-12345678901", "1 (212) 555-1234",
    "0212 555 1234", "011 44 20 7946 0958", "12",
])
@pytest.mark.parametrize("require_valid", [False, True])
def test_national_cell_is_stored_or_refused_as_the_general_path_does(
    cell: str, require_valid: bool
) -> None:
    rules = dataclasses.replace(RULES, require_valid=require_valid)
    try:
        address = validate_destination(2, cell, from_import=True, default_region="US",
                                       require_valid=require_valid)
    except InvalidArgument as error:
        expected: Any = (error.field, error.problem)
    else:
        expected = (json.dumps(address), int(address["target"][1:]), address["target"])
    try:
        stored, key, reached = _destination(2, cell, rules)
        got: Any = (stored, key, reached["target"])
    except InvalidArgument as error:
        got = (error.field, error.problem)
    assert got == expected


def test_import_ids_are_version_4_uuids_in_file_order() -> None:
    started = dt.datetime(2026, 11, 28, 0, 30, 5, 999_999)
    salt = new_salt()
    ids = [i for sequence in range(3) for i in chunk_ids(started, salt, sequence, 5000)]
    assert len(set(ids)) == len(ids) == 15_000
    assert ids == sorted(ids)  # rows 1..5000 of chunk 0, then chunk 1, then chunk 2
    for value in ids[:3] + ids[-3:]:
        parsed = uuid.UUID(value)
        assert (parsed.hex, parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)
    # An import started a second later sorts after; one started the same second stays apart.
    later = chunk_ids(started + dt.timedelta(seconds=1), new_salt(), 0, 1)
    assert later[0] > ids[-1]
    assert not set(chunk_ids(started, salt ^ 1, 0, 5000)) & set(ids)


def test_import_ids_refuse_a_chunk_they_cannot_number() -> None:
    started = dt.datetime(2026, 11, 28)
    last_chunk = chunk_ids(started, (1 << 40) - 1, MAX_CHUNKS - 1, 2)
    assert last_chunk[0] < last_chunk[1] < chunk_ids(started + dt.timedelta(seconds=1), 0, 0, 1)[0]
    with pytest.raises(ValueError):
        chunk_ids(started, 0, 0, MAX_CHUNK_ROWS)
    with pytest.raises(ValueError):
        chunk_ids(started, 0, MAX_CHUNKS, 1)


@pytest.mark.parametrize("format", ["csv", "ndjson", "json"])
def test_checked_rows_get_ids_in_file_order(format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", 256)
    monkeypatch.setattr(reading, "CHUNK_ROWS", 7)
    rows = [{"name": f"n{i}", "destination_0": f"+1555{i:07d}"} for i in range(100)]
    data = {
        "csv": ("name,destination_0\n" + "".join(f"{r['name']},{r['destination_0']}\n" for r in rows)),
        "ndjson": "".join(json.dumps(r) + "\n" for r in rows),
        "json": json.dumps(rows),
    }[format].encode()
    chunks = chunks_of(format, data, 100)
    assert [c.sequence for c in chunks] == list(range(len(chunks))) and len(chunks) > 3
    ids, names = [], []
    for chunk in chunks:
        checked = check_chunk(chunk, RULES)
        ids += checked.target_ids
        names += [t[3] for t in decode_targets(checked.targets, "rows")]
        assert [t[0] for t in decode_targets(checked.targets, "rows")] == checked.target_ids
    assert names == [r["name"] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 100


@pytest.mark.parametrize("format", ["csv", "ndjson"])
def test_a_large_piece_is_cut_into_bounded_blocks(format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """However the upload arrives (here in one piece), a chunk holds what imports.ids can number."""
    monkeypatch.setattr(reading, "CHUNK_BYTES", 64)
    monkeypatch.setattr(reading, "BLOCK_LIMIT", 200)
    header = "name,destination_0\n" if format == "csv" else ""
    line = "x,+15550001111\n" if format == "csv" else '{"destination_0": "+15550001111"}\n'
    data = (header + line * 1000).encode()
    chunks = chunks_of(format, data, len(data))
    assert all(len(c.data) <= 200 for c in chunks)
    assert sum(check_chunk(c, RULES).rows for c in chunks) == 1000
    assert b"".join(c.data for c in chunks) == data[len(header):]


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def chunks_of(format: str, data: bytes, size: int) -> list[Chunk]:
    async def read() -> list[Chunk]:
        return [chunk async for chunk in read_chunks(format, pieces(data, size))]
    return asyncio.run(read())


CSV = ('\ufeffname,destination_0\n' + '\n"multi\nline, ""quoted""",+15559876543\n'
       'odd,"(212) 555-0100"\n\nshort\nbad,+1\n' * 40).encode()


@pytest.mark.parametrize("piece", [7, 100, 100_000])
def test_csv_cut_anywhere_gives_the_same_rows_numbered_in_file_order(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", 64)
    rows, errors, names, start = 0, [], [], 0
    for chunk in chunks_of("csv", CSV, piece):
        assert chunk.header == ["name", "destination_0"]
        checked = check_chunk(chunk, RULES)
        assert checked.malformed is None
        names += [(rows + n, t[3]) for n, t in zip(checked.numbers, decode_targets(checked.targets, "rows"))]
        errors += [(rows + n, field) for n, field, _ in checked.errors]
        rows += checked.rows
        assert chunk.start >= start
        start = chunk.start
    assert rows == 4 * 40  # blank lines are no rows
    assert names[:2] == [(1, 'multi\nline, "quoted"'), (2, "odd")]
    assert errors[:2] == [(3, ""), (4, "destination_0.target")]


def test_a_bad_byte_is_reported_with_its_position() -> None:
    chunk = chunks_of("csv", b"destination_0\n+15559876543\n\xff\n", 100)[0]
    checked = check_chunk(chunk, RULES)
    assert checked.malformed is not None and "at byte 27" in checked.malformed[1]


def test_a_header_without_destinations_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        chunks_of("csv", b"\n\nname\nx\n", 3)


def test_ndjson_lines_are_numbered_without_blank_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "CHUNK_BYTES", 50)
    data = b'{"destination_0": "+15559876543"}\n\n[1]\n{"destination_0": "+15559876543"}\n' * 5
    rows, errors, duplicates = 0, [], 0
    for chunk in chunks_of("ndjson", data, 9):
        checked = check_chunk(chunk, RULES)
        errors += [rows + n for n, _, _ in checked.errors]
        duplicates += len(checked.keys)
        rows += checked.rows
    assert rows == 15
    assert errors == [2, 5, 8, 11, 14]
    assert duplicates == 10  # keys are returned for the server to dedupe across chunks
