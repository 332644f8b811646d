"""SQL for outdials and targets."""

import uuid

from sqlalchemy import ColumnElement, Row, ScalarSelect, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import Campaign, Outdial, OutdialTarget


_OUTDIALS, _TARGETS = Outdial.__table__, OutdialTarget.__table__


class OutdialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_outdial(
        self, customer_id: uuid.UUID, outdial_id: uuid.UUID, *, for_update: bool = False
    ) -> Outdial | None:
        query = select(Outdial).where(Outdial.id == outdial_id, Outdial.customer_id == customer_id)
        if for_update:
            # Locked (and re-read) when its campaign link is about to change.
            query = query.with_for_update().execution_options(populate_existing=True)
        return await self.session.scalar(query)

    async def outdial_row(
        self, customer_id: uuid.UUID, outdial_id: uuid.UUID, also: ScalarSelect
    ) -> Row | None:
        """The outdial's columns and `also` (as `also`) in one Core statement."""
        connection = await self.session.connection()
        return (await connection.execute(
            select(*_OUTDIALS.c, also.label("also"))
            .where(_OUTDIALS.c.id == outdial_id, _OUTDIALS.c.customer_id == customer_id)
        )).one_or_none()

    async def insert_target_if(self, target: OutdialTarget, allowed: ColumnElement[bool]) -> bool:
        """Insert the (unsaved) target in one statement, INSERT … SELECT from its outdial, only
        if the outdial is its customer's and live and `allowed` holds; whether it was."""
        values = select(*(literal(getattr(target, c.key), c.type) for c in _TARGETS.c)).where(
            _OUTDIALS.c.id == target.outdial_id, _OUTDIALS.c.customer_id == target.customer_id,
            _OUTDIALS.c.tm_delete.is_(None), allowed,
        )
        connection = await self.session.connection()
        result = await connection.execute(insert(_TARGETS).from_select(list(_TARGETS.c.keys()), values))
        return result.rowcount == 1

    async def get_campaign(self, customer_id: uuid.UUID, campaign_id: uuid.UUID) -> Campaign | None:
        """The campaign an outdial may name: only one of the same customer."""
        return await self.session.scalar(
            select(Campaign).where(Campaign.id == campaign_id, Campaign.customer_id == customer_id)
        )

    async def list_outdials(self, customer_id: uuid.UUID, page: PageRequest) -> Page[Outdial]:
        query = select(Outdial).where(Outdial.customer_id == customer_id, Outdial.tm_delete.is_(None))
        return await fetch_page(self.session, query, Outdial, page)

    async def get_target(
        self, outdial_id: uuid.UUID, target_id: uuid.UUID, *, for_update: bool = False
    ) -> OutdialTarget | None:
        query = select(OutdialTarget).where(
            OutdialTarget.id == target_id, OutdialTarget.outdial_id == outdial_id
        )
        # Locked when it is about to change, so the engine cannot claim it in between.
        return await self.session.scalar(query.with_for_update() if for_update else query)

    async def list_targets(
        self, outdial_id: uuid.UUID, page: PageRequest, status: str | None = None
    ) -> Page[OutdialTarget]:
        query = select(OutdialTarget).where(
            OutdialTarget.outdial_id == outdial_id, OutdialTarget.tm_delete.is_(None)
        )
        if status is not None:
            query = query.where(OutdialTarget.status == status)
        return await fetch_page(self.session, query, OutdialTarget, page)

    def add(self, row: Outdial | OutdialTarget) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()
