"""Channels, a customer's SIP trunks and SMTP relays: the channel calls of channels.md."""

from fastapi import APIRouter, Request

from outdial.api.deps import Ctx, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.channels.schemas import ChannelCheckOut, ChannelCreate, ChannelOut, ChannelUpdate
from outdial.channels.service import ChannelService

router = APIRouter(tags=["channels"])


def _service(ctx: Ctx, request: Request) -> ChannelService:
    return ChannelService(ctx.session, ctx.clock, request.app.state.channel_secrets)


@router.get("/channels")
async def list_channels(ctx: Ctx, request: Request, paging: Paging) -> PageOut[ChannelOut]:
    page = await _service(ctx, request).list_channels(ctx.principal, paging)
    return PageOut.of(page, ChannelOut.of)


@router.post("/channels")
async def create_channel(body: ChannelCreate, ctx: Ctx, request: Request) -> ChannelOut:
    channel = await _service(ctx, request).create_channel(ctx.principal, body)
    await ctx.commit()
    return ChannelOut.of(channel)


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: str, ctx: Ctx, request: Request) -> ChannelOut:
    channel = await _service(ctx, request).get_channel(ctx.principal, parse_id(channel_id))
    return ChannelOut.of(channel)


@router.put("/channels/{channel_id}")
async def update_channel(
    channel_id: str, body: ChannelUpdate, ctx: Ctx, request: Request
) -> ChannelOut:
    channel = await _service(ctx, request).update_channel(
        ctx.principal, parse_id(channel_id), body
    )
    await ctx.commit()
    return ChannelOut.of(channel)


@router.delete("/channels/{channel_id}")
async def delete_channel(channel_id: str, ctx: Ctx, request: Request) -> ChannelOut:
    channel = await _service(ctx, request).delete_channel(ctx.principal, parse_id(channel_id))
    await ctx.commit()
    return ChannelOut.of(channel)


@router.post("/channels/{channel_id}/check")
async def check_channel(channel_id: str, ctx: Ctx, request: Request) -> ChannelCheckOut:
    """Try the channel now: SMTP connect, TLS and AUTH; SIP OPTIONS."""
    result = await _service(ctx, request).check_channel(ctx.principal, parse_id(channel_id))
    return ChannelCheckOut(ok=result.ok, detail=result.detail)
