"""Checking a chunk of rows and encoding the good ones for the database, in a worker process.

Runs in a process pool (both cores) with no database and no event loop. A chunk arrives as the
bytes of whole CSV records or NDJSON lines (decoding and parsing happen here, off the serving
process) and leaves as encoded rows ready for COPY or executemany, so the serving process
handles no per-row Python objects beyond one bytes string per row. Rows are numbered within the
chunk; the server, which lands chunks in file order, adds the rows before it.
The destination rules are those of the API (outdials/destinations.py), and so are the value
rules (outdial/validation.py): what the API refuses to store, an import rejects.
"""

import csv
import datetime as dt
import io
import json
import os
import pickle
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from outdial.errors import InvalidArgument
from outdial.imports.ids import chunk_ids
from outdial.imports.reading import Chunk
from outdial.outdials.destinations import (
    DESTINATION_SLOTS,
    E164,
    UNKNOWN_DESTINATION,
    address_forms,
    dnc_entry,
    dnc_value,
    entry_expiry,
    national_e164,
    tel_problem,
    unknown_destination_keys,
    validate_destination,
)
from outdial.strategy.windows import timezone_problem, zone_key
from outdial.timestamps import WIRE_FORMAT, written
from outdial.validation import Refused, decode_json, key_text, text_problem

TEXT_FIELDS = ("name", "detail", "data")
DESTINATION_FIELDS = tuple(f"destination_{n}" for n in range(DESTINATION_SLOTS))
# outdial_targets columns in the order the encoded rows carry them.
TARGET_COLUMNS = (
    "id", "customer_id", "outdial_id", "name", "detail", "data", "status",
    *DESTINATION_FIELDS,
    *(f"try_count_{n}" for n in range(DESTINATION_SLOTS)),
    "tm_last_end", "tm_create", "tm_update", "tm_delete", "timezone", "zone_key", "address_forms",
)
MAPPING_COLUMNS = ("import_id", "row", "target_id")
# A do-not-call list's import: the fields of a row, and dnc_entries columns as encoded.
ENTRY_FIELDS = ("value", "tm_expire", "type")
ENTRY_COLUMNS = ("id", "customer_id", "dnclist_id", "type", "value", "tm_expire", "tm_create")
# The stored form of a bare E.164 cell: json.dumps of the address validate_destination gives
# (tests/unit/test_import_checking.py holds them equal), without building the dict.
TEL_JSON = '{"type": "tel", "target": "%s", "target_name": "", "name": "", "detail": ""}'
_ABSENT = object()


@dataclass(frozen=True)
class RowRules:
    """What a row must satisfy and where it goes."""

    import_id: uuid.UUID
    customer_id: uuid.UUID
    outdial_id: uuid.UUID | None  # where targets go; None for a do-not-call list's entries
    tm_create: dt.datetime
    default_region: str | None
    require_valid: bool
    dedupe: bool
    # "copy": PostgreSQL COPY text lines (bytes); "rows": parameter tuples for SQLite's executemany.
    encoding: str
    id_salt: int  # the random part of the ids of the rows the import creates (imports.ids)
    dnclist_id: uuid.UUID | None = None  # the list the entries go into, for such an import


@dataclass
class CheckedChunk:
    rows: int = 0  # rows read, good and bad
    # For each good row, in file order: its number in the chunk, its target id, and (with
    # dedupe) the key of its first destination.
    numbers: list[int] = field(default_factory=list)
    target_ids: list[str] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    # The good rows encoded as one blob (see encode_targets): one large object instead of one
    # per row keeps the serving process's memory flat and its unpickling cheap.
    targets: bytes = b""
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (number in chunk, field, message)
    rejected: int = 0
    # The file itself is broken here (the whole import fails): (number in chunk or 0, problem).
    malformed: tuple[int, str] | None = None


def dedupe_key(address: dict[str, str]) -> Any:
    """What makes two first destinations the same: an E.164 number as an int (compact in a
    set of a million), any other target as its type and the value a do-not-call list keys it
    on (case-folded; `sips:` and a bare user@host read as `sip:`)."""
    if address["type"] == "tel":
        return int(address["target"][1:])
    return f"{address['type']}:{dnc_value(address)}"


def new_ids(chunk: Chunk, rules: RowRules, count: int) -> list[str]:
    """The ids of the chunk's rows 1..count, should they become targets (or entries): in file
    order (imports.ids)."""
    return chunk_ids(rules.tm_create, rules.id_salt, chunk.sequence, count)


def exit_with_parent(parent: int) -> None:
    """Pool initializer: the worker exits once the server that started it is gone. A server
    killed with -9 never shuts its pool down, and the workers, holding both ends of the pool's
    queue, would otherwise wait on it for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def check_chunk(chunk: Chunk, rules: RowRules) -> CheckedChunk:
    if rules.dnclist_id is not None:
        return _check_entries(chunk, rules)
    result = CheckedChunk()
    try:
        records = list(_records(chunk, result))
    except UnicodeDecodeError as error:
        result.malformed = (0, f"the file is not UTF-8 ({error.reason} at byte {chunk.start + error.start})")
        return result
    encode = _Encoder(rules)
    targets = []
    ids = new_ids(chunk, rules, len(records))
    for (number, values, unreadable), target_id in zip(records, ids):
        if unreadable:
            result.rejected += 1
            result.errors.append((number, *unreadable))
            continue
        errors, texts, destinations, key, zones = _check_values(values, rules)
        if errors:
            result.rejected += 1
            result.errors.extend((number, name, message) for name, message in errors)
            continue
        result.numbers.append(number)
        result.target_ids.append(target_id)
        targets.append(encode(target_id, texts, destinations, zones))
        if rules.dedupe:
            result.keys.append(key)
    result.targets = encode_targets(targets, rules.encoding)
    return result


def encode_targets(targets: list[Any], encoding: str) -> bytes:
    """Encoded rows as one blob: COPY text lines as they are, executemany tuples pickled."""
    return b"".join(targets) if encoding == "copy" else pickle.dumps(targets, pickle.HIGHEST_PROTOCOL)


def decode_targets(blob: bytes, encoding: str) -> list[Any]:
    """The rows of a blob, one item each (COPY lines keep their newline)."""
    if encoding == "copy":
        return [line + b"\n" for line in blob.split(b"\n")[:-1]]  # COPY text escapes newlines in values
    return pickle.loads(blob)


ROW_FIELDS = (*TEXT_FIELDS, *DESTINATION_FIELDS, "timezone")
ROW_DEFAULTS = ("", "", "", None, None, None, None, None, None)


def _records(chunk: Chunk, result: CheckedChunk, fields: tuple[str, ...] = ROW_FIELDS,
             defaults: tuple[Any, ...] = ROW_DEFAULTS) -> Any:
    """(number in chunk, the row's `fields` (a target's 3 texts, 5 destinations and timezone), None or
    why it is unreadable: (field or "", problem))."""
    if chunk.format == "csv":
        yield from _csv_records(chunk, result, fields, defaults)
        return
    if chunk.format == "ndjson":
        # Decoded strictly first: json.loads would guess UTF-16/32 from bytes and read binary
        # data as rows of garbage instead of refusing the file.
        text = chunk.data.decode("utf-8-sig" if chunk.start == 0 else "utf-8")
        objects: Any = (line for line in text.split("\n") if line.strip())
    else:
        objects = chunk.data
    for number, raw in enumerate(objects, 1):
        result.rows = number
        if chunk.format == "ndjson":
            try:
                raw = decode_json(raw)
            except Refused as refused:
                yield number, None, ("", str(refused))
                continue
            except ValueError as error:
                yield number, None, ("", f"is not valid JSON: {error}")
                continue
        elif isinstance(raw, Refused):  # an array element the reader could not decode
            yield number, None, ("", str(raw))
            continue
        if not isinstance(raw, dict):
            yield number, None, ("", "must be a JSON object")
            continue
        if fields == ROW_FIELDS and (unknown := unknown_destination_keys(raw)):
            yield number, None, (key_text(unknown[0]), UNKNOWN_DESTINATION)
            continue
        yield number, [raw.get(name, default) for name, default in zip(fields, defaults)], None


def _csv_records(chunk: Chunk, result: CheckedChunk, fields: tuple[str, ...],
                 defaults: tuple[Any, ...]) -> Any:
    header = chunk.header or []
    # Where each field sits in a record (the last column of that name, as dict(zip()) would).
    where = {name: index for index, name in enumerate(header)}
    columns = [where.get(name) for name in fields]
    number = 0
    try:
        for record in csv.reader(io.StringIO(chunk.data.decode()), delimiter=chunk.delimiter, strict=True):
            if not record or record == [""]:
                continue
            number = result.rows = number + 1
            if len(record) != len(header):
                yield number, None, ("", f"has {len(record)} cells; the header has {len(header)}")
                continue
            yield number, [d if i is None else record[i] for i, d in zip(columns, defaults)], None
    except csv.Error as error:
        result.malformed = (number + 1, f"not valid CSV: {error}")


def _check_values(
    values: list[Any], rules: RowRules
) -> tuple[list[tuple[str, str]], list[str], list[str | None], Any, tuple[str | None, str]]:
    """Errors, texts, destinations in stored form (JSON text or None), the dedupe key, and the
    timezone and zone key (strategy.windows.zone_key, as the API stores them)."""
    errors: list[tuple[str, str]] = []
    texts = values[:3]
    for name, value in zip(TEXT_FIELDS, texts):
        if not isinstance(value, str):
            errors.append((name, "must be a string"))
        elif problem := text_problem(name, value):
            errors.append((name, problem))
    timezone = values[8] or None  # an empty cell: none
    if timezone is not None and (problem := timezone_problem(timezone)):
        errors.append(("timezone", problem))
    destinations: list[str | None] = []
    reached: list[dict[str, str]] = []
    key = None
    for slot, value in enumerate(values[3:8]):
        try:
            stored, slot_key, address = _destination(slot, value, rules)
        except InvalidArgument as error:
            errors.append((error.field, error.problem))
            stored = slot_key = address = None
        if key is None and stored is not None:
            key = slot_key
        if address is not None:
            reached.append(address)
        destinations.append(stored)
    if not errors and key is None:
        errors.append(("destination_0", "a target needs at least one destination"))
    return errors, texts, destinations, key, (timezone, zone_key(timezone, reached))


def _destination(slot: int, value: Any, rules: RowRules) -> tuple[str | None, Any, Any]:
    """One destination cell in stored form (JSON text) with its dedupe key and its address
    (type and target at least), or (None, None, None)."""
    if value is None or value == "":  # an empty cell or slot: no destination
        return None, None, None
    if value.__class__ is str:
        # Most cells: a bare number already in E.164, or a national one that national_e164 reads
        # as normalise_tel would. Same checks as below, no address dict; a refused number
        # takes the path below, which words the refusal.
        number = value if E164.fullmatch(value) else national_e164(value, rules.default_region)
        if number is not None and not tel_problem(number, require_valid=rules.require_valid):
            return TEL_JSON % number, int(number[1:]), {"type": "tel", "target": number}
    address = validate_destination(slot, value, from_import=True, default_region=rules.default_region,
                                   require_valid=rules.require_valid)
    if address is None:
        return None, None, None
    return json.dumps(address), dedupe_key(address), address


class _Encoder:
    """A good row as the database takes it: a COPY text line or an executemany tuple."""

    def __init__(self, rules: RowRules) -> None:
        stamp = rules.tm_create.strftime(WIRE_FORMAT)
        self.copy = rules.encoding == "copy"
        # Columns after the destinations: try counts 0, tm_last_end, tm_create, tm_update,
        # tm_delete; then the timezone and zone key of the row.
        self.copy_head = f"\t{rules.customer_id.hex}\t{rules.outdial_id.hex}\t"
        self.copy_tail = "\t" + "\t".join(["0"] * DESTINATION_SLOTS) + f"\t\\N\t{stamp}\t{stamp}\t\\N\t"
        # The forms SQLAlchemy stores on SQLite: UUIDs as 32 hex digits, timestamps as text.
        self.row_head = (rules.customer_id.hex, rules.outdial_id.hex)
        self.row_tail = (*([0] * DESTINATION_SLOTS), None, stamp, stamp, None)

    def __call__(
        self, target_id: str, texts: list[str], destinations: list[str | None],
        zones: tuple[str | None, str],
    ) -> Any:
        forms = address_forms(destinations)  # how the export may write them (outdials.export)
        if not self.copy:
            return (target_id, *self.row_head, *texts, "idle", *destinations, *self.row_tail,
                    *zones, forms)
        timezone, key = zones
        cells = [*map(_copy_text, texts), "idle",
                 *("\\N" if d is None else _copy_text(d) for d in destinations)]
        return (target_id + self.copy_head + "\t".join(cells) + self.copy_tail
                + ("\\N" if timezone is None else timezone) + "\t" + key + f"\t{forms}\n").encode()


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (value.replace("\\", "\\\\").replace("\t", "\\t")
                 .replace("\n", "\\n").replace("\r", "\\r"))
    return value


# -- a do-not-call list's entries -------------------------------------------------------------


def _check_entries(chunk: Chunk, rules: RowRules) -> CheckedChunk:
    """Rows {value, tm_expire} as dnc_entries rows, keyed on their normalised value (an import
    into a list always skips values the list or the file holds already)."""
    result = CheckedChunk()
    try:
        records = list(_records(chunk, result, ENTRY_FIELDS, (None, None, None)))
    except UnicodeDecodeError as error:
        result.malformed = (0, f"the file is not UTF-8 ({error.reason} at byte {chunk.start + error.start})")
        return result
    stamp = rules.tm_create.strftime(WIRE_FORMAT)
    assert rules.dnclist_id is not None
    head = (rules.customer_id.hex, rules.dnclist_id.hex)
    entries = []
    for (number, values, unreadable), entry_id in zip(records, new_ids(chunk, rules, len(records))):
        problem = unreadable
        if problem is None:
            value, expire, written_kind = values
            try:
                kind, normalised = dnc_entry(value, rules.default_region, kind=written_kind)
                expires = entry_expiry(expire, rules.tm_create)
                expiry = None if expires is None else written(expires)
            except InvalidArgument as error:
                problem = (error.field, error.problem)
        if problem is not None:
            result.rejected += 1
            result.errors.append((number, *problem))
            continue
        result.numbers.append(number)
        result.target_ids.append(entry_id)
        result.keys.append(normalised)
        row = (entry_id, *head, kind, normalised, expiry, stamp)
        if rules.encoding == "copy":
            entries.append(("\t".join("\\N" if cell is None else _copy_text(cell) for cell in row)
                            + "\n").encode())
        else:
            entries.append(row)
    result.targets = encode_targets(entries, rules.encoding)
    return result


