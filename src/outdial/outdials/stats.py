"""Live statistics of an outdial, from counters kept exact by the database (outdials.counts).

"Dialable now" follows the engine's rule (engine.md §2) with the outplan of the outdial's
campaign: an idle target with some slot that has a destination and tries left, never tried or
last tried at least try_interval ago. One with tries left whose interval has not passed is
waiting. With no campaign (or outplan) there are no limits to apply: every idle target counts
as dialable. A deleted outdial has nothing dialable.
"""

import datetime as dt
import uuid

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.db import index_value
from outdial.engine.repository import TARGETS, Limits, limits_of, tries_left
from outdial.engine.rules import choose_destination
from outdial.models import Campaign, Outdial, Outplan
from outdial.models.base import NIL_UUID
from outdial.models.outdials import DESTINATION_SLOTS
from outdial.outdials.counts import shape_of, shapes_query
from outdial.strategy import reasons

ATTEMPTS = "attempts made on destination_{n}: the sum of the targets' try_count_{n}"


class OutdialStats(BaseModel):
    """Live figures of an outdial's targets."""

    outdial_id: uuid.UUID = Field(description="the outdial")
    campaign_id: uuid.UUID = Field(description="the campaign it serves; the nil UUID if none")
    outplan_id: uuid.UUID = Field(description="that campaign's outplan; the nil UUID if none")
    targets: int = Field(description="live targets")
    idle: int = Field(description="targets waiting to be dialed (or to be retried)")
    progressing: int = Field(description="targets being dialed now")
    done: int = Field(description="targets finished: answered or exhausted")
    answered: int = Field(description="done targets with a successful attempt")
    exhausted: int = Field(description="done targets without one")
    attempts_0: int = Field(description=ATTEMPTS.format(n=0))
    attempts_1: int = Field(description=ATTEMPTS.format(n=1))
    attempts_2: int = Field(description=ATTEMPTS.format(n=2))
    attempts_3: int = Field(description=ATTEMPTS.format(n=3))
    attempts_4: int = Field(description=ATTEMPTS.format(n=4))
    attempts: int = Field(description="attempts on every slot")
    dialable_now: int = Field(description="idle targets with tries left whose try_interval has passed")
    waiting_retry: int = Field(description="idle targets with tries left still in their try_interval")
    waiting_reasons: dict[str, int] | None = Field(
        default=None,
        description="live targets per waiting_reason (strategy: the rules the engine claims by), "
        "every reason present; only when asked for with `reasons=true` (it reads the targets "
        "some rule may hold now: strategy.reasons_counts)")


async def _outplan_of(session: AsyncSession, outdial: Outdial) -> tuple[uuid.UUID, Outplan | None]:
    if outdial.campaign_id == NIL_UUID:
        return NIL_UUID, None
    campaign = await session.get(Campaign, outdial.campaign_id)
    if campaign is None or campaign.tm_delete is not None or campaign.outplan_id == NIL_UUID:
        return outdial.campaign_id, None
    outplan = await session.get(Outplan, campaign.outplan_id)
    return outdial.campaign_id, outplan if outplan is not None and outplan.tm_delete is None else None


def _waiting_query(outdial_id: uuid.UUID, limits: Limits | None, cutoff: dt.datetime) -> Select:
    """Idle targets with tries left whose last attempt ended after `cutoff`: a range of the
    index ix_outdial_targets_retry_wait, as long as the targets ended within the interval."""
    query = select(func.count()).where(
        TARGETS.c.outdial_id == outdial_id, TARGETS.c.tm_delete.is_(None),
        TARGETS.c.status == index_value("idle"), TARGETS.c.tm_last_end.is_not(None),
        TARGETS.c.tm_last_end > cutoff,
    )
    return query if limits is None else query.where(tries_left(limits))


async def outdial_stats(
    session: AsyncSession, outdial: Outdial, now: dt.datetime, reasons_wanted: bool = False
) -> OutdialStats:
    """The stats from the counts per shape (outdials.counts), without reading the targets:
    only those still in their retry interval are counted from the table, along an index."""
    campaign_id, outplan = await _outplan_of(session, outdial)
    limits = limits_of(outplan) if outplan is not None else None
    cutoff = now - dt.timedelta(milliseconds=outplan.try_interval) if outplan else now
    # One statement: the counts and the waiting targets are read at one snapshot.
    shapes_part = shapes_query(outdial.id).subquery()
    waiting_part = _waiting_query(outdial.id, limits, cutoff).scalar_subquery()
    rows = (await session.execute(select(shapes_part, waiting_part.label("waiting")))).all()
    if not rows:  # no shapes: read the waiting count alone (it is 0 then, but say so)
        waiting = int(await session.scalar(select(waiting_part)) or 0)
    else:
        waiting = int(rows[0].waiting)
    shapes = [shape_of(row) for row in rows]
    count = {s: sum(x.targets for x in shapes if x.status == s) for s in ("idle", "progressing", "done")}
    answered = sum(x.targets for x in shapes if x.status == "done" and x.answered)
    attempts = [sum(x.targets * x.try_counts[n] for x in shapes) for n in range(DESTINATION_SLOTS)]
    # The engine's own rule, applied once per shape instead of once per target.
    with_tries = sum(
        x.targets for x in shapes
        if x.status == "idle" and (limits is None or choose_destination(
            [True if x.has_destination(n) else None for n in range(DESTINATION_SLOTS)],
            x.try_counts, limits) is not None)
    )
    live = outdial.tm_delete is None
    return OutdialStats(
        outdial_id=outdial.id, campaign_id=campaign_id,
        outplan_id=outplan.id if outplan else NIL_UUID,
        targets=sum(count.values()), **count,
        answered=answered, exhausted=count["done"] - answered,
        **{f"attempts_{n}": a for n, a in enumerate(attempts)}, attempts=sum(attempts),
        dialable_now=with_tries - waiting if live else 0,
        waiting_retry=waiting if live else 0,
        waiting_reasons=await waiting_reasons(session, outdial, now) if reasons_wanted else None,
    )


async def waiting_reasons(session: AsyncSession, outdial: Outdial, now: dt.datetime) -> dict[str, int]:
    """The outdial's targets counted per waiting reason: a part of its own, computed from the
    reason's SQL expression, whatever the other figures are computed from."""
    return await reasons.reason_counts(session, await reasons.situation(session, outdial, now))
