"""Checking a chunk of rows and encoding the good ones for the database, in a worker process.

Runs in a process pool (both cores) with no database and no event loop: rows in, encoded rows
and row errors out. The destination rules are those of the API (outdials/destinations.py).
"""

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from outdial.errors import InvalidArgument
from outdial.imports.reading import Chunk
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.destinations import validate_destination
from outdial.timestamps import WIRE_FORMAT

TEXT_FIELDS = ("name", "detail", "data")
# outdial_targets columns in the order the encoded rows carry them.
TARGET_COLUMNS = (
    "id", "customer_id", "outdial_id", "name", "detail", "data", "status",
    *(f"destination_{n}" for n in range(DESTINATION_SLOTS)),
    *(f"try_count_{n}" for n in range(DESTINATION_SLOTS)),
    "tm_last_end", "tm_create", "tm_update", "tm_delete",
)
MAPPING_COLUMNS = ("import_id", "row", "target_id")


@dataclass(frozen=True)
class RowRules:
    """What a row must satisfy and where it goes."""

    import_id: uuid.UUID
    customer_id: uuid.UUID
    outdial_id: uuid.UUID
    tm_create: dt.datetime
    default_region: str | None
    require_valid: bool
    dedupe: bool
    # "copy": PostgreSQL COPY text lines; "rows": parameter tuples for SQLite's executemany.
    encoding: str


@dataclass
class CheckedChunk:
    # (row, dedupe key or None, encoded target row, encoded mapping row) for each good row
    accepted: list[tuple[int, Any, Any, Any]] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (row, field, message)
    rejected: int = 0


def dedupe_key(address: dict[str, str]) -> Any:
    """What makes two first destinations the same: an E.164 number as an int (compact in a
    set of a million), any other target as type and text."""
    if address["type"] == "tel":
        return int(address["target"][1:])
    return f"{address['type']}:{address['target']}"


def check_chunk(chunk: Chunk, rules: RowRules) -> CheckedChunk:
    result = CheckedChunk()
    stamp = rules.tm_create.strftime(WIRE_FORMAT)
    fixed = (str(rules.customer_id), str(rules.outdial_id))
    for row, raw in chunk.rows:
        fields, errors = _fields(chunk, raw)
        destinations: list[dict[str, str] | None] = []
        if fields is not None:
            errors, values, destinations = _check_fields(fields, rules)
        if errors:
            result.rejected += 1
            result.errors.extend((row, name, message) for name, message in errors)
            continue
        target_id = uuid.uuid4()
        first = next(d for d in destinations if d is not None)
        key = dedupe_key(first) if rules.dedupe else None
        if rules.encoding == "copy":
            encoded = _copy_line(str(target_id), fixed, values, destinations, stamp)
            mapping = f"{rules.import_id}\t{row}\t{target_id}\n"
        else:
            encoded = _sqlite_row(target_id, rules, values, destinations, stamp)
            mapping = (rules.import_id.hex, row, target_id.hex)
        result.accepted.append((row, key, encoded, mapping))
    return result


def _fields(chunk: Chunk, raw: Any) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    if chunk.format == "csv":
        header = chunk.header or []
        if len(raw) != len(header):
            return None, [("", f"has {len(raw)} cells; the header has {len(header)}")]
        return dict(zip(header, raw)), []
    if chunk.format == "ndjson":
        try:
            raw = json.loads(raw)
        except ValueError as error:
            return None, [("", f"is not valid JSON: {error}")]
    if not isinstance(raw, dict):
        return None, [("", "must be a JSON object")]
    return raw, []


def _check_fields(
    fields: dict[str, Any], rules: RowRules
) -> tuple[list[tuple[str, str]], list[str], list[dict[str, str] | None]]:
    errors: list[tuple[str, str]] = []
    values: list[str] = []
    for name in TEXT_FIELDS:
        value = fields.get(name, "")
        if not isinstance(value, str):
            errors.append((name, "must be a string"))
        values.append(value)
    destinations: list[dict[str, str] | None] = []
    for slot in range(DESTINATION_SLOTS):
        try:
            destinations.append(validate_destination(
                slot, fields.get(f"destination_{slot}"), from_import=True,
                default_region=rules.default_region, require_valid=rules.require_valid,
            ))
        except InvalidArgument as error:
            errors.append((error.field, error.problem))
            destinations.append(None)
    if not errors and all(d is None for d in destinations):
        errors.append(("destination_0", "a target needs at least one destination"))
    return errors, values, destinations


def _copy_text(value: str) -> str:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (value.replace("\\", "\\\\").replace("\t", "\\t")
                 .replace("\n", "\\n").replace("\r", "\\r"))
    return value


def _copy_line(
    target_id: str, fixed: tuple[str, str], values: list[str],
    destinations: list[dict[str, str] | None], stamp: str,
) -> str:
    cells = [target_id, *fixed, *(_copy_text(v) for v in values), "idle"]
    cells += ["\\N" if d is None else _copy_text(json.dumps(d)) for d in destinations]
    cells += ["0"] * DESTINATION_SLOTS
    cells += ["\\N", stamp, stamp, "\\N"]
    return "\t".join(cells) + "\n"


def _sqlite_row(
    target_id: uuid.UUID, rules: RowRules, values: list[str],
    destinations: list[dict[str, str] | None], stamp: str,
) -> tuple[Any, ...]:
    # The forms SQLAlchemy stores on SQLite: UUIDs as 32 hex digits, timestamps as text.
    return (
        target_id.hex, rules.customer_id.hex, rules.outdial_id.hex, *values, "idle",
        *(None if d is None else json.dumps(d) for d in destinations),
        *([0] * DESTINATION_SLOTS), None, stamp, stamp, None,
    )
