"""Counts of an outdial's live targets, kept by database triggers (migration 0007).

The triggers move outdial_target_counts (SQLite) or append to outdial_target_count_changes
(PostgreSQL) in the transaction of every change to outdial_targets, whatever code makes it.
Reading the counts is the base rows plus the changes not folded in yet, in one statement, so it
is exact at the reader's snapshot however far the compactor has got.

The compactor folds changes into the counts in bounded batches, each one transaction, so the
changes a reader sums stay few. One process compacts at a time: the owner of the lease in
count_compactions, renewed as it works; when its process dies, another server takes the lease
once it has expired. A batch that dies half way rolls back as a whole.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.clock import Clock
from outdial.db import Database, log_failure
from outdial.models import CountCompaction, OutdialTargetCount, OutdialTargetCountChange
from outdial.models.outdials import COUNT_KEY, DESTINATION_SLOTS

log = logging.getLogger(__name__)

COUNTS = OutdialTargetCount.__table__
CHANGES = OutdialTargetCountChange.__table__
COMPACTION = "outdial_target_counts"
BATCH = 10_000  # change rows folded per transaction
INTERVAL_SECONDS = 1.0  # between rounds when there was nothing to fold
LEASE_SECONDS = 30.0


@dataclass(frozen=True)
class Shape:
    """A group of an outdial's live targets alike in everything the stats look at."""

    status: str
    answered: bool
    destinations: int  # bit N set: destination_N is set
    try_counts: tuple[int, ...]
    targets: int
    zone_key: str = "*"  # strategy.windows.zone_key: the calling window holds whole keys

    def has_destination(self, slot: int) -> bool:
        return bool(self.destinations >> slot & 1)


def shapes_query(outdial_id: uuid.UUID) -> Select:
    """The outdial's counts per shape: the counts plus the changes not yet folded in."""
    key = [c for c in COUNT_KEY if c != "outdial_id"]
    parts = union_all(*(
        select(*(table.c[c] for c in key), table.c.targets).where(table.c.outdial_id == outdial_id)
        for table in (COUNTS, CHANGES)
    )).subquery()
    return (select(*(parts.c[c] for c in key), func.sum(parts.c.targets).label("targets"))
            .group_by(*(parts.c[c] for c in key)))


def shape_of(row: object) -> Shape:
    return Shape(
        status=row.status, answered=bool(row.answered), destinations=int(row.destinations),
        try_counts=tuple(int(getattr(row, f"try_count_{n}")) for n in range(DESTINATION_SLOTS)),
        targets=int(row.targets), zone_key=row.zone_key,
    )


async def compact(session: AsyncSession, most: int = BATCH) -> int:
    """Fold up to `most` of the oldest changes into the counts; returns how many were folded.

    The changes are taken with SKIP LOCKED and the counts upserted in key order, so even a
    second compactor (a lease taken over while the old owner still finished a batch) neither
    folds a change twice nor deadlocks."""
    taken = (
        CHANGES.delete()
        .where(CHANGES.c.id.in_(
            select(CHANGES.c.id).order_by(CHANGES.c.id).limit(most).with_for_update(skip_locked=True)
        ))
        .returning(*(CHANGES.c[c] for c in COUNT_KEY), CHANGES.c.targets)
        .cte("taken")
    )
    key = [taken.c[c] for c in COUNT_KEY]
    folded = select(*key, func.sum(taken.c.targets), func.count()).group_by(*key)
    rows = (await session.execute(folded.order_by(*key))).all()
    if not rows:
        return 0
    statement = pg_insert(COUNTS).values([
        {**{c: row[i] for i, c in enumerate(COUNT_KEY)}, "targets": row[len(COUNT_KEY)]}
        for row in rows
    ])
    await session.execute(statement.on_conflict_do_update(
        index_elements=list(COUNT_KEY),
        set_={"targets": COUNTS.c.targets + statement.excluded.targets},
    ))
    await session.execute(COUNTS.delete().where(COUNTS.c.targets == 0))
    return sum(row[-1] for row in rows)


async def take_lease(session: AsyncSession, owner: str, now: dt.datetime) -> bool:
    """Take or renew the compactor's lease; False while another live owner holds it."""
    expire = now + dt.timedelta(seconds=LEASE_SECONDS)
    await session.execute(
        pg_insert(CountCompaction.__table__)
        .values(name=COMPACTION, owner="", tm_lease_expire=None)
        .on_conflict_do_nothing()
    )
    result = await session.execute(
        update(CountCompaction)
        .where(CountCompaction.name == COMPACTION,
               or_(CountCompaction.owner == owner, CountCompaction.tm_lease_expire.is_(None),
                   CountCompaction.tm_lease_expire < now))
        .values(owner=owner, tm_lease_expire=expire)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


class Compactor:
    """The server's background compactor (PostgreSQL only; SQLite has nothing to fold)."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database, self.clock = database, clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self.database.is_sqlite:
            self.task = asyncio.create_task(self._run(), name="count compactor")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def round(self) -> int:
        """Fold changes while this process holds the lease; returns how many were folded."""
        folded = 0
        while True:
            async with self.database.transaction() as session:
                if not await take_lease(session, self.owner, self.clock.now()):
                    return folded
                done = await compact(session)
            folded += done
            if done < BATCH:
                return folded

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception as error:  # noqa: BLE001 - retried after the interval
                log_failure(log, "folding count changes (retrying)", error)
            await asyncio.sleep(INTERVAL_SECONDS)

