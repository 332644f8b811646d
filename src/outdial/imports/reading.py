"""Reading an upload while it arrives: CSV, NDJSON or a JSON array, cut into chunks of rows.

Only a chunk of rows and one partial record are held at a time, however large the upload.
Rows are numbered from 1 in file order (a CSV header and blank lines are not rows).
"""

import codecs
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from outdial.errors import InvalidArgument

MEDIA_TYPES = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/json": "json"}
CHUNK_ROWS = 5000
# A single CSV record, NDJSON line or array element longer than this is refused: it bounds the
# memory one unterminated quote or bracket can make the reader hold.
MAX_RECORD_CHARS = 4 * 1024 * 1024
ROW_FIELDS = ("name", "detail", "data") + tuple(f"destination_{n}" for n in range(5))
MALFORMED = "INVALID_IMPORT_FILE"


@dataclass
class Chunk:
    """Rows not yet checked: CSV cells (with the header), NDJSON lines, or decoded objects."""

    format: str
    rows: list[tuple[int, Any]]
    header: list[str] | None = None


def media_format(content_type: str) -> str:
    """The import format a Content-Type names; anything else is refused."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if media not in MEDIA_TYPES:
        raise InvalidArgument(
            "Content-Type",
            f"{content_type or 'nothing'!r} is not an import format (one of: {', '.join(MEDIA_TYPES)})",
            "UNSUPPORTED_CONTENT_TYPE",
        )
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise InvalidArgument("Content-Type", "an import must be UTF-8", "UNSUPPORTED_CONTENT_TYPE")
    return MEDIA_TYPES[media]


def malformed(row: int, problem: str) -> InvalidArgument:
    return InvalidArgument("body", f"row {row}: {problem}" if row else problem, MALFORMED)


async def read_chunks(format: str, stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    reader = {"csv": _csv_chunks, "ndjson": _ndjson_chunks, "json": _json_array_chunks}[format]
    async for chunk in reader(stream):
        yield chunk


async def _text(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, bool]]:
    """UTF-8 text as it arrives (a leading BOM dropped); the last piece is marked final."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        async for data in stream:
            if data:
                yield decoder.decode(data), False
        yield decoder.decode(b"", final=True), True
    except UnicodeDecodeError as error:
        raise malformed(0, f"the file is not UTF-8 ({error.reason} at byte {error.start})") from None


# -- CSV --------------------------------------------------------------------------------------

async def _csv_chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    header: list[str] | None = None
    carry = ""
    row = 0
    rows: list[tuple[int, Any]] = []
    async for piece, final in _text(stream):
        text = carry + piece
        if final:
            block, carry = text, ""
        else:
            # Cut after the last newline that ends a record: RFC 4180 doubles quotes inside
            # quoted fields, so a record ends where the count of quotes so far is even.
            cut = text.rfind("\n") + 1
            block, carry = text[:cut], text[cut:]
            if block.count('"') % 2:
                block, carry = "", text
            if len(carry) > MAX_RECORD_CHARS:
                raise malformed(row + 1, f"a record is longer than {MAX_RECORD_CHARS} characters "
                                         "(or a quoted field is never closed)")
        if not block:
            continue
        try:
            for record in csv.reader(io.StringIO(block), strict=True):
                if not record or record == [""]:
                    continue
                if header is None:
                    header = _csv_header(record)
                    continue
                row += 1
                rows.append((row, record))
                if len(rows) >= CHUNK_ROWS:
                    yield Chunk("csv", rows, header)
                    rows = []
        except csv.Error as error:
            raise malformed(row + 1, f"not valid CSV: {error}") from None
    if rows:
        yield Chunk("csv", rows, header)


def _csv_header(record: list[str]) -> list[str]:
    header = [name.strip().lower() for name in record]
    if not any(name.startswith("destination_") for name in header):
        raise malformed(0, "the CSV header must name the columns, with at least one of "
                           "destination_0..destination_4 (and optionally name, detail, data)")
    return header


# -- NDJSON -----------------------------------------------------------------------------------

async def _ndjson_chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    """Lines are handed on undecoded: the checking workers decode them, off this process."""
    carry = b""
    row = 0
    rows: list[tuple[int, Any]] = []
    async for data in stream:
        lines = (carry + data).split(b"\n")
        carry = lines.pop()
        if len(carry) > MAX_RECORD_CHARS:
            raise malformed(row + 1, f"a line is longer than {MAX_RECORD_CHARS} bytes")
        for line in lines:
            if line.strip():
                row += 1
                rows.append((row, line))
        if len(rows) >= CHUNK_ROWS:
            yield Chunk("ndjson", rows)
            rows = []
    if carry.strip():
        row += 1
        rows.append((row, carry))
    if rows:
        yield Chunk("ndjson", rows)


# -- JSON array -------------------------------------------------------------------------------

_SPACE = re.compile(r"[ \t\n\r]*")


async def _json_array_chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    decoder = json.JSONDecoder()
    buffer, position = "", 0
    state = "start"  # start → first → element ⇄ after → end
    row = 0
    rows: list[tuple[int, Any]] = []
    async for piece, final in _text(stream):
        buffer = buffer[position:] + piece
        position = 0
        while True:
            position = _SPACE.match(buffer, position).end()  # type: ignore[union-attr]
            if position == len(buffer):
                break
            char = buffer[position]
            if state == "start":
                if char != "[":
                    raise malformed(0, "a JSON import must be an array of row objects")
                position, state = position + 1, "first"
            elif state in ("first", "after") and char == "]":
                position, state = position + 1, "end"
            elif state == "after":
                if char != ",":
                    raise malformed(row, "expected ',' or ']' after this row")
                position, state = position + 1, "element"
            elif state in ("first", "element"):
                try:
                    value, end = decoder.raw_decode(buffer, position)
                except json.JSONDecodeError as error:
                    if final:
                        raise malformed(row + 1, f"not valid JSON: {error.msg}") from None
                    break  # the element may continue in the next piece
                if end == len(buffer) and not final:
                    break  # a number at the very end may yet have more digits
                row += 1
                rows.append((row, value))
                position, state = end, "after"
                if len(rows) >= CHUNK_ROWS:
                    yield Chunk("json", rows)
                    rows = []
            else:
                raise malformed(row, "data after the end of the array")
        if len(buffer) - position > MAX_RECORD_CHARS:
            raise malformed(row + 1, f"an element is longer than {MAX_RECORD_CHARS} characters")
    if state != "end":
        raise malformed(row + 1 if row else 0, "the JSON array is not closed with ']'")
    if rows:
        yield Chunk("json", rows)
