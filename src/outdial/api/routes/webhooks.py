"""Webhooks: endpoints that receive the customer's events, signed (Standard Webhooks)."""

from fastapi import APIRouter, Request

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx, DeliveryId, Paging, WebhookId, parse_id
from outdial.api.schemas import PageOut
from outdial.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookCreatedOut,
    WebhookOut,
    WebhookUpdate,
)
from outdial.webhooks.service import WebhookService

router = APIRouter(tags=["webhooks"], route_class=JsonRulesRoute)


def _service(ctx: Ctx, request: Request) -> WebhookService:
    state = request.app.state
    return WebhookService(ctx.session, ctx.clock, state.channel_secrets, state.settings)


@router.get("/webhooks")
async def list_webhooks(ctx: Ctx, request: Request, paging: Paging) -> PageOut[WebhookOut]:
    """Your live webhooks, newest first."""
    page = await _service(ctx, request).list_webhooks(ctx.principal, paging)
    return PageOut.of(page, WebhookOut.of)


@router.post("/webhooks")
async def create_webhook(body: WebhookCreate, ctx: Ctx, request: Request) -> WebhookCreatedOut:
    """Create a webhook; events from now on are POSTed to its URL, signed with its secret
    (returned this once)."""
    webhook, secret = await _service(ctx, request).create_webhook(ctx.principal, body)
    await ctx.commit()
    return WebhookCreatedOut(**WebhookOut.of(webhook).model_dump(), secret=secret)


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: WebhookId, ctx: Ctx, request: Request) -> WebhookOut:
    """One webhook, deleted ones too; never its secret."""
    return WebhookOut.of(
        await _service(ctx, request).get_webhook(ctx.principal, parse_id(webhook_id)))


@router.put("/webhooks/{webhook_id}")
async def update_webhook(
    webhook_id: WebhookId, body: WebhookUpdate, ctx: Ctx, request: Request
) -> WebhookOut:
    """Replace a webhook's URL and event types; enable or disable it; rotate its secret."""
    webhook = await _service(ctx, request).update_webhook(
        ctx.principal, parse_id(webhook_id), body)
    await ctx.commit()
    return WebhookOut.of(webhook)


@router.delete("/webhooks/{webhook_id}")
async def delete_webhook(webhook_id: WebhookId, ctx: Ctx, request: Request) -> WebhookOut:
    """Delete a webhook: nothing more is sent to it."""
    webhook = await _service(ctx, request).delete_webhook(ctx.principal, parse_id(webhook_id))
    await ctx.commit()
    return WebhookOut.of(webhook)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookId, ctx: Ctx, request: Request, paging: Paging
) -> PageOut[DeliveryOut]:
    """The webhook's deliveries, newest first: each with its latest attempt's HTTP status,
    time and error, and how many attempts were made."""
    page = await _service(ctx, request).list_deliveries(
        ctx.principal, parse_id(webhook_id), paging)
    return PageOut.of(page, DeliveryOut.of)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, ctx: Ctx, request: Request
) -> DeliveryOut:
    """Send a delivery again now (a failed one too); its retries start over."""
    delivery = await _service(ctx, request).retry_delivery(
        ctx.principal, parse_id(webhook_id), parse_id(delivery_id, "delivery_id"))
    await ctx.commit()
    return DeliveryOut.of(delivery)


@router.post("/webhooks/{webhook_id}/test")
async def test_webhook(webhook_id: WebhookId, ctx: Ctx, request: Request) -> DeliveryOut:
    """Send a signed ping (type webhook_test) now and answer what the receiver said; it is
    logged among the deliveries."""
    delivery = await _service(ctx, request).test_webhook(ctx.principal, parse_id(webhook_id))
    await ctx.commit()
    return DeliveryOut.of(delivery)
