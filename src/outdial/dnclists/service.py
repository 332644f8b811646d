"""Rules of do-not-call lists and entries: tenancy, normalised values, one entry per value."""

import uuid

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.service import Principal
from outdial.clock import Clock
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.dnclists.schemas import DncEntryCreate, DnclistCreate
from outdial.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from outdial.models import DncEntry, Dnclist
from outdial.outdials.destinations import entry_expiry
from outdial.strategy.dnc import entry_value


def parse_region(value: str | None, field: str = "default_region") -> str | None:
    region = (value or "").strip().upper() or None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidArgument(field, f"{value!r} is not a region code (ISO 3166 alpha-2, such "
                                     "as US or GB)")
    return region


class DnclistService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.clock = clock

    async def create_list(self, principal: Principal, body: DnclistCreate) -> Dnclist:
        row = Dnclist(id=uuid.uuid4(), customer_id=principal.customer_id, name=body.name,
                      detail=body.detail, applies_to_all=body.applies_to_all,
                      tm_create=self.clock.now())
        self.session.add(row)
        await self.session.flush()
        return row

    async def list_lists(self, principal: Principal, page: PageRequest) -> Page[Dnclist]:
        query = select(Dnclist).where(Dnclist.customer_id == principal.customer_id,
                                      Dnclist.tm_delete.is_(None))
        return await fetch_page(self.session, query, Dnclist, page)

    async def get_list(self, principal: Principal, dnclist_id: uuid.UUID) -> Dnclist:
        """The list, deleted or not; another customer's is as missing as a made-up id."""
        row = await self.session.scalar(select(Dnclist).where(
            Dnclist.id == dnclist_id, Dnclist.customer_id == principal.customer_id))
        if row is None:
            raise NotFound(f"dnclist {dnclist_id} not found", "DNCLIST_NOT_FOUND")
        return row

    async def live_list(self, principal: Principal, dnclist_id: uuid.UUID) -> Dnclist:
        row = await self.get_list(principal, dnclist_id)
        if row.tm_delete is not None:
            raise FailedPrecondition(f"dnclist {dnclist_id} is deleted", "DNCLIST_DELETED")
        return row

    async def update_list(
        self, principal: Principal, dnclist_id: uuid.UUID, body: DnclistCreate
    ) -> Dnclist:
        row = await self.live_list(principal, dnclist_id)
        row.name, row.detail, row.applies_to_all = body.name, body.detail, body.applies_to_all
        row.tm_update = self.clock.now()
        return row

    async def delete_list(self, principal: Principal, dnclist_id: uuid.UUID) -> Dnclist:
        """Soft delete: a deleted list no longer applies; campaigns naming it keep its id."""
        row = await self.get_list(principal, dnclist_id)
        if row.tm_delete is None:
            row.tm_delete = row.tm_update = self.clock.now()
        return row

    # -- entries -----------------------------------------------------------------------------

    async def add_entry(
        self, principal: Principal, dnclist_id: uuid.UUID, body: DncEntryCreate
    ) -> DncEntry:
        now = self.clock.now()
        kind, value = entry_value(body.value, parse_region(body.default_region), kind=body.type)
        expire = entry_expiry(body.tm_expire, now)
        dnclist = await self.live_list(principal, dnclist_id)
        existing = await self.session.scalar(
            select(DncEntry).where(DncEntry.dnclist_id == dnclist.id, DncEntry.value == value)
            .with_for_update())
        if existing is not None:
            if existing.tm_expire is not None and existing.tm_expire <= now:
                # An entry that expired is no longer in force: the value added again is a new
                # opt-out. Refusing it as a duplicate would leave the person dialable.
                existing.type, existing.tm_expire, existing.tm_create = kind, expire, now
                return existing
            raise AlreadyExists(f"{value} is already on dnclist {dnclist_id}",
                                "DNC_ENTRY_EXISTS")
        entry = DncEntry(id=uuid.uuid4(), customer_id=dnclist.customer_id, dnclist_id=dnclist.id,
                         type=kind, value=value, tm_expire=expire, tm_create=now)
        self.session.add(entry)
        try:
            # The unique index decides between two adds of one value at once.
            await self.session.flush()
        except IntegrityError:
            raise AlreadyExists(f"{value} is already on dnclist {dnclist_id}",
                                "DNC_ENTRY_EXISTS") from None
        return entry

    async def list_entries(
        self, principal: Principal, dnclist_id: uuid.UUID, page: PageRequest,
        value: str | None = None, default_region: str | None = None,
    ) -> Page[DncEntry]:
        """The list's entries; with `value`, only the entry for that destination (at most one),
        the value normalised as add_entry stores it, so any spelling of it finds it."""
        await self.get_list(principal, dnclist_id)
        query = select(DncEntry).where(DncEntry.dnclist_id == dnclist_id)
        if value is not None:
            _, stored = entry_value(value, parse_region(default_region))
            query = query.where(DncEntry.value == stored)
        return await fetch_page(self.session, query, DncEntry, page)

    async def delete_entry(
        self, principal: Principal, dnclist_id: uuid.UUID, entry_id: uuid.UUID
    ) -> DncEntry:
        """Remove the entry for good: the destination may be dialed again from the next claim."""
        await self.get_list(principal, dnclist_id)
        entry = await self.session.scalar(select(DncEntry).where(
            DncEntry.id == entry_id, DncEntry.dnclist_id == dnclist_id).with_for_update())
        if entry is None:
            raise NotFound(f"entry {entry_id} not found in dnclist {dnclist_id}",
                           "DNC_ENTRY_NOT_FOUND")
        await self.session.delete(entry)
        await self.session.flush()
        return entry
