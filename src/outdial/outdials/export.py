"""Export of an outdial's targets as CSV or NDJSON, read in keyset batches: flat memory.

What it writes imports back unchanged: a CSV destination cell is the bare target when the
import would infer the same address from it, else the address object as JSON.
"""

import csv
import datetime as dt
import io
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import select, tuple_

from outdial.db import Database
from outdial.models import Outdial, OutdialTarget
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.destinations import bare_target
from outdial.strategy import reasons
from outdial.timestamps import format_timestamp

BATCH_ROWS = 5000
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


async def target_batches(
    database: Database, outdial_id: uuid.UUID, now: dt.datetime
) -> AsyncIterator[list[Any]]:
    """Live targets oldest first, by (tm_create, id): the index of target pages; each with its
    waiting reason, next_attempt_at and detail as the rules stood when the export started."""
    async with database.sessions() as session:
        outdial = await session.get(Outdial, outdial_id)
        if outdial is None:
            return
        situation = await reasons.situation(session, outdial, now)
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


async def export_targets(
    database: Database, outdial_id: uuid.UUID, format: str, now: dt.datetime
) -> AsyncIterator[bytes]:
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode()
    async for rows in target_batches(database, outdial_id, now):
        if format == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerows(
                (str(r.id), r.name, r.detail, r.data, r.status,
                 *(_cell(getattr(r, d)) for d in DESTINATIONS),
                 *(getattr(r, t) for t in TRY_COUNTS),
                 format_timestamp(r.tm_create), format_timestamp(r.tm_update),
                 r.timezone or "", r.waiting_reason or "", _time(r.next_attempt_at),
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
                "next_attempt_at": _time(r.next_attempt_at) or None,
                "waiting_detail": r.waiting_detail,
            }) + "\n" for r in rows).encode()


def _time(value: Any) -> str:
    moment = reasons.as_datetime(value)
    return format_timestamp(moment) or "" if moment is not None else ""
