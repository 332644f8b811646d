"""SQL for outplans, campaigns and campaigncalls."""

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.db import index_value
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import Campaign, Campaigncall, OutdialTarget, Outplan

# Statuses in which a campaign may have attempts in flight and keeps using its outplan.
ACTIVE_STATUSES = ("run", "stopping")


def _locked(query: Select[Any], for_update: bool) -> Select[Any]:
    """Lock the row (a no-op on SQLite, whose transactions already have one writer at a time)
    and re-read it, so that a row already in the session shows its committed state."""
    if not for_update:
        return query
    return query.with_for_update().execution_options(populate_existing=True)


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- outplans ----------------------------------------------------------------------------

    async def get_outplan(
        self, customer_id: uuid.UUID, outplan_id: uuid.UUID, *, for_update: bool = False
    ) -> Outplan | None:
        query = select(Outplan).where(Outplan.id == outplan_id, Outplan.customer_id == customer_id)
        return await self.session.scalar(_locked(query, for_update))

    async def list_outplans(self, customer_id: uuid.UUID, page: PageRequest) -> Page[Outplan]:
        query = select(Outplan).where(
            Outplan.customer_id == customer_id, Outplan.tm_delete.is_(None)
        )
        return await fetch_page(self.session, query, Outplan, page)

    async def outplan_in_use(self, outplan_id: uuid.UUID) -> bool:
        """Whether a live campaign running (or stopping) uses the outplan."""
        return bool(await self.session.scalar(select(exists().where(
            Campaign.outplan_id == outplan_id,
            Campaign.status.in_(ACTIVE_STATUSES),
            Campaign.tm_delete.is_(None),
        ))))

    # -- campaigns ---------------------------------------------------------------------------

    async def get_campaign(
        self, customer_id: uuid.UUID, campaign_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaign | None:
        query = select(Campaign).where(
            Campaign.id == campaign_id, Campaign.customer_id == customer_id
        )
        return await self.session.scalar(_locked(query, for_update))

    async def list_campaigns(self, customer_id: uuid.UUID, page: PageRequest) -> Page[Campaign]:
        query = select(Campaign).where(
            Campaign.customer_id == customer_id, Campaign.tm_delete.is_(None)
        )
        return await fetch_page(self.session, query, Campaign, page)

    async def destination_types(
        self, outdial_id: uuid.UUID, slots: Sequence[int]
    ) -> set[str]:
        """The destination types the outdial's live targets hold in `slots`."""
        found: set[str] = set()
        for n in slots:
            column = OutdialTarget.__table__.c[f"destination_{n}"]
            kinds = await self.session.scalars(
                select(column["type"].as_string())
                .where(
                    OutdialTarget.outdial_id == outdial_id,
                    OutdialTarget.tm_delete.is_(None),
                    column.is_not(None),
                )
                .distinct()
            )
            found.update(kind for kind in kinds if kind)
        return found

    async def active_campaigns_on_outdial(
        self, outdial_id: uuid.UUID, *, for_update: bool = False
    ) -> list[Campaign]:
        """Live campaigns running (or stopping) on the outdial, in id order (the lock order)."""
        query = select(Campaign).where(
            Campaign.outdial_id == outdial_id,
            Campaign.status.in_(ACTIVE_STATUSES),
            Campaign.tm_delete.is_(None),
        ).order_by(Campaign.id)
        return list(await self.session.scalars(_locked(query, for_update)))

    async def has_calls_in_flight(self, campaign_id: uuid.UUID) -> bool:
        return bool(await self.session.scalar(select(exists().where(
            Campaigncall.campaign_id == campaign_id, Campaigncall.status != index_value("done")
        ))))

    # -- campaigncalls -----------------------------------------------------------------------

    async def get_campaigncall(
        self, customer_id: uuid.UUID, campaigncall_id: uuid.UUID, *, for_update: bool = False
    ) -> Campaigncall | None:
        query = select(Campaigncall).where(
            Campaigncall.id == campaigncall_id, Campaigncall.customer_id == customer_id
        )
        return await self.session.scalar(_locked(query, for_update))

    async def list_campaigncalls(
        self, customer_id: uuid.UUID, page: PageRequest, campaign_id: uuid.UUID | None = None
    ) -> Page[Campaigncall]:
        query = select(Campaigncall).where(
            Campaigncall.customer_id == customer_id, Campaigncall.tm_delete.is_(None)
        )
        if campaign_id is not None:
            query = query.where(Campaigncall.campaign_id == campaign_id)
        return await fetch_page(self.session, query, Campaigncall, page)

    def add(self, row: Outplan | Campaign) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()
