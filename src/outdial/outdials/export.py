"""Export of an outdial's targets as CSV or NDJSON, streamed: flat memory however long the list.

What it writes imports back unchanged: a CSV destination cell is the bare target when the
import would infer the same address from it, else the address object as JSON.

Two paths write the same bytes (tests/integration/test_export_copy.py holds them equal):
- PostgreSQL: the database writes every line itself, `COPY (SELECT <line>) TO STDOUT`, in
  keyset batches; each line is one SQL expression made of the columns' expressions
  (COLUMNS, then the waiting reason's columns, computed by the rules' own SQL), so a column
  computed in SQL is one more entry there. A stored address is copied or cut out of its text
  as the form recorded when it was written allows (destinations.address_forms), else checked.
- SQLite (and the reference for the above): keyset batches of rows formatted in Python.
"""

import asyncio
import collections
import contextlib
import csv
import datetime as dt
import io
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, cast, select, tuple_
from sqlalchemy.dialects import postgresql

from outdial.db import Database
from outdial.models import Outdial, OutdialTarget
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.destinations import FORM_BARE, FORM_CANONICAL, FORM_UNKNOWN, bare_target
from outdial.strategy import reasons
from outdial.timestamps import NEVER, current_time_format, format_timestamp

BATCH_ROWS = 5000
# Rows per COPY statement: read at the database's pace and never waiting on the client, so
# each statement stays well inside the statement timeout; at most ~4 MB of CSV (~17 MB of
# NDJSON) held at once; few enough statements that planning the long line costs little.
COPY_BATCH_ROWS = 25_000
# COPYs run at once by one export (one connection each): the database's formatting of the
# lines is most of an export's work, and two batches use two cores.
COPIES_AHEAD = 2
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
DESTINATIONS = tuple(f"destination_{n}" for n in range(DESTINATION_SLOTS))
TRY_COUNTS = tuple(f"try_count_{n}" for n in range(DESTINATION_SLOTS))
# After the stored columns, why each target waits, as of the export's start (strategy.reasons).
WAITING = ("waiting_reason", "next_attempt_at", "waiting_detail")
CSV_COLUMNS = ("id", "name", "detail", "data", "status", *DESTINATIONS, *TRY_COUNTS,
               "tm_create", "tm_update", "timezone", *WAITING)
_TABLE = OutdialTarget.__table__
# The stored due time gives way to next_attempt_at as the rules tell it.
_STORED = [c for c in _TABLE.c if c.name != "next_attempt_at"]


# -- Python: SQLite, and the reference the COPY path is held to -------------------------------

async def situation_of(
    database: Database, outdial_id: uuid.UUID, now: dt.datetime
) -> reasons.Situation | None:
    """What the waiting rules read, as the export starts; None for no such outdial."""
    async with database.sessions() as session:
        outdial = await session.get(Outdial, outdial_id)
        return None if outdial is None else await reasons.situation(session, outdial, now)


async def target_batches(
    database: Database, outdial_id: uuid.UUID, situation: reasons.Situation
) -> AsyncIterator[list[Any]]:
    """Live targets oldest first, by (tm_create, id): the index of target pages; each with its
    waiting reason, next_attempt_at and detail as the rules stood when the export started."""
    async for rows in keyset_batches(
        database, _TABLE, _TABLE.c.outdial_id == outdial_id, _TABLE.c.tm_delete.is_(None),
        columns=[*_STORED, *reasons.columns(situation)],
    ):
        yield rows


async def keyset_batches(
    database: Database, table: Any, *where: Any, columns: Sequence[Any] = ()
) -> AsyncIterator[list[Any]]:
    """Rows of `table` matching `where` (its `columns`, or all of them), oldest first by
    (tm_create, id), BATCH_ROWS at a time, each batch read in a short session of its own: flat
    memory however many there are."""
    after: tuple[Any, Any] | None = None
    while True:
        query = select(*(columns or [table])).where(*where)
        if after is not None:
            # A row-value comparison, so that the index seeks to the position: bulk imports
            # give many rows one tm_create, and an OR of the two cases would rescan them.
            query = query.where(tuple_(table.c.tm_create, table.c.id) > tuple_(*after))
        query = query.order_by(table.c.tm_create, table.c.id).limit(BATCH_ROWS)
        async with database.sessions() as session:
            rows = (await session.execute(query)).all()
        if not rows:
            return
        yield rows
        after = (rows[-1].tm_create, rows[-1].id)


def _cell(address: dict[str, str] | None) -> str:
    if address is None:
        return ""
    bare = bare_target(address)
    return bare if bare is not None else json.dumps(address, separators=(",", ":"))


async def python_export(
    database: Database, outdial_id: uuid.UUID, format: str, situation: reasons.Situation
) -> AsyncIterator[bytes]:
    if format == "csv":
        yield _csv_header()
    async for rows in target_batches(database, outdial_id, situation):
        if format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerows(
                (str(r.id), r.name, r.detail, r.data, r.status,
                 *(_cell(getattr(r, d)) for d in DESTINATIONS),
                 *(getattr(r, t) for t in TRY_COUNTS),
                 format_timestamp(r.tm_create), format_timestamp(r.tm_update),
                 r.timezone or "", r.waiting_reason or "", _moment(r.next_attempt_at),
                 r.waiting_detail or "")
                for r in rows
            )
            yield buffer.getvalue().encode()
        else:
            yield "".join(json.dumps({
                "id": str(r.id), "outdial_id": str(r.outdial_id), "name": r.name,
                "detail": r.detail, "data": r.data, "status": r.status,
                **{d: getattr(r, d) for d in DESTINATIONS},
                **{t: getattr(r, t) for t in TRY_COUNTS},
                "tm_create": format_timestamp(r.tm_create),
                "tm_update": format_timestamp(r.tm_update),
                "tm_delete": format_timestamp(r.tm_delete),
                "timezone": r.timezone, "waiting_reason": r.waiting_reason,
                "next_attempt_at": _moment(r.next_attempt_at) or None,
                "waiting_detail": r.waiting_detail,
            }) + "\n" for r in rows).encode()


def _moment(value: Any) -> str:
    moment = reasons.as_datetime(value)
    return format_timestamp(moment) or "" if moment is not None else ""


def _csv_header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(CSV_COLUMNS)
    return buffer.getvalue().encode()


# -- SQL: each value written as Python's csv and json modules write it ------------------------

def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def csv_cell(value: str) -> str:
    """csv.writer's QUOTE_MINIMAL with lineterminator "\\n": quoted when holding a comma, a
    quote or a newline (a lone carriage return is not quoted), quotes doubled."""
    return (f"(CASE WHEN strpos({value}, ',') + strpos({value}, '\"') + strpos({value}, E'\\n') > 0 "
            f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END)")


def json_string(value: str) -> str:
    """json.dumps of a string (ensure_ascii): PostgreSQL's own escaping, which is Python's for
    quotes, backslashes and control characters, then every character outside ' '..'~' as
    \\uXXXX (a surrogate pair above U+FFFF), as Python writes it."""
    quoted = f"to_json({value}::text)::text"
    escaped = (
        "(SELECT string_agg(CASE WHEN c BETWEEN ' ' AND '~' AND ascii(c) < 127 THEN c "
        "WHEN ascii(c) < 65536 THEN '\\u' || lpad(to_hex(ascii(c)), 4, '0') "
        "ELSE '\\u' || to_hex(55296 + ((ascii(c) - 65536) >> 10)) "
        "|| '\\u' || to_hex(56320 + ((ascii(c) - 65536) & 1023)) END, '' ORDER BY n) "
        f"FROM unnest(string_to_array({quoted}, NULL)) WITH ORDINALITY AS chars(c, n))"
    )
    # Pure ASCII without DEL (octet and character lengths equal) is escaped alike by both.
    return (f"(CASE WHEN octet_length({value}) = length({value}) AND strpos({value}, chr(127)) = 0 "
            f"THEN {quoted} ELSE {escaped} END)")


def json_object(value: str, item: str, between: str) -> str:
    """json.dumps of a stored JSON object with string values, keys in their stored order."""
    items = (f"(SELECT string_agg({json_string('key')} || '{item}' || "
             f"CASE json_typeof(value) WHEN 'string' THEN {json_string('(value #>> ARRAY[]::text[])')} "
             f"ELSE value::text END, '{between}' ORDER BY n) "
             f"FROM json_each({value}) WITH ORDINALITY AS fields(key, value, n))")
    return f"('{{' || coalesce({items}, '') || '}}')"


def _flat_ascii(compact: str) -> str:
    """Whether `compact` (json_strip_nulls' text of an object: no spaces between tokens,
    strings re-escaped by PostgreSQL) is a flat object of string values, in ASCII without DEL
    and without an escaped quote: then PostgreSQL's escaping is json.dumps', and every quote
    is a string's edge, so 4 quotes per `":"` leave no room for a value that is not a string."""
    quotes = f"length({compact}) - length(replace({compact}, '\"', ''))"
    pairs = f"(length({compact}) - length(replace({compact}, '\":\"', ''))) / 3"
    return (f"octet_length({compact}) = length({compact}) AND strpos({compact}, chr(127)) = 0 "
            f"AND strpos({compact}, '\\\"') = 0 AND {quotes} = 4 * {pairs}")


def address_json(value: str, compact: bool, stored: str, stripped: str) -> str:
    """json.dumps of a stored address (`value`, not NULL), compact or with its default
    separators; `stored` is its text and `stripped` its json_strip_nulls text. The text that
    the API and imports store is already json.dumps' output: that text, or its compact form,
    is written as is when it is a flat object of plain strings (_flat_ascii), for a fraction
    of the cost of rebuilding the object from json_each (json_object, for anything else)."""
    if compact:
        # Stripped nulls would be missing from the compact form: any 'null' goes the long way.
        fast = f"strpos({stored}, 'null') = 0 AND {_flat_ascii(stripped)}"
        return f"(CASE WHEN {fast} THEN {stripped} ELSE {json_object(value, ':', ',')} END)"
    # The stored text is json.dumps' when it is the compact form with a space after each
    # separator (all of them are between strings, so these are all of them).
    spaced = f"""replace(replace({stripped}, '":"', '": "'), '","', '", "')"""
    fast = f"{stored} = {spaced} AND {_flat_ascii(stripped)}"
    return f"(CASE WHEN {fast} THEN {stored} ELSE {json_object(value, ': ', ', ')} END)"


def _address_texts(value: str) -> str:
    """The stored and stripped texts address_json reads, once per row."""
    return (f"outdial_targets.{value}::text AS {value}_stored, "
            f"json_strip_nulls(outdial_targets.{value})::text AS {value}_stripped")


# What str.strip() removes: str.isspace() characters.
_PY_SPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())


def _address_fields(value: str) -> str:
    """What bare_cell reads of an address, each looked up once per row in the address parsed
    once as jsonb (`->>` on json would parse it at each use)."""
    jsonb = f"{value}_jsonb"
    quiet = " AND ".join(f"coalesce({jsonb} ->> '{key}', '') = ''"
                         for key in ("target_name", "name", "detail"))
    return (f"{jsonb} ->> 'target' AS {value}_target, {jsonb} ->> 'type' AS {value}_type, "
            f"{quiet} AS {value}_quiet")


def bare_cell(value: str) -> str:
    """destinations.bare_target in SQL: the bare target, or NULL when it would not read back;
    from the address' fields (_address_fields)."""
    target = f"{value}_target"
    inferred = (f"(CASE WHEN left({target}, 1) = '+' THEN 'tel' "
                f"WHEN lower(left({target}, 4)) = 'sip:' OR lower(left({target}, 5)) = 'sips:' "
                f"THEN 'sip' WHEN strpos({target}, '@') > 0 THEN 'email' END)")
    return (f"(CASE WHEN {value}_quiet AND {inferred} = {value}_type "
            f"AND strpos({_literal(_PY_SPACE)}, left({target}, 1)) = 0 "
            f"AND strpos({_literal(_PY_SPACE)}, right({target}, 1)) = 0 "
            f"AND left({target}, 1) <> '{{' THEN {target} END)")


def _form(value: str) -> str:
    """The stored address' form (destinations.address_forms): two bits per slot."""
    slot = DESTINATIONS.index(value)
    return f"((outdial_targets.address_forms >> {2 * slot}) & 3)"


def _checked_json(value: str, compact: bool) -> str:
    """address_json of an address whose form is not known, its texts read in a subquery: only
    for such a row."""
    return (f"(SELECT {address_json(value, compact, f'{value}_stored', f'{value}_stripped')} "
            f"FROM (SELECT {_address_texts(value)} OFFSET 0) AS address)")


def destination_json(value: str) -> str:
    """json.dumps of the address (null for none): its stored text, when written as such."""
    return (f"(CASE WHEN {value} IS NULL THEN 'null' "
            f"WHEN {_form(value)} <> {FORM_UNKNOWN} THEN {value}::text "
            f"ELSE {_checked_json(value, False)} END)")


def destination_cell(value: str) -> str:
    """_cell in SQL: '' for no address, else the bare target or the compact JSON; cut out of the
    stored text when its form is known, else worked out from the address (the compact JSON
    only for an address that is not bare)."""
    checked = (f"(SELECT coalesce({bare_cell(value)}, {_checked_json(value, True)}) "
               f"FROM (SELECT {_address_fields(value)} FROM (SELECT outdial_targets.{value}::jsonb "
               f"AS {value}_jsonb OFFSET 0) AS parsed OFFSET 0) AS fields)")
    return (f"(CASE WHEN outdial_targets.{value} IS NULL THEN '' "
            f"WHEN {_form(value)} = {FORM_BARE} THEN split_part({value}::text, '\"', 8) "
            f"WHEN {_form(value)} = {FORM_CANONICAL} "
            f"""THEN replace(replace({value}::text, '", "', '","'), '": "', '":"') """
            f"ELSE {checked} END)")


def timestamp(value: str, form: str, unset: str) -> str:
    """format_timestamp in SQL; `unset` is what a NULL becomes in this format."""
    pattern = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' if form == "rfc3339" else "YYYY-MM-DD HH24:MI:SS.US"
    return f"coalesce(to_char({value}, {_literal(pattern)}), {unset})"


class _InlineCompiler(postgresql.dialect.statement_compiler):  # type: ignore[name-defined,misc]
    """Inlined values keep the type a bound parameter would have had: a bare quoted literal
    is text to PostgreSQL, which a CASE cannot mix with timestamps (a window's opening time
    beside a retry's due time), and an untyped id (a do-not-call list's, in the CASE that
    names the list) has no renderer at all."""

    def render_literal_value(self, value: Any, type_: Any) -> str:
        if isinstance(value, uuid.UUID):
            return f"'{value}'::uuid"
        rendered = str(super().render_literal_value(value, type_))
        if isinstance(value, dt.datetime):
            return f"{rendered}::timestamp"
        return rendered


def sql_text(statement: Any) -> str:
    """A SQLAlchemy statement as PostgreSQL SQL text with its values inlined (COPY takes no
    parameters), each value with the type a bound parameter would have had."""
    return str(_InlineCompiler(postgresql.dialect(), statement,
                               compile_kwargs={"literal_binds": True}))


def waiting_sql(situation: reasons.Situation) -> str:
    """The waiting reason's columns (strategy.reasons) as a select list over outdial_targets.
    They are compiled inside a SELECT from the table so that their subqueries (whether a done
    target was answered) correlate with the row: compiled alone, such a subquery would name
    outdial_targets in its own FROM and ask about every target at once."""
    reason, due, detail = reasons.columns(situation)
    query = select(reason, cast(due.element, DateTime()).label(due.name), detail).select_from(_TABLE)
    compiled = sql_text(query)
    columns, clause, rest = compiled.rpartition("\nFROM outdial_targets")
    assert clause and not rest and columns.startswith("SELECT "), compiled
    return columns.removeprefix("SELECT ")


@dataclass(frozen=True)
class Column:
    """One exported field: its name and its SQL as a CSV cell and as a JSON value. `form` is
    the time format (tutorial or rfc3339)."""

    name: str
    csv: Callable[[str], str] | None  # None: not a CSV column
    json: Callable[[str], str]


def _text(column: str) -> Column:
    return Column(column, lambda form: csv_cell(column), lambda form: json_string(column))


def _time(column: str) -> Column:
    def as_csv(form: str) -> str:
        return timestamp(column, form, "''" if form == "rfc3339" else _literal(NEVER))

    def as_json(form: str) -> str:
        stamp = "'\"' || " + timestamp(column, form, "NULL") + " || '\"'"
        return f"coalesce({stamp}, 'null')" if form == "rfc3339" else (
            "'\"' || " + timestamp(column, form, _literal(NEVER)) + " || '\"'")
    return Column(column, as_csv, as_json)


COLUMNS: tuple[Column, ...] = (
    Column("id", lambda form: "id::text", lambda form: "'\"' || id::text || '\"'"),
    Column("outdial_id", None, lambda form: "'\"' || outdial_id::text || '\"'"),
    _text("name"), _text("detail"), _text("data"),
    Column("status", lambda form: csv_cell("status"), lambda form: json_string("status")),
    # The cell is worked out once per row in copy_query (cells.destination_N_cell).
    *(Column(d, lambda form, d=d: csv_cell(f"{d}_cell"), lambda form, d=d: destination_json(d))
      for d in DESTINATIONS),
    *(Column(t, lambda form, t=t: f"{t}::text", lambda form, t=t: f"{t}::text") for t in TRY_COUNTS),
    _time("tm_create"), _time("tm_update"),
    # Only live targets are exported: their tm_delete is the unset time.
    Column("tm_delete", None,
           lambda form: "'null'" if form == "rfc3339" else _literal(json.dumps(NEVER))),
)


def _optional_text(column: str) -> Column:
    """A text that may be NULL: '' in CSV, null in JSON."""
    return Column(column, lambda form: csv_cell(f"coalesce({column}, '')"),
                  lambda form: f"(CASE WHEN {column} IS NULL THEN 'null' ELSE {json_string(column)} END)")


def _optional_time(name: str, value: str) -> Column:
    """A time that may be NULL: '' in CSV, null in JSON, whatever the time format."""
    return Column(
        name, lambda form: timestamp(value, form, "''"),
        lambda form: "coalesce('\"' || " + timestamp(value, form, "NULL") + " || '\"', 'null')")


# The target's zone, then why it waits: computed once per row in copy_query (AS waiting;
# the rules' next_attempt_at is named apart from the stored column it replaces).
WAITING_COLUMNS: tuple[Column, ...] = (
    _optional_text("timezone"), _optional_text("waiting_reason"),
    _optional_time("next_attempt_at", "waiting.next_attempt_at"), _optional_text("waiting_detail"),
)


def line_sql(format: str, form: str) -> str:
    """The SQL expression of one exported line (without its newline)."""
    columns = (*COLUMNS, *WAITING_COLUMNS)
    # One concat of every piece: a chain of || copies the growing line at each step.
    if format == "csv":
        pieces = [piece for c in columns if c.csv is not None for piece in (c.csv(form), "','")][:-1]
    else:
        pieces = ["'{'"]
        for c in columns:
            pieces += [_literal(("" if len(pieces) == 1 else ", ") + json.dumps(c.name) + ": "),
                       c.json(form)]
        pieces.append("'}'")
    return f"concat({', '.join(pieces)})"


def copy_query(format: str, form: str, outdial_id: uuid.UUID, after: tuple[Any, Any] | None,
               until: tuple[Any, Any] | None, situation: reasons.Situation) -> str:
    """One batch of lines in export order, for COPY; keys are written as literals (COPY takes
    no parameters) from values the database itself gave."""
    where = [f"outdial_id = '{outdial_id}'", "tm_delete IS NULL"]
    if after is not None:
        where.append(f"(tm_create, id) > ('{after[0].isoformat()}'::timestamp, '{after[1]}'::uuid)")
    if until is not None:
        where.append(f"(tm_create, id) <= ('{until[0].isoformat()}'::timestamp, '{until[1]}'::uuid)")
    # Values used several times in a line are computed once per row in LATERAL subqueries;
    # OFFSET 0 keeps the planner from folding them back into every use.
    cells = ", ".join(f"{destination_cell(d)} AS {d}_cell" for d in DESTINATIONS)
    waiting = waiting_sql(situation)
    return (f"SELECT {line_sql(format, form)} FROM outdial_targets "
            f"CROSS JOIN LATERAL (SELECT {waiting} OFFSET 0) AS waiting "
            + (f"CROSS JOIN LATERAL (SELECT {cells} OFFSET 0) AS cells " if format == "csv" else "")
            + f"WHERE {' AND '.join(where)} ORDER BY tm_create, id")


# COPY's text format escapes these in a value; the CSV lines are read back unescaped.
_COPY_ESCAPES = {b"\\": b"\\", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f",
                 b"v": b"\v"}
_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def unescape_copy_text(data: bytes) -> bytes:
    if b"\\" not in data:
        return data
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES[m.group(1)], data)


async def copy_export(
    database: Database, outdial_id: uuid.UUID, format: str, situation: reasons.Situation
) -> AsyncIterator[bytes]:
    """The lines in keyset batches of COPY_BATCH_ROWS, COPIES_AHEAD of them run at once on
    connections of their own and written out in order: the database formats the lines (most
    of an export's work) on as many cores while the batch before is being sent."""
    form = current_time_format()
    if format == "csv":
        yield _csv_header()
    running: collections.deque[_Copy] = collections.deque()
    after: tuple[Any, Any] | None = None
    more = True
    try:
        while more or running:
            while more and len(running) < COPIES_AHEAD:
                until = await _batch_end(database, outdial_id, after)
                running.append(_Copy(database, copy_query(format, form, outdial_id, after, until,
                                                          situation), format))
                more, after = until is not None, until
            async for chunk in running[0].chunks():
                yield chunk
            running.popleft()
    finally:
        for copy in running:
            await copy.cancel()


async def _batch_end(
    database: Database, outdial_id: uuid.UUID, after: tuple[Any, Any] | None
) -> tuple[Any, Any] | None:
    """Where the batch after `after` ends: the key COPY_BATCH_ROWS rows on, along the page
    index (None: the batch runs to the end of the list)."""
    query = select(_TABLE.c.tm_create, _TABLE.c.id).where(
        _TABLE.c.outdial_id == outdial_id, _TABLE.c.tm_delete.is_(None))
    if after is not None:
        query = query.where(tuple_(_TABLE.c.tm_create, _TABLE.c.id) > tuple_(*after))
    async with database.sessions() as session:
        until = (await session.execute(query.order_by(_TABLE.c.tm_create, _TABLE.c.id)
                                       .offset(COPY_BATCH_ROWS - 1).limit(1))).first()
    return tuple(until) if until else None


class _Copy:
    """One COPY (one batch) running on a connection of its own from the moment it is made;
    what the database sends is kept until read, so the statement never waits on a slow
    client (at most the batch is held)."""

    def __init__(self, database: Database, query: str, format: str) -> None:
        self.format = format
        self._received: list[bytes] = []
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._run(database, query))

    async def _run(self, database: Database, query: str) -> None:
        # NDJSON lines are pure ASCII without control characters (ensure_ascii), so CSV mode
        # with a quote and delimiter they never hold passes them through untouched; CSV lines
        # may hold newlines, so they go in text format and are unescaped when read.
        options: dict[str, Any] = ({"format": "csv", "quote": "\x01", "delimiter": "\x02"}
                                   if self.format == "ndjson" else {"format": "text"})

        async def received(data: bytes) -> None:
            self._received.append(data)
            self._arrived.set()

        try:
            async with database.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                try:
                    # The line is one long expression: compiling it (JIT) would cost a minute.
                    await driver.execute("SET jit = off")
                    await driver.copy_from_query(query, output=received, **options)
                    await driver.execute("RESET jit")
                except BaseException:
                    await connection.invalidate()  # a COPY cut short leaves it unusable
                    raise
        finally:
            self._arrived.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """What the database sent, in order, as it arrives: all that has arrived at each read
        (whole lines: the driver hands over whole rows); the COPY's error, if it failed."""
        while True:
            if not self._received and not self._task.done():
                await self._arrived.wait()
            self._arrived.clear()
            received, self._received = self._received, []
            if received:
                data = b"".join(received)
                yield unescape_copy_text(data) if self.format == "csv" else data
            elif self._task.done():
                self._task.result()
                return

    async def cancel(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def export_targets(
    database: Database, outdial_id: uuid.UUID, format: str, now: dt.datetime
) -> AsyncIterator[bytes]:
    situation = await situation_of(database, outdial_id, now)
    if situation is None:
        return
    export = python_export if database.is_sqlite else copy_export
    async for chunk in export(database, outdial_id, format, situation):
        yield chunk
