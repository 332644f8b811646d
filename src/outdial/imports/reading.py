"""Reading an upload while it arrives: CSV, NDJSON or a JSON array, cut into chunks of rows.

Only a chunk and one partial record are held at a time, however large the upload. CSV and
NDJSON are cut into blocks of whole records without being parsed here: the checking workers
decode and parse them (reading a CSV record costs more than cutting a block), so the serving
process does little per row. Rows are numbered from 1 in file order (a CSV header and blank
lines are not rows); a chunk's rows are numbered by its worker and offset when it lands.
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
from outdial.outdials.destinations import unknown_destination_keys
from outdial.validation import Refused, decode_json_at, end_of_json_value

MEDIA_TYPES = {"text/csv": "csv", "application/x-ndjson": "ndjson", "application/json": "json"}
# About 4,500 rows of CSV: big enough that handing a chunk to a worker costs little beside
# checking it, small enough that the few chunks in flight stay a few MB.
CHUNK_BYTES = 256 * 1024
CHUNK_ROWS = 5000  # JSON array elements per chunk (they arrive decoded)
# A single CSV record, NDJSON line or array element longer than this is refused: it bounds the
# memory one unterminated quote or bracket can make the reader hold.
MAX_RECORD_CHARS = 4 * 1024 * 1024
# The most a block of CSV or NDJSON records can hold: a record cannot be longer than
# MAX_RECORD_CHARS, so one ends within it.
BLOCK_LIMIT = MAX_RECORD_CHARS + 2 * CHUNK_BYTES
# The csv module refuses a field over 131,072 characters by default: the whole file would be
# refused for one long cell, which the API's limits reject as one row naming its field.
csv.field_size_limit(BLOCK_LIMIT)
ROW_FIELDS = ("name", "detail", "data") + tuple(f"destination_{n}" for n in range(5))
DESTINATION_COLUMNS = ROW_FIELDS[3:]
# The columns an import reads (of a target, of a do-not-call entry): each may appear once.
READ_COLUMNS = frozenset((*ROW_FIELDS, "timezone", "value", "tm_expire", "type"))
MALFORMED = "INVALID_IMPORT_FILE"
# CSV field separators recognised from the header, in order of preference.
DELIMITERS = (",", ";", "\t")
SEND_THE_FILE = ("send the file itself: curl --data-binary @FILE -H 'Content-Type: text/csv' "
                 "(or application/x-ndjson, application/json); curl -d strips its line breaks")
_BOM = codecs.BOM_UTF8
# A carriage return with more than white space after it on its line: the line ends of old Mac
# files (a CR before another CR or a newline is the white space of a CRLF file made twice).
_LONE_CR = re.compile(b"\r[ \t]*[^\\s]")
CR_ALONE = ("the file's lines end with a carriage return alone (CR, as old Mac files do); save "
            "it with LF or CRLF line ends")


@dataclass
class Chunk:
    """Rows not yet checked: the bytes of whole CSV records (with the header) or NDJSON lines,
    or decoded JSON array elements. `start` is the byte position of `data` in the upload."""

    format: str
    data: Any
    header: list[str] | None = None
    start: int = 0
    delimiter: str = ","  # CSV: the field separator the header uses
    sequence: int = 0  # the chunk's place in the upload, from 0 (imports.ids numbers rows by it)


def media_format(content_type: str) -> str:
    """The import format a Content-Type names; anything else is refused."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if media == "application/x-www-form-urlencoded":
        raise InvalidArgument("Content-Type", f"{media!r} is a form, not an import file: {SEND_THE_FILE}",
                              "UNSUPPORTED_CONTENT_TYPE")
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


def no_rows(format: str) -> InvalidArgument:
    what = "a header and no row" if format == "csv" else "no row"
    return malformed(0, f"the upload holds {what} (an empty body?); {SEND_THE_FILE}")


class UploadInterrupted(InvalidArgument):
    """The client went away before the upload ended."""

    def __init__(self) -> None:
        super().__init__("body", "the upload was interrupted (the client disconnected); "
                                 "no row was imported", "UPLOAD_INTERRUPTED")


async def read_chunks(
    format: str, stream: AsyncIterator[bytes], required: tuple[str, ...] = DESTINATION_COLUMNS
) -> AsyncIterator[Chunk]:
    """Chunks of the upload; a CSV header must name one of the `required` columns (a target's
    destinations; a do-not-call entry's value)."""
    chunks = (_csv_chunks(stream, required) if format == "csv"
              else {"ndjson": _ndjson_chunks, "json": _json_array_chunks}[format](stream))
    sequence = 0
    async for chunk in chunks:
        chunk.sequence = sequence
        sequence += 1
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


async def _blocks(stream: AsyncIterator[bytes], record_end: Any) -> AsyncIterator[tuple[bytes, int]]:
    """(block, its byte position): the upload cut into blocks of about CHUNK_BYTES that end
    where `record_end(data)` says the last whole record ends; the last block is the rest.
    However large the pieces the stream arrives in, a block ends within BLOCK_LIMIT bytes (a
    block is one chunk of rows, and imports.ids numbers at most 2**22 rows in a chunk)."""
    carry = b""
    position = 0
    async for data in stream:
        carry += data
        start = 0  # where the rest of `carry` begins: a large piece gives several blocks
        while len(carry) - start >= CHUNK_BYTES:
            cut = record_end(carry[start:start + BLOCK_LIMIT])
            if cut == 0:
                if len(carry) - start > MAX_RECORD_CHARS:
                    raise malformed(0, f"the record (a row or line) at byte {position} is longer "
                                       f"than {MAX_RECORD_CHARS} bytes (4 MiB), or a quoted field "
                                       "is never closed; keep each record under 4 MiB")
                break
            yield carry[start:start + cut], position
            start, position = start + cut, position + cut
        carry = carry[start:]
    if carry:  # at most MAX_RECORD_CHARS: the loop above refused anything longer
        yield carry, position


def _csv_record_end(data: bytes, delimiter: str = ",") -> int:
    """After the last newline that ends a CSV record. Without a quote, the last newline. With
    quotes, the records are read as the checking workers read them (csv, strict): a quote
    opens a quoted field only at a field's start, so one inside an unquoted field (`Tom 6"
    tall`) is text, not the start of a field that a newline may be in."""
    cut = data.rfind(b"\n") + 1
    if b'"' not in data[:cut]:
        return cut
    lines = data[:cut].split(b"\n")[:-1]
    ends = [0]  # the byte position after each line
    for line in lines:
        ends.append(ends[-1] + len(line) + 1)
    reader = csv.reader((line.decode(errors="replace") + "\n" for line in lines),
                        delimiter=delimiter, strict=True)
    whole = 0  # lines read in whole records
    try:
        for _ in reader:
            whole = reader.line_num
    except csv.Error as error:
        if "unexpected end of data" not in str(error):
            return cut  # a malformed record: its checker names its row
    return ends[whole]  # the last record's quoted field goes on past the block


def _line_end(data: bytes) -> int:
    return data.rfind(b"\n") + 1


# -- CSV --------------------------------------------------------------------------------------

async def _csv_chunks(stream: AsyncIterator[bytes], required: tuple[str, ...]) -> AsyncIterator[Chunk]:
    header: list[str] | None = None
    delimiter = ","

    def record_end(data: bytes) -> int:
        # Quotes open fields after the separator the header uses (the first block: read
        # from its first line, as _take_header will).
        return _csv_record_end(data, delimiter if header is not None else _sniffed(data, required))

    async for block, position in _blocks(stream, record_end):
        if position == 0 and block.startswith(_BOM):
            block, position = block[len(_BOM):], len(_BOM)
        if header is None:
            header, delimiter, rows_at = _take_header(block, position, required)
            block, position = block[rows_at:], position + rows_at
        if block:
            yield Chunk("csv", block, header, position, delimiter)


def _sniffed(data: bytes, required: tuple[str, ...]) -> str:
    """The separator of the CSV whose first bytes are `data`, told from its first line."""
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0].decode(errors="replace")
    try:
        return _csv_header(first, required)[1]
    except InvalidArgument:
        return ","


def _take_header(block: bytes, position: int,
                 required: tuple[str, ...] = DESTINATION_COLUMNS) -> tuple[list[str] | None, str, int]:
    """The header record at the start of `block` (blank lines before it skipped), its field
    separator, and where the rows after it begin; (None, ",", len(block)) if the block holds
    blank lines only."""
    start = 0
    while start < len(block):
        end = block.find(b"\n", start)
        quotes = block.count(b'"', start, len(block) if end == -1 else end)
        while end != -1 and quotes % 2:  # a newline inside a quoted name
            following = block.find(b"\n", end + 1)
            quotes += block.count(b'"', end, len(block) if following == -1 else following)
            end = following
        end, last = (len(block), True) if end == -1 else (end + 1, False)
        try:
            line = block[start:end].decode()
        except UnicodeDecodeError as error:
            raise malformed(0, f"the file is not UTF-8 ({error.reason} at byte "
                               f"{position + start + error.start})") from None
        if line.strip():
            header, delimiter = _csv_header(line, required)
            if last:  # blocks end at a record's end: this is the whole upload
                raise malformed(0, f"the upload is a single line (a header and no row); {SEND_THE_FILE}")
            return _checked_header(header, delimiter, required), delimiter, end
        start = end
    return None, ",", len(block)


def _csv_header(line: str, required: tuple[str, ...] = DESTINATION_COLUMNS) -> tuple[list[str], str]:
    """The header's column names (trimmed, lower case) and its separator: a comma, or else the
    first of `;` and tab that makes it name a destination column."""
    if _LONE_CR.search(line.encode()):
        raise malformed(0, CR_ALONE)
    headers = {}
    for delimiter in DELIMITERS:
        try:
            record = next(csv.reader(io.StringIO(line), delimiter=delimiter, strict=True), [])
        except csv.Error as error:
            raise malformed(0, f"the CSV header is not valid CSV: {error}") from None
        headers[delimiter] = [name.strip().lower() for name in record]
        if _known_destinations(headers[delimiter], required):
            return headers[delimiter], delimiter
    return headers[","], ","


def _known_destinations(header: list[str], required: tuple[str, ...] = DESTINATION_COLUMNS) -> list[str]:
    return [name for name in header if name in required]


def _checked_header(header: list[str], delimiter: str,
                    required: tuple[str, ...] = DESTINATION_COLUMNS) -> list[str]:
    """Other columns (an export's status, try counts…) are ignored, but one that looks like a
    destination and is not one is refused: its numbers would be silently dropped."""
    if unknown := unknown_destination_keys(header):
        raise malformed(0, f"the CSV header has an unknown column {unknown[0]!r}; destination "
                           "columns are destination_0..destination_4")
    if twice := next((name for n, name in enumerate(header)
                      if name in READ_COLUMNS and name in header[:n]), None):
        # Only one of the two could be read: the other's values would be silently dropped.
        raise malformed(0, f"the CSV header names the column {twice!r} twice; name each "
                           "column once")
    if required != DESTINATION_COLUMNS:
        if not _known_destinations(header, required):
            raise malformed(0, f"the CSV header {','.join(header)[:200]!r} names no "
                               f"{required[0]} column; the first line must name the columns "
                               f"({', '.join(required)} and optionally tm_expire), separated by "
                               "commas, semicolons or tabs")
        return header
    if not _known_destinations(header):
        raise malformed(0, f"the CSV header {','.join(header)[:200]!r} names no destination column; "
                           "the first line must name the columns, with at least one of "
                           "destination_0..destination_4 (and optionally name, detail, data), "
                           "separated by commas, semicolons or tabs")
    return header


# -- NDJSON -----------------------------------------------------------------------------------

async def _ndjson_chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    """Lines are handed on undecoded: the checking workers split and decode them. JSON has no
    raw carriage return but as white space, so one not followed by a newline ends a line."""
    async for block, position in _blocks(stream, _line_end):
        if _LONE_CR.search(block) and _is_utf8(block):  # (else: "not UTF-8" says more)
            raise malformed(0, CR_ALONE)
        yield Chunk("ndjson", block, None, position)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# -- JSON array -------------------------------------------------------------------------------

_SPACE = re.compile(r"[ \t\n\r]*")


async def _json_array_chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
    buffer, position = "", 0
    state = "start"  # start → first → element ⇄ after → end
    row = 0
    rows: list[Any] = []
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
                    value, end = decode_json_at(buffer, position)
                except Refused as refused:
                    # JSON the value rules refuse to read (a 5,000-digit number, nesting
                    # deeper than Python recurses): that row is rejected, the file goes on.
                    skipped = end_of_json_value(buffer, position)
                    if skipped is None:
                        if final:
                            raise malformed(row + 1, "the JSON array is not closed with ']'") from None
                        break
                    value, end = refused, skipped
                except json.JSONDecodeError as error:
                    if final:
                        raise malformed(row + 1, f"not valid JSON: {error.msg}") from None
                    break  # the element may continue in the next piece
                if end == len(buffer) and not final:
                    break  # a number at the very end may yet have more digits
                row += 1
                rows.append(value)
                position, state = end, "after"
                if len(rows) >= CHUNK_ROWS:
                    yield Chunk("json", rows)
                    rows = []
            else:
                raise malformed(row, "data after the end of the array")
        if len(buffer) - position > MAX_RECORD_CHARS:
            raise malformed(row + 1, f"an element is longer than {MAX_RECORD_CHARS} characters")
    if state == "start":
        raise no_rows("json")  # nothing but white space
    if state != "end":
        raise malformed(row + 1 if row else 0, "the JSON array is not closed with ']'")
    if rows:
        yield Chunk("json", rows)
