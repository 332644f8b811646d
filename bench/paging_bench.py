"""Latency of a target page at the start of a 100,000-target outdial and 90,000 rows deep.

Starts the real server stack (bench/server.py) on a fresh database, creates an outdial through
the API, bulk-inserts `--targets` rows straight into outdial_targets with the app's own models
(a multi-row INSERT, not 100,000 POSTs), then times GET /v1.0/outdials/{id}/targets?page_size=100
with no page_token and with the page_token of the page that ends `--depth` rows in. The two are
requested alternately, one at a time, so that load from elsewhere falls on both alike.

`--same-timestamp N` gives rows the same tm_create in groups of N, as a bulk import would; the
groups straddle the deep page's boundary, so its token carries the row id and the server takes
the (tm_create, id) branch of the keyset condition.

    .venv/bin/python bench/paging_bench.py --db sqlite
"""

import argparse
import asyncio
import datetime as dt
import statistics
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import insert, text

from harness import create_outdial, fresh_database, login, machine, percentile, running_server
from outdial.db import Database
from outdial.models import OutdialTarget
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.timestamps import format_page_token

PAGE_SIZE = 100
INSERT_BATCH = 5_000


def make_rows(
    outdial_id: uuid.UUID, customer_id: uuid.UUID, count: int, same_timestamp: int
) -> list[dict[str, Any]]:
    """`count` targets, a millisecond apart per group of `same_timestamp` rows."""
    base = dt.datetime(2026, 1, 1)
    offset = same_timestamp // 2  # groups do not line up with page boundaries
    rows = []
    for n in range(count):
        stamp = base + dt.timedelta(milliseconds=(n + offset) // same_timestamp)
        rows.append({
            "id": uuid.uuid4(), "customer_id": customer_id, "outdial_id": outdial_id,
            "name": f"target {n}", "detail": "", "data": "", "status": "idle",
            "destination_0": {"type": "tel", "target": f"+1555{n:07d}", "target_name": "",
                              "name": "", "detail": ""},
            **{f"destination_{s}": None for s in range(1, DESTINATION_SLOTS)},
            **{f"try_count_{s}": 0 for s in range(DESTINATION_SLOTS)},
            "tm_last_end": None, "tm_create": stamp, "tm_update": stamp, "tm_delete": None,
        })
    return rows


async def bulk_insert(database_url: str, rows: list[dict[str, Any]]) -> float:
    """Insert the rows in one transaction, then refresh the planner's statistics; seconds taken."""
    database = Database(database_url)
    began = time.perf_counter()
    try:
        async with database.transaction() as session:
            for start in range(0, len(rows), INSERT_BATCH):
                await session.execute(insert(OutdialTarget), rows[start:start + INSERT_BATCH])
        async with database.engine.connect() as connection:
            # What autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would do after an import.
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    finally:
        await database.dispose()
    return time.perf_counter() - began


def expected_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listing's order: newest first, ties broken by id, both descending."""
    return sorted(rows, key=lambda r: (r["tm_create"], r["id"]), reverse=True)


def token_before(ordered: list[dict[str, Any]], depth: int) -> str:
    """The next_page_token the server gives for the page whose last row is ordered[depth - 1]."""
    last, following = ordered[depth - 1], ordered[depth]
    tie = following["tm_create"] == last["tm_create"]
    return format_page_token(last["tm_create"], last["id"] if tie else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=90_000, help="rows before the deep page")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--same-timestamp", type=int, default=1,
                        help="rows sharing one tm_create (1: every row its own)")
    args = parser.parse_args()
    if not 0 < args.depth < args.targets - PAGE_SIZE:
        parser.error("--depth must leave a full page after it")

    print(f"machine: {machine()}; db={args.db}; {args.targets} targets, "
          f"{args.same_timestamp} per tm_create; page {PAGE_SIZE} at row 0 and row {args.depth}")
    with fresh_database(args.db) as url, running_server(url) as server:
        token = login(server.base_url)
        outdial_id = create_outdial(server.base_url, token, "paging bench")
        path = f"/v1.0/outdials/{outdial_id}/targets"
        with httpx.Client(base_url=server.base_url, params={"token": token}) as http:
            customer_id = uuid.UUID(http.get("/v1.0/outdials/" + outdial_id).json()["customer_id"])
            rows = make_rows(uuid.UUID(outdial_id), customer_id, args.targets, args.same_timestamp)
            seconds = asyncio.run(bulk_insert(url, rows))
            print(f"  inserted {args.targets} targets in {seconds:.1f} s "
                  f"({args.targets / seconds:.0f} rows/s, ANALYZE included)")

            ordered = expected_order(rows)
            pages = {"start": None, f"{args.depth} deep": token_before(ordered, args.depth)}
            first_rows = {"start": ordered[0]["id"],
                          f"{args.depth} deep": ordered[args.depth]["id"]}

            def fetch(page_token: str | None) -> tuple[float, list[dict[str, Any]]]:
                params = {"page_size": str(PAGE_SIZE)}
                if page_token is not None:
                    params["page_token"] = page_token
                began = time.perf_counter()
                response = http.get(path, params=params)
                elapsed = time.perf_counter() - began
                response.raise_for_status()
                return elapsed, response.json()["result"]

            for name, page_token in pages.items():  # the right rows, before any timing
                _, result = fetch(page_token)
                assert len(result) == PAGE_SIZE, (name, len(result))
                assert uuid.UUID(result[0]["id"]) == first_rows[name], name
            for page_token in pages.values():  # warm-up
                for _ in range(10):
                    fetch(page_token)
            timings: dict[str, list[float]] = {name: [] for name in pages}
            for _ in range(args.requests):
                for name, page_token in pages.items():
                    timings[name].append(fetch(page_token)[0])

    print()
    print("| db | page | rows per tm_create | requests | p50 ms | p99 ms | mean ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, values in timings.items():
        print(f"| {args.db} | {name} | {args.same_timestamp} | {len(values)} | "
              f"{percentile(values, 50) * 1000:.2f} | {percentile(values, 99) * 1000:.2f} | "
              f"{statistics.fmean(values) * 1000:.2f} |")
    start, deep = (statistics.median(v) for v in timings.values())
    print(f"\ndeep / start p50: {deep / start:.2f}")


if __name__ == "__main__":
    main()
