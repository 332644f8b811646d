"""CPU cost of checking imported rows, per row, in one process (what each checking worker does).

    .venv/bin/python bench/checking_bench.py --rows 200000

Builds the import bench's CSV rows (bench/import_bench.py) and the same rows as NDJSON, cuts
them as the server does and times check_chunk on every chunk: best of --repeat runs, process
CPU time. Run it from another checkout (PYTHONPATH=<checkout>/src) to compare two versions.
"""

import argparse
import asyncio
import csv
import datetime as dt
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.import_bench import make_file

from outdial.imports.checking import RowRules, check_chunk
from outdial.imports.ids import new_salt
from outdial.imports.reading import read_chunks


async def chunks_of(data: bytes, format: str) -> list:
    async def stream():
        for start in range(0, len(data), 64 * 1024):
            yield data[start:start + 64 * 1024]

    return [chunk async for chunk in read_chunks(format, stream())]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        make_file(path, args.rows)
        csv_data = path.read_bytes()
    rows = list(csv.DictReader(csv_data.decode().splitlines()))
    ndjson_data = "".join(json.dumps({k: v for k, v in row.items() if v}) + "\n" for row in rows).encode()
    rules = RowRules(import_id=uuid.uuid4(), customer_id=uuid.uuid4(), outdial_id=uuid.uuid4(),
                     tm_create=dt.datetime(2026, 1, 1), default_region="US", require_valid=False,
                     dedupe=False, encoding="copy", id_salt=new_salt())
    import outdial

    print(f"outdial from {Path(outdial.__file__).parent}, {args.rows} rows")
    for format, data in (("csv", csv_data), ("ndjson", ndjson_data)):
        chunks = asyncio.run(chunks_of(data, format))
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            good = sum(len(check_chunk(chunk, rules).numbers) for chunk in chunks)
            best = min(best, time.process_time() - started)
        assert good == args.rows, good
        print(f"{format:7} {best:6.2f} s CPU, {best / args.rows * 1e6:5.2f} µs per row")


if __name__ == "__main__":
    main()
