"""Live statistics of an outdial, counted by aggregate SQL over its targets.

"Dialable now" follows the engine's rule (engine.md §2) with the outplan of the outdial's
campaign: an idle target with some slot that has a destination and tries left, never tried or
last tried at least try_interval ago. One with tries left whose interval has not passed is
waiting. With no campaign (or outplan) there are no limits to apply: every idle target counts
as dialable. A deleted outdial has nothing dialable.
"""

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.models import Campaign, Outdial, Outplan
from outdial.models.base import NIL_UUID
from outdial.models.outdials import DESTINATION_SLOTS
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
    waiting_reasons: dict[str, int] = Field(
        description="live targets per waiting_reason (strategy: the rules the engine claims by), "
        "every reason present")


_OUTDIAL = bindparam("outdial_id", type_=Uuid())


def _tries_left(outplan: Outplan | None) -> str:
    if outplan is None:
        return "1 = 1"
    return "(" + " OR ".join(
        f"(destination_{n} IS NOT NULL AND try_count_{n} < {int(outplan.max_try_count(n))}"
        f" AND first_slot <= {n})"
        for n in range(DESTINATION_SLOTS)
    ) + ")"


async def _outplan_of(session: AsyncSession, outdial: Outdial) -> tuple[uuid.UUID, Outplan | None]:
    if outdial.campaign_id == NIL_UUID:
        return NIL_UUID, None
    campaign = await session.get(Campaign, outdial.campaign_id)
    if campaign is None or campaign.tm_delete is not None or campaign.outplan_id == NIL_UUID:
        return outdial.campaign_id, None
    outplan = await session.get(Outplan, campaign.outplan_id)
    return outdial.campaign_id, outplan if outplan is not None and outplan.tm_delete is None else None


async def outdial_stats(session: AsyncSession, outdial: Outdial, now: dt.datetime) -> OutdialStats:
    campaign_id, outplan = await _outplan_of(session, outdial)
    cutoff = now - dt.timedelta(milliseconds=outplan.try_interval) if outplan else now
    tries_left = _tries_left(outplan)
    sums = ", ".join(f"COALESCE(SUM(try_count_{n}), 0) AS a{n}" for n in range(DESTINATION_SLOTS))
    # Typed parameters, so that each database gets the id and time in the form it stores.
    rows = (await session.execute(text(f"""
        SELECT status, COUNT(*) AS n, {sums},
               SUM(CASE WHEN {tries_left} AND (tm_last_end IS NULL OR tm_last_end <= :cutoff)
                        THEN 1 ELSE 0 END) AS dialable,
               SUM(CASE WHEN {tries_left} AND tm_last_end > :cutoff THEN 1 ELSE 0 END) AS waiting
        FROM outdial_targets
        WHERE outdial_id = :outdial_id AND tm_delete IS NULL
        GROUP BY status
    """).bindparams(_OUTDIAL, bindparam("cutoff", type_=DateTime())),
        {"outdial_id": outdial.id, "cutoff": cutoff})).all()
    answered = await session.scalar(text("""
        SELECT COUNT(DISTINCT c.outdial_target_id)
        FROM campaigncalls c JOIN outdial_targets t ON t.id = c.outdial_target_id
        WHERE c.outdial_id = :outdial_id AND c.result = 'success'
          AND t.status = 'done' AND t.tm_delete IS NULL
    """).bindparams(_OUTDIAL), {"outdial_id": outdial.id}) or 0
    by_status: dict[str, Any] = {row.status: row for row in rows}
    count = {s: (by_status[s].n if s in by_status else 0) for s in ("idle", "progressing", "done")}
    attempts = [sum(int(getattr(row, f"a{n}")) for row in rows) for n in range(DESTINATION_SLOTS)]
    idle = by_status.get("idle")
    live = outdial.tm_delete is None and idle is not None
    return OutdialStats(
        outdial_id=outdial.id, campaign_id=campaign_id,
        outplan_id=outplan.id if outplan else NIL_UUID,
        targets=sum(row.n for row in rows), **count,
        answered=answered, exhausted=count["done"] - answered,
        **{f"attempts_{n}": a for n, a in enumerate(attempts)}, attempts=sum(attempts),
        dialable_now=int(idle.dialable) if live else 0,
        waiting_retry=int(idle.waiting) if live else 0,
        waiting_reasons=await waiting_reasons(session, outdial, now),
    )


async def waiting_reasons(session: AsyncSession, outdial: Outdial, now: dt.datetime) -> dict[str, int]:
    """The outdial's targets counted per waiting reason: a part of its own, computed from the
    reason's SQL expression, whatever the other figures are computed from."""
    return await reasons.reason_counts(session, await reasons.situation(session, outdial, now))
