"""Campaigns, the runs that dial an outdial by an outplan: the campaign calls of engine.md."""

from fastapi import APIRouter

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import CampaignId, Ctx, Paging, parse_id
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
    """Your live campaigns, newest first, a page at a time."""
    return PageOut.of(await _service(ctx).list_campaigns(ctx.principal, paging), CampaignOut.of)


@router.post("/campaigns")
async def create_campaign(body: CampaignCreate, ctx: Ctx) -> CampaignOut:
    """Create a campaign (status stop) joining an outplan and an outdial no other campaign uses."""
    campaign = await _service(ctx).create_campaign(ctx.principal, body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.get("/campaigns/{campaign_id}")
async def get_campaign(campaign_id: CampaignId, ctx: Ctx) -> CampaignOut:
    """One campaign, deleted ones too."""
    return CampaignOut.of(await _service(ctx).get_campaign(ctx.principal, parse_id(campaign_id)))


@router.put("/campaigns/{campaign_id}")
async def update_campaign(campaign_id: CampaignId, body: CampaignUpdate, ctx: Ctx) -> CampaignOut:
    """Change a campaign: name and detail are replaced, the other fields kept when left out."""
    campaign = await _service(ctx).update_campaign(ctx.principal, parse_id(campaign_id), body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.delete("/campaigns/{campaign_id}")
async def delete_campaign(campaign_id: CampaignId, ctx: Ctx) -> CampaignOut:
    """Delete a stopped campaign (soft) and free its outdial; 409 CAMPAIGN_NOT_STOPPED otherwise."""
    campaign = await _service(ctx).delete_campaign(ctx.principal, parse_id(campaign_id))
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/status")
async def update_campaign_status(
    campaign_id: CampaignId, body: CampaignStatusUpdate, ctx: Ctx
) -> CampaignOut:
    """Run or stop a campaign; stopping with calls in flight answers `stopping` until they end."""
    campaign = await _service(ctx).set_status(ctx.principal, parse_id(campaign_id), body.status)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/service_level")
async def update_campaign_service_level(
    campaign_id: CampaignId, body: CampaignServiceLevelUpdate, ctx: Ctx
) -> CampaignOut:
    """Set the campaign's service level (stored for VoIPbin clients)."""
    campaign = await _service(ctx).set_service_level(
        ctx.principal, parse_id(campaign_id), body.service_level
    )
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/actions")
async def update_campaign_actions(
    campaign_id: CampaignId, body: CampaignActionsUpdate, ctx: Ctx
) -> CampaignOut:
    """Replace the steps handed to the dialer when a call is answered."""
    campaign = await _service(ctx).set_actions(ctx.principal, parse_id(campaign_id), body.actions)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.put("/campaigns/{campaign_id}/resource_info")
async def update_campaign_resource_info(
    campaign_id: CampaignId, body: ResourceInfo, ctx: Ctx
) -> CampaignOut:
    """Point the campaign at another outplan, outdial, queue or next campaign."""
    campaign = await _service(ctx).set_resource_info(ctx.principal, parse_id(campaign_id), body)
    await ctx.commit()
    return CampaignOut.of(campaign)


@router.get("/campaigns/{campaign_id}/campaigncalls")
async def list_campaign_campaigncalls(
    campaign_id: CampaignId, ctx: Ctx, paging: Paging
) -> PageOut[CampaigncallOut]:
    """The campaign's attempts (campaigncalls), newest first."""
    page = await _service(ctx).list_campaigncalls(ctx.principal, parse_id(campaign_id), paging)
    return PageOut.of(page, CampaigncallOut.of)
