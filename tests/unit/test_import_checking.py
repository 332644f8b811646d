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
    new_target_ids,
)
from outdial.imports.reading import Chunk, read_chunks
from outdial.outdials.destinations import validate_destination

RULES = RowRules(import_id=uuid.uuid4(), customer_id=uuid.uuid4(), outdial_id=uuid.uuid4(),
                 tm_create=dt.datetime(2024, 5, 1, 12, 0, 0), default_region="US",
                 require_valid=False, dedupe=True, encoding="rows")


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


def test_target_ids_are_random_version_4_uuids() -> None:
    ids = new_target_ids(1000)
    assert len(set(ids)) == 1000
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.hex, parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)


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
