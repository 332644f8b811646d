"""Campaigns, the runs that dial an outdial by an outplan: the campaign calls of engine.md."""

from fastapi import APIRouter

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.campaigns.schemas import (
    CampaignActionsUpdate,
    CampaigncallOut,
    CampaignCreate,
    CampaignOut,
    CampaignServiceLevelUpdate,
    CampaignStatusUpdate,
    CampaignUpdate,
    ResourceInfo,
)
from outdial.campaigns.service import CampaignService

router = APIRouter(tags=["campaigns"], route_class=JsonRulesRoute)


def _service(ctx: Ctx) -> CampaignService:
    return CampaignService(ctx.session, ctx.clock)


@router.get("/campaigns")
async def list_campaigns(ctx: Ctx, paging: Paging) -> PageOut[CampaignOut]:
    return PageOut.of(await _service(ctx).list_campaigns(ctx.principal, paging), CampaignOut.of)


@router.post("/campaigns")
async def create_campaign(body: CampaignCreate, ctx: Ctx) -> CampaignOut:
    campaign = await _service(ctx).create_campaign(ctx.principal, body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.get("/campaigns/{campaign_id}")
async def get_campaign(campaign_id: str, ctx: Ctx) -> CampaignOut:
    return CampaignOut.of(await _service(ctx).get_campaign(ctx.principal, parse_id(campaign_id)))


@router.put("/campaigns/{campaign_id}")
async def update_campaign(campaign_id: str, body: CampaignUpdate, ctx: Ctx) -> CampaignOut:
    campaign = await _service(ctx).update_campaign(ctx.principal, parse_id(campaign_id), body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.delete("/campaigns/{campaign_id}")
async def delete_campaign(campaign_id: str, ctx: Ctx) -> CampaignOut:
    campaign = await _service(ctx).delete_campaign(ctx.principal, parse_id(campaign_id))
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/status")
async def update_campaign_status(
    campaign_id: str, body: CampaignStatusUpdate, ctx: Ctx
) -> CampaignOut:
    campaign = await _service(ctx).set_status(ctx.principal, parse_id(campaign_id), body.status)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/service_level")
async def update_campaign_service_level(
    campaign_id: str, body: CampaignServiceLevelUpdate, ctx: Ctx
) -> CampaignOut:
    campaign = await _service(ctx).set_service_level(
        ctx.principal, parse_id(campaign_id), body.service_level
    )
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/actions")
async def update_campaign_actions(
    campaign_id: str, body: CampaignActionsUpdate, ctx: Ctx
) -> CampaignOut:
    campaign = await _service(ctx).set_actions(ctx.principal, parse_id(campaign_id), body.actions)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/resource_info")
async def update_campaign_resource_info(
    campaign_id: str, body: ResourceInfo, ctx: Ctx
) -> CampaignOut:
    campaign = await _service(ctx).set_resource_info(ctx.principal, parse_id(campaign_id), body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.get("/campaigns/{campaign_id}/campaigncalls")
async def list_campaign_campaigncalls(
    campaign_id: str, ctx: Ctx, paging: Paging
) -> PageOut[CampaigncallOut]:
    page = await _service(ctx).list_campaigncalls(ctx.principal, parse_id(campaign_id), paging)
    return PageOut.of(page, CampaigncallOut.of)
