"""Campaigncalls, one per attempt: read them, and delete the finished ones."""

from fastapi import APIRouter

from outdial.api.deps import CampaigncallId, Ctx, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.campaigns.schemas import CampaigncallOut
from outdial.campaigns.service import CampaigncallService

router = APIRouter(tags=["campaigncalls"])


def _service(ctx: Ctx) -> CampaigncallService:
    return CampaigncallService(ctx.session, ctx.clock)


@router.get("/campaigncalls")
async def list_campaigncalls(ctx: Ctx, paging: Paging) -> PageOut[CampaigncallOut]:
    """Every attempt of your campaigns, newest first, a page at a time."""
    page = await _service(ctx).list_campaigncalls(ctx.principal, paging)
    return PageOut.of(page, CampaigncallOut.of)


@router.get("/campaigncalls/{campaigncall_id}")
async def get_campaigncall(campaigncall_id: CampaigncallId, ctx: Ctx) -> CampaigncallOut:
    """One attempt, deleted ones too."""
    call = await _service(ctx).get_campaigncall(ctx.principal, parse_id(campaigncall_id))
    return CampaigncallOut.of(call)


@router.delete("/campaigncalls/{campaigncall_id}")
async def delete_campaigncall(campaigncall_id: CampaigncallId, ctx: Ctx) -> CampaigncallOut:
    """Delete a finished attempt (soft); 409 CAMPAIGNCALL_IN_PROGRESS unless it is done."""
    call = await _service(ctx).delete_campaigncall(ctx.principal, parse_id(campaigncall_id))
    await ctx.commit()
    return CampaigncallOut.of(call)
