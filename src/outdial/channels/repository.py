"""SQL for channels."""

import uuid

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.campaigns.repository import ACTIVE_STATUSES
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import Campaign, Channel, Outplan


class ChannelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_channel(
        self, customer_id: uuid.UUID, channel_id: uuid.UUID, *, for_update: bool = False
    ) -> Channel | None:
        query = select(Channel).where(Channel.id == channel_id, Channel.customer_id == customer_id)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def list_channels(self, customer_id: uuid.UUID, page: PageRequest) -> Page[Channel]:
        query = select(Channel).where(
            Channel.customer_id == customer_id, Channel.tm_delete.is_(None)
        )
        return await fetch_page(self.session, query, Channel, page)

    async def channel_in_use(self, channel_id: uuid.UUID) -> bool:
        """Whether a running (or stopping) campaign dials through the channel."""
        return bool(await self.session.scalar(select(exists().where(
            Campaign.outplan_id == Outplan.id,
            or_(Outplan.sip_channel_id == channel_id, Outplan.email_channel_id == channel_id),
            Campaign.status.in_(ACTIVE_STATUSES),
            Campaign.tm_delete.is_(None),
        ))))

    def add(self, row: Channel) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()
