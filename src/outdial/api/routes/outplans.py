"""Outplans, the retry plans campaigns follow: the outplan calls of engine.md."""

from fastapi import APIRouter

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx, OutplanId, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.campaigns.schemas import DialInfo, OutplanCreate, OutplanOut
from outdial.campaigns.service import OutplanService
from outdial.schemas import NameDetail

router = APIRouter(tags=["outplans"], route_class=JsonRulesRoute)


def _service(ctx: Ctx) -> OutplanService:
    return OutplanService(ctx.session, ctx.clock)


@router.get("/outplans")
async def list_outplans(ctx: Ctx, paging: Paging) -> PageOut[OutplanOut]:
    """Your live outplans (retry plans), newest first, a page at a time."""
    return PageOut.of(await _service(ctx).list_outplans(ctx.principal, paging), OutplanOut.of)


@router.post("/outplans")
async def create_outplan(body: OutplanCreate, ctx: Ctx) -> OutplanOut:
    """Create an outplan: how long to ring, how long between tries, how many tries per slot."""
    outplan = await _service(ctx).create_outplan(ctx.principal, body)
    await ctx.commit()
    return OutplanOut.of(outplan)


@router.get("/outplans/{outplan_id}")
async def get_outplan(outplan_id: OutplanId, ctx: Ctx) -> OutplanOut:
    """One outplan, deleted ones too."""
    return OutplanOut.of(await _service(ctx).get_outplan(ctx.principal, parse_id(outplan_id)))


@router.put("/outplans/{outplan_id}")
async def update_outplan(outplan_id: OutplanId, body: NameDetail, ctx: Ctx) -> OutplanOut:
    """Rename an outplan: name and detail are replaced (left out: empty)."""
    outplan = await _service(ctx).update_outplan(
        ctx.principal, parse_id(outplan_id), body.name, body.detail
    )
    await ctx.commit()
    return OutplanOut.of(outplan)


@router.put("/outplans/{outplan_id}/dial_info")
async def update_outplan_dial_info(outplan_id: OutplanId, body: DialInfo, ctx: Ctx) -> OutplanOut:
    """Replace how hard the outplan tries; a field left out takes its default."""
    outplan = await _service(ctx).set_dial_info(ctx.principal, parse_id(outplan_id), body)
    await ctx.commit()
    return OutplanOut.of(outplan)


@router.delete("/outplans/{outplan_id}")
async def delete_outplan(outplan_id: OutplanId, ctx: Ctx) -> OutplanOut:
    """Delete an outplan (soft); 409 OUTPLAN_IN_USE while a campaign on it runs."""
    outplan = await _service(ctx).delete_outplan(ctx.principal, parse_id(outplan_id))
    await ctx.commit()
    return OutplanOut.of(outplan)
