"""The customer's contact limits: how often one destination may be contacted, across every
campaign and channel (strategy.limits)."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx
from outdial.errors import InvalidArgument
from outdial.models import Customer
from outdial.schemas import Body
from outdial.strategy.limits import limits_problem

router = APIRouter(tags=["contactlimits"], route_class=JsonRulesRoute)

LIMITS = (
    "each {max: contacts allowed (1-1000), window: rolling window in ms (1 minute to 31 days), "
    "count: attempts (default) or answered}; a destination at any limit waits until the "
    "window frees it; [] for none"
)
_EXAMPLE = {"limits": [{"max": 3, "window": 86400000}, {"max": 7, "window": 604800000}]}


class ContactLimitsBody(Body):
    model_config = {"json_schema_extra": {"examples": [_EXAMPLE]}}

    limits: list[Any] = Field(description=LIMITS)


class ContactLimitsOut(BaseModel):
    limits: list[dict[str, Any]] = Field(description=LIMITS)


def _out(limits: list[dict[str, Any]] | None) -> ContactLimitsOut:
    return ContactLimitsOut(limits=[{"count": "attempts", **limit} for limit in limits or []])


@router.get("/contactlimits")
async def get_contact_limits(ctx: Ctx) -> ContactLimitsOut:
    """Your contact limits."""
    customer = await ctx.session.get(Customer, ctx.principal.customer_id)
    return _out(customer.contact_limits if customer else [])


@router.put("/contactlimits")
async def set_contact_limits(body: ContactLimitsBody, ctx: Ctx) -> ContactLimitsOut:
    """Replace your contact limits. Attempts count from when a customer has limits."""
    if problem := limits_problem(body.limits):
        raise InvalidArgument(*problem)
    limits = [{"max": v["max"], "window": v["window"], "count": v.get("count", "attempts")}
              for v in body.limits]
    customer = await ctx.session.get(Customer, ctx.principal.customer_id, with_for_update=True)
    assert customer is not None  # an authenticated principal's customer exists
    customer.contact_limits = limits
    customer.tm_update = ctx.clock.now()
    await ctx.commit()
    return _out(limits)
