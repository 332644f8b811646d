"""Export of a do-not-call list's entries as CSV or NDJSON; what it writes imports back."""

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator

from outdial.db import Database
from outdial.models import DncEntry
from outdial.outdials.export import keyset_batches
from outdial.timestamps import format_timestamp

CSV_COLUMNS = ("value", "tm_expire", "type", "id", "tm_create")
_TABLE = DncEntry.__table__


async def export_entries(database: Database, dnclist_id: uuid.UUID, format: str) -> AsyncIterator[bytes]:
    """Every entry, oldest first (along ix_dnc_entries_page); an entry that never expires has
    an empty tm_expire (null in NDJSON), which an import reads as never."""
    if format == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode()
    async for rows in keyset_batches(database, _TABLE, _TABLE.c.dnclist_id == dnclist_id):
        if format == "csv":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows(
                (r.value, "" if r.tm_expire is None else format_timestamp(r.tm_expire), r.type,
                 str(r.id), format_timestamp(r.tm_create))
                for r in rows
            )
            yield buffer.getvalue().encode()
        else:
            yield "".join(json.dumps({
                "value": r.value, "tm_expire": None if r.tm_expire is None else format_timestamp(r.tm_expire),
                "type": r.type, "id": str(r.id), "dnclist_id": str(r.dnclist_id),
                "tm_create": format_timestamp(r.tm_create),
            }) + "\n" for r in rows).encode()
