"""Do-not-call lists and their entries (strategy.md §3)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx, DnclistId, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.dnclists.schemas import (
    DncEntryCreate,
    DncEntryOut,
    DnclistCreate,
    DnclistOut,
    DnclistUpdate,
)
from outdial.dnclists.service import DnclistService

router = APIRouter(tags=["dnclists"], route_class=JsonRulesRoute)

EntryId = Annotated[str, Path(description="the entry's id")]


def _service(ctx: Ctx) -> DnclistService:
    return DnclistService(ctx.session, ctx.clock)


@router.get("/dnclists")
async def list_dnclists(ctx: Ctx, paging: Paging) -> PageOut[DnclistOut]:
    """Your live do-not-call lists, newest first."""
    return PageOut.of(await _service(ctx).list_lists(ctx.principal, paging), DnclistOut.of)


@router.post("/dnclists")
async def create_dnclist(body: DnclistCreate, ctx: Ctx) -> DnclistOut:
    """Create a do-not-call list; applies_to_all makes every campaign of yours honour it."""
    row = await _service(ctx).create_list(ctx.principal, body)
    await ctx.commit()
    return DnclistOut.of(row)


@router.get("/dnclists/{dnclist_id}")
async def get_dnclist(dnclist_id: DnclistId, ctx: Ctx) -> DnclistOut:
    """One do-not-call list, deleted ones too."""
    return DnclistOut.of(await _service(ctx).get_list(ctx.principal,
                                                      parse_id(dnclist_id, "dnclist_id")))


@router.put("/dnclists/{dnclist_id}")
async def update_dnclist(dnclist_id: DnclistId, body: DnclistUpdate, ctx: Ctx) -> DnclistOut:
    """Replace a list's name, detail and applies_to_all."""
    row = await _service(ctx).update_list(ctx.principal, parse_id(dnclist_id, "dnclist_id"), body)
    await ctx.commit()
    return DnclistOut.of(row)


@router.delete("/dnclists/{dnclist_id}")
async def delete_dnclist(dnclist_id: DnclistId, ctx: Ctx) -> DnclistOut:
    """Delete a list (soft): from the next claim on, no campaign honours it."""
    row = await _service(ctx).delete_list(ctx.principal, parse_id(dnclist_id, "dnclist_id"))
    await ctx.commit()
    return DnclistOut.of(row)


@router.get("/dnclists/{dnclist_id}/entries")
async def list_dnc_entries(
    dnclist_id: DnclistId, ctx: Ctx, paging: Paging,
    value: Annotated[str | None, Query(
        description="only the entry for this destination, normalised as entries are stored "
                    "(e.g. `+1 212 555 0123`, or `(212) 555-0123` with default_region US, "
                    "finds the entry `+12125550123`)")] = None,
    default_region: Annotated[str | None, Query(
        description="the region of a national number given as `value` (ISO 3166, e.g. US)")] = None,
) -> PageOut[DncEntryOut]:
    """The list's entries, newest first, a page at a time; with `value`, the entry for that
    destination (an empty page if the list does not hold it)."""
    page = await _service(ctx).list_entries(ctx.principal, parse_id(dnclist_id, "dnclist_id"),
                                            paging, value, default_region)
    return PageOut.of(page, DncEntryOut.of)


@router.post("/dnclists/{dnclist_id}/entries")
async def add_dnc_entry(dnclist_id: DnclistId, body: DncEntryCreate, ctx: Ctx) -> DncEntryOut:
    """Add a destination, normalised; it counts from the next claim of every campaign the list
    applies to. 409 DNC_ENTRY_EXISTS if the list holds that value already."""
    entry = await _service(ctx).add_entry(ctx.principal, parse_id(dnclist_id, "dnclist_id"), body)
    await ctx.commit()
    return DncEntryOut.of(entry)


@router.delete("/dnclists/{dnclist_id}/entries/{entry_id}")
async def delete_dnc_entry(dnclist_id: DnclistId, entry_id: EntryId, ctx: Ctx) -> DncEntryOut:
    """Remove an entry: the destination may be dialed again."""
    entry = await _service(ctx).delete_entry(ctx.principal, parse_id(dnclist_id, "dnclist_id"),
                                             parse_id(entry_id, "entry_id"))
    await ctx.commit()
    return DncEntryOut.of(entry)
