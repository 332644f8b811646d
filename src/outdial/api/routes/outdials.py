"""Outdials and their targets: the seven outdial calls and the target calls of api.md."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import (
    CREDENTIALS_SECURITY,
    Ctx,
    DeferredCtx,
    OutdialId,
    Paging,
    TargetId,
    parse_id,
)
from outdial.api.schemas import PageOut, answer
from outdial.outdials.schemas import (
    OutdialCampaignUpdate,
    OutdialCreate,
    OutdialDataUpdate,
    OutdialOut,
    TargetOut,
    TargetWrite,
)
from outdial.db.driver import writer_turn
from outdial.models import OutdialTarget
from outdial.outdials.repository import NewTarget
from outdial.outdials.service import OutdialService, add_target, get_outdial_row, target_values
from outdial.schemas import NameDetail

router = APIRouter(tags=["outdials"], route_class=JsonRulesRoute)
# The hot routes, which the app tries before any other (see api/app.py).
hot_router = APIRouter(tags=["outdials"], route_class=JsonRulesRoute)


def _service(ctx: Ctx) -> OutdialService:
    return OutdialService(ctx.session, ctx.clock)


async def _with_waiting(service: OutdialService, target: OutdialTarget | NewTarget) -> TargetOut:
    waiting = await service.waiting_of(target.outdial_id, [target])
    # A NewTarget has the model's attributes, which are all TargetOut reads.
    return TargetOut.of(target, waiting.get(target.id))  # type: ignore[arg-type]


@router.get("/outdials")
async def list_outdials(ctx: Ctx, paging: Paging) -> PageOut[OutdialOut]:
    """Your live outdials (dialing lists), newest first, a page at a time."""
    return PageOut.of(await _service(ctx).list_outdials(ctx.principal, paging), OutdialOut.of)


@router.post("/outdials")
async def create_outdial(body: OutdialCreate, ctx: Ctx) -> OutdialOut:
    """Create an outdial, an empty dialing list; add targets to it or import a file."""
    outdial = await _service(ctx).create_outdial(ctx.principal, body)
    await ctx.commit()
    return OutdialOut.of(outdial)


@hot_router.get("/outdials/{outdial_id}", openapi_extra={"security": CREDENTIALS_SECURITY})
async def get_outdial(outdial_id: OutdialId, ctx: DeferredCtx) -> OutdialOut:
    """One outdial, deleted ones too (with tm_delete set)."""
    # A hot route: the caller is checked by the same statement that reads the outdial.
    async with ctx.connection() as connection, ctx.unconfirmed(connection):
        row = await get_outdial_row(connection, ctx.credential.customer_id,
                                    parse_id(outdial_id), ctx.check())
    ctx.confirm(row.permission)
    return answer(OutdialOut.of(row))  # type: ignore[return-value]


@router.put("/outdials/{outdial_id}")
async def update_outdial(outdial_id: OutdialId, body: NameDetail, ctx: Ctx) -> OutdialOut:
    """Rename an outdial: name and detail are replaced (left out: empty)."""
    outdial = await _service(ctx).update_outdial(
        ctx.principal, parse_id(outdial_id), body.name, body.detail
    )
    await ctx.commit()
    return OutdialOut.of(outdial)


@router.put("/outdials/{outdial_id}/campaign_id")
async def update_outdial_campaign(outdial_id: OutdialId, body: OutdialCampaignUpdate, ctx: Ctx) -> OutdialOut:
    """Set the campaign the outdial serves (a campaign of yours, or the nil UUID for none)."""
    outdial = await _service(ctx).set_campaign(ctx.principal, parse_id(outdial_id), body.campaign_id)
    await ctx.commit()
    return OutdialOut.of(outdial)


@router.put("/outdials/{outdial_id}/data")
async def update_outdial_data(outdial_id: OutdialId, body: OutdialDataUpdate, ctx: Ctx) -> OutdialOut:
    """Replace the outdial's data (free text handed to the dialer)."""
    outdial = await _service(ctx).set_data(ctx.principal, parse_id(outdial_id), body.data)
    await ctx.commit()
    return OutdialOut.of(outdial)


@router.delete("/outdials/{outdial_id}")
async def delete_outdial(outdial_id: OutdialId, ctx: Ctx) -> OutdialOut:
    """Delete an outdial (soft: it stays readable with tm_delete set, and is never listed)."""
    outdial = await _service(ctx).delete_outdial(ctx.principal, parse_id(outdial_id))
    await ctx.commit()
    return OutdialOut.of(outdial)


@hot_router.post("/outdials/{outdial_id}/targets",
                 openapi_extra={"security": CREDENTIALS_SECURITY})
async def create_target(outdial_id: OutdialId, body: TargetWrite, ctx: DeferredCtx) -> TargetOut:
    """Add a target with up to five destinations (tel: E.164, sip: a SIP URI, email)."""
    # A hot route: the INSERT itself checks the caller and the outdial, as a transaction of its
    # own (the counts' triggers in it), and returns whether the outdial's campaign runs: if not,
    # that is all the new target's waiting takes, and the request makes that one statement.
    # If it added nothing, the caller is checked (401, 403) and create_target says what is
    # wrong with the outdial.
    async with ctx.connection() as connection, ctx.unconfirmed(connection):
        outdial = parse_id(outdial_id)
        values = target_values(ctx.clock, ctx.credential.customer_id, outdial, body)
        async with writer_turn(ctx.database):
            added = await add_target(connection, values, ctx.check())
        principal = ctx.confirm_writer() if added is not None else await ctx.verify(connection)
    target: OutdialTarget | NewTarget
    if added is not None:
        target, waiting = added
        if waiting is not None:
            return answer(TargetOut.of(target, waiting))  # type: ignore[arg-type, return-value]
    else:
        async with ctx.database.transaction() as session:
            target = await OutdialService(session, ctx.clock).create_target(principal, outdial,
                                                                            values)
    # A running campaign's rules (lists, limits, windows) are read after the commit, outside any
    # transaction: no BEGIN and ROLLBACK round trips, and on SQLite no second turn in the
    # writers' queue.
    async with ctx.database.sessions() as session:
        await session.connection(execution_options=ctx.database.no_transaction)
        return answer(await _with_waiting(OutdialService(session, ctx.clock), target))  # type: ignore[return-value]


@router.get("/outdials/{outdial_id}/targets")
async def list_targets(
    outdial_id: OutdialId,
    ctx: Ctx,
    paging: Paging,
    status: Annotated[
        Literal["idle", "progressing", "done"] | None, Query(description="only targets in this status")
    ] = None,
) -> PageOut[TargetOut]:
    """The outdial's live targets, newest first, optionally only those in one status."""
    service = _service(ctx)
    page = await service.list_targets(ctx.principal, parse_id(outdial_id), paging, status)
    waiting = await service.waiting_of(parse_id(outdial_id), list(page.rows))
    return PageOut.of(page, lambda t: TargetOut.of(t, waiting.get(t.id)))


@router.get("/outdials/{outdial_id}/targets/{target_id}")
async def get_target(outdial_id: OutdialId, target_id: TargetId, ctx: Ctx) -> TargetOut:
    """One target of the outdial, deleted ones too."""
    service = _service(ctx)
    target = await service.get_target(
        ctx.principal, parse_id(outdial_id, "outdial_id"), parse_id(target_id, "target_id")
    )
    return await _with_waiting(service, target)


@router.put("/outdials/{outdial_id}/targets/{target_id}")
async def update_target(outdial_id: OutdialId, target_id: TargetId, body: TargetWrite, ctx: Ctx) -> TargetOut:
    """Replace a target's fields and destinations; 409 while it is being dialed."""
    service = _service(ctx)
    target = await service.update_target(
        ctx.principal, parse_id(outdial_id, "outdial_id"), parse_id(target_id, "target_id"), body
    )
    await ctx.commit()
    return await _with_waiting(service, target)


@router.delete("/outdials/{outdial_id}/targets/{target_id}")
async def delete_target(outdial_id: OutdialId, target_id: TargetId, ctx: Ctx) -> TargetOut:
    """Delete a target (soft); it is never dialed again."""
    target = await _service(ctx).delete_target(
        ctx.principal, parse_id(outdial_id, "outdial_id"), parse_id(target_id, "target_id")
    )
    await ctx.commit()
    return TargetOut.of(target)
