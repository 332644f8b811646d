"""Checks a campaign's recorded attempts against the engine's promises (used by tests and bench)."""

import datetime as dt
import uuid
from collections import defaultdict
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.engine.rules import SLOTS
from outdial.models import Campaign, Campaigncall, OutdialTarget, Outplan
from outdial.strategy.dnc import DNC_OUTCOME
from outdial.strategy.retry import least_wait


async def audit_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, *, finished: bool = True
) -> list[str]:
    """Every broken promise found, as sentences; an empty list means none.

    Per target: attempts recorded on slot N == try_count_N <= max_try_count_N, numbered 1..n;
    no two attempts overlapped in time; each attempt began at least try_interval after the
    previous one ended. With `finished`, also: every live target is done, every attempt closed.
    """
    campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    outplan = await session.get(Outplan, campaign.outplan_id)
    assert outplan is not None
    interval = dt.timedelta(milliseconds=outplan.try_interval)
    targets = list(
        await session.scalars(
            select(OutdialTarget).where(OutdialTarget.outdial_id == campaign.outdial_id)
        )
    )
    calls: dict[uuid.UUID, list[Campaigncall]] = defaultdict(list)
    for call in await session.scalars(
        select(Campaigncall)
        .where(Campaigncall.campaign_id == campaign_id, Campaigncall.outcome != DNC_OUTCOME)
        .order_by(Campaigncall.tm_create, Campaigncall.id)
    ):
        # A slot passed over for a do-not-call list is recorded, but was no try.
        calls[call.outdial_target_id].append(call)

    problems: list[str] = []
    for target in targets:
        mine = calls.get(target.id, [])
        if finished and target.tm_delete is None and target.status != "done":
            problems.append(f"target {target.id} is {target.status}, not done")
        for n in SLOTS:
            numbers = [c.try_count for c in mine if c.destination_index == n]
            if len(numbers) != target.try_count(n):
                problems.append(
                    f"target {target.id} slot {n}: {len(numbers)} attempts recorded, "
                    f"try_count_{n} is {target.try_count(n)}"
                )
            if target.try_count(n) > outplan.max_try_count(n):
                problems.append(
                    f"target {target.id} slot {n}: try_count {target.try_count(n)} "
                    f"over max {outplan.max_try_count(n)}"
                )
            if sorted(numbers) != list(range(1, len(numbers) + 1)):
                problems.append(f"target {target.id} slot {n}: attempts numbered {numbers}")
        for before, after in pairwise(mine):
            if before.tm_end is None or after.tm_create < before.tm_end:
                problems.append(f"target {target.id}: attempts {before.id} and {after.id} overlap")
            elif after.tm_create - before.tm_end < _least_wait(outplan, before, interval):
                problems.append(
                    f"target {target.id}: attempt {after.id} began "
                    f"{after.tm_create - before.tm_end} after the previous ended"
                )
        if finished:
            problems.extend(f"attempt {c.id} is {c.status}" for c in mine if c.status != "done")
    return problems


def _least_wait(outplan: Outplan, before: Campaigncall, interval: dt.timedelta) -> dt.timedelta:
    """The shortest wait allowed after `before`: try_interval, or its outcome's retry rule."""
    if not outplan.retry_rules:
        return interval
    return dt.timedelta(
        milliseconds=least_wait(outplan.retry_rules, before.outcome, outplan.try_interval))
