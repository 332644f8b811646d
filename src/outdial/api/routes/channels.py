"""Channels, a customer's SIP trunks and SMTP relays: the channel calls of channels.md."""

from fastapi import APIRouter, Request

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import ChannelId, Ctx, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.channels.schemas import ChannelCheckOut, ChannelCreate, ChannelOut, ChannelUpdate
from outdial.channels.service import ChannelService

router = APIRouter(tags=["channels"], route_class=JsonRulesRoute)


def _service(ctx: Ctx, request: Request) -> ChannelService:
    return ChannelService(ctx.session, ctx.clock, request.app.state.channel_secrets)


@router.get("/channels")
async def list_channels(ctx: Ctx, request: Request, paging: Paging) -> PageOut[ChannelOut]:
    """Your live channels (SIP trunks, SMTP relays, simulated channels), newest first."""
    page = await _service(ctx, request).list_channels(ctx.principal, paging)
    return PageOut.of(page, ChannelOut.of)


@router.post("/channels")
async def create_channel(body: ChannelCreate, ctx: Ctx, request: Request) -> ChannelOut:
    """Create a channel; its settings are checked for its type and its password is stored
    encrypted, never shown again."""
    channel = await _service(ctx, request).create_channel(ctx.principal, body)
    await ctx.commit()
    return ChannelOut.of(channel)


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: ChannelId, ctx: Ctx, request: Request) -> ChannelOut:
    """One channel, deleted ones too; `settings.password` is always null."""
    channel = await _service(ctx, request).get_channel(ctx.principal, parse_id(channel_id))
    return ChannelOut.of(channel)


@router.put("/channels/{channel_id}")
async def update_channel(
    channel_id: ChannelId, body: ChannelUpdate, ctx: Ctx, request: Request
) -> ChannelOut:
    """Replace a channel's name, detail and settings; a password left out or null is kept."""
    channel = await _service(ctx, request).update_channel(
        ctx.principal, parse_id(channel_id), body
    )
    await ctx.commit()
    return ChannelOut.of(channel)


@router.delete("/channels/{channel_id}")
async def delete_channel(channel_id: ChannelId, ctx: Ctx, request: Request) -> ChannelOut:
    """Delete a channel (409 while a running campaign dials through it)."""
    channel = await _service(ctx, request).delete_channel(ctx.principal, parse_id(channel_id))
    await ctx.commit()
    return ChannelOut.of(channel)


@router.post("/channels/{channel_id}/check")
async def check_channel(channel_id: ChannelId, ctx: Ctx, request: Request) -> ChannelCheckOut:
    """Try the channel now: SMTP connect, TLS and AUTH; SIP OPTIONS."""
    result = await _service(ctx, request).check_channel(ctx.principal, parse_id(channel_id))
    await ctx.commit()  # its channel_check_done event
    return ChannelCheckOut(ok=result.ok, detail=result.detail)
