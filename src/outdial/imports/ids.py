"""The ids an import gives the rows it creates: in file order, still version 4 UUIDs.

Random ids scatter an import's rows over every index that ends in `id` (the primary key, and
the claim and page indexes, whose other columns are the same for all of an import's rows):
each row lands on a page of its own, and PostgreSQL writes that whole page to its log again
after each checkpoint. Ids in file order put the rows of an import side by side at the right
edge of those indexes instead, which halves what PostgreSQL spends taking an import
(bench/RESULTS.md), and gives an import's targets the file's order wherever they are read by
id: claims (earliest due first, then id) and pages.

The 122 bits a version 4 UUID leaves free hold, from the most significant:

- 32 bits: when the import started (Unix seconds), so later imports sort after earlier ones;
- 28 bits: the chunk's place in the upload (reading.Chunk.sequence);
- 22 bits: the row's place in its chunk (reading caps a chunk well below 2**22 rows);
- 40 bits: drawn at random once per import, which keeps apart imports started in the same
  second.

The version (4) and variant bits sit where RFC 9562 puts them, so every id is a valid UUIDv4
as the wire format says. Only ids an import creates are made so; the API's are random.
"""

import datetime as dt
import os

SECONDS_BITS, CHUNK_BITS, ROW_BITS, SALT_BITS = 32, 28, 22, 40
MAX_CHUNKS, MAX_CHUNK_ROWS = 1 << CHUNK_BITS, 1 << ROW_BITS
_VERSION_4 = 4 << 76
_VARIANT = 2 << 62
_LOW_62 = (1 << 62) - 1


def new_salt() -> int:
    """The random part of an import's ids, drawn once when the import starts."""
    return int.from_bytes(os.urandom(SALT_BITS // 8), "big")


def chunk_ids(started: dt.datetime, salt: int, sequence: int, count: int) -> list[str]:
    """The ids (32 hex digits, the form both databases read) of rows 1..count of chunk
    `sequence` of an import that started at `started` (naive UTC)."""
    if not 0 <= sequence < MAX_CHUNKS or count >= MAX_CHUNK_ROWS:
        raise ValueError(f"chunk {sequence} of {count} rows is beyond what import ids can number")
    seconds = int(started.replace(tzinfo=dt.UTC).timestamp()) % (1 << SECONDS_BITS)
    first = (((seconds << CHUNK_BITS | sequence) << ROW_BITS | 1) << SALT_BITS) | salt
    # The 122 bits around the version and variant bits. Within one chunk only the low 62 bits
    # change (row and salt), so the first 16 hex digits are the chunk's.
    head = ((first >> 74) << 80 | _VERSION_4 | ((first >> 62) & 0xFFF) << 64) >> 64
    prefix = f"{head:016x}"
    low = first & _LOW_62
    return [f"{prefix}{_VARIANT | (low + (row << SALT_BITS)):016x}" for row in range(count)]
