"""What the outdial's dedupe turn costs: one deduping import beside a plain one, and three
deduping imports of the same file sent at once, against a real `outdial serve`.

    .venv/bin/python bench/import_dedupe_bench.py --database postgresql --rows 200000
    .venv/bin/python bench/import_dedupe_bench.py --database sqlite --rows 200000

Each run imports into a fresh outdial. Prints wall times and the targets each outdial ends with.
"""

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.import_bench import Server, make_file
from tests import databases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outdial-bench-"))
    url = (databases.create_postgres_database() if args.database == "postgresql"
           else f"sqlite+aiosqlite:///{work / 'bench.db'}")
    upload = work / "targets.csv"
    make_file(upload, args.rows)
    body = upload.read_bytes()
    print(f"{args.database}: {args.rows:,} rows, {len(body) / 1e6:.0f} MB of CSV")
    server = Server(url)
    http, params = server.http, server.params

    def outdial() -> str:
        return str(http.post("/v1.0/outdials", json={}, params=params).json()["id"])

    def send(target: str, dedupe: bool) -> tuple[float, Any]:
        started = time.perf_counter()
        response = http.post(f"/v1.0/outdials/{target}/imports", content=body,
                             params={**params, "default_region": "US", "dedupe": str(dedupe).lower()},
                             headers={"Content-Type": "text/csv"})
        return time.perf_counter() - started, response.json()

    def targets(target: str) -> int:
        return int(http.get(f"/v1.0/outdials/{target}/stats", params=params).json()["targets"])

    try:
        for dedupe in (False, True, False, True):
            target = outdial()
            elapsed, job = send(target, dedupe)
            print(f"one import, dedupe={str(dedupe).lower():5}: {elapsed:5.1f} s, "
                  f"imported {job['rows_imported']:,}, duplicate {job['rows_duplicate']:,}")
        target = outdial()
        started = time.perf_counter()
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda _: send(target, True), range(3)))
        elapsed = time.perf_counter() - started
        for _, job in results:
            if "error" in job:
                print(f"  an import was refused: {job['error']}")
        results = [(t, j) for t, j in results if "error" not in j]
        print(f"three deduping imports at once: {elapsed:.1f} s in all "
              f"(each {', '.join(f'{t:.1f}' for t, _ in results)} s), imported "
              f"{sum(j['rows_imported'] for _, j in results):,}, duplicate "
              f"{sum(j['rows_duplicate'] for _, j in results):,}, targets {targets(target):,}")
    finally:
        server.stop()
        if args.database == "postgresql":
            databases.drop_postgres_database(url)


if __name__ == "__main__":
    main()
