"""Request and response shapes of webhooks and their deliveries."""

import uuid

from pydantic import BaseModel, ConfigDict, Field

from outdial.models import Webhook, WebhookDelivery
from outdial.schemas import CUSTOMER_ID, ID, TM_CREATE, TM_DELETE, TM_UPDATE, Body
from outdial.timestamps import format_timestamp

WEBHOOK_STATUSES = ("enabled", "disabled")
URL = "where events are POSTed: an http or https URL"
EVENT_TYPES = "the event types delivered (see the README's event catalogue); empty: every type"
SECRET = ("the signing secret, `whsec_` and the base64 of 24 to 64 bytes; write-only. Left out "
          "on create, one is generated and returned once")
_EXAMPLE = {"url": "https://hooks.example.com/outdial",
            "event_types": ["campaigncall_updated", "campaign_updated"]}


class WebhookCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    url: str = Field(description=URL)
    event_types: list[str] = Field(default_factory=list, description=EVENT_TYPES)
    secret: str | None = Field(None, description=SECRET)


class WebhookUpdate(Body):
    """PUT replaces url and event_types; status enables or disables it (enabling again starts
    from the newest event: what happened while it was disabled is not sent); a secret given
    replaces the signing secret, left out or null keeps it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{**_EXAMPLE, "status": "enabled"}]})

    url: str = Field(description=URL)
    event_types: list[str] = Field(default_factory=list, description=EVENT_TYPES)
    status: str | None = Field(None, description="enabled or disabled; left out keeps it")
    secret: str | None = Field(None, description="a new signing secret; left out keeps it")


class WebhookOut(BaseModel):
    """An endpoint that receives the customer's events, signed."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    url: str = Field(description=URL)
    event_types: list[str] = Field(description=EVENT_TYPES)
    status: str = Field(description="enabled, or disabled (by a PUT, or after failures in a row)")
    detail: str = Field(description="why it was disabled; empty while enabled")
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, row: Webhook) -> "WebhookOut":
        return cls(
            id=row.id, customer_id=row.customer_id, url=row.url,
            event_types=list(row.event_types), status=row.status, detail=row.detail,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
        )


class WebhookCreatedOut(WebhookOut):
    """The new webhook, with its signing secret: shown this once."""

    secret: str = Field(description="the signing secret; keep it, it is not shown again")


class DeliveryOut(BaseModel):
    """One event's delivery to the webhook (or a test ping), as its latest attempt left it."""

    id: uuid.UUID = Field(description=ID)
    webhook_id: uuid.UUID = Field(description="the webhook")
    event_id: int | None = Field(description="the event delivered; null for a test ping")
    event_type: str = Field(description="the event's type; webhook_test for a test ping")
    status: str = Field(description="pending (to be sent or retried), delivered, or failed")
    attempts: int = Field(description="attempts made")
    next_attempt_at: str | None = Field(description="when it is sent next, while pending")
    response_code: int = Field(description="the latest attempt's HTTP status; 0: no answer")
    latency_ms: int = Field(description="the latest attempt's time, request to answer")
    error: str = Field(description="what the latest attempt failed of; empty when it worked")
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description="when the latest attempt ended")

    @classmethod
    def of(cls, row: WebhookDelivery) -> "DeliveryOut":
        return cls(
            id=row.id, webhook_id=row.webhook_id, event_id=row.event_id,
            event_type=row.event_type, status=row.status, attempts=row.attempts,
            next_attempt_at=format_timestamp(
                row.next_attempt_at if row.status == "pending" else None),
            response_code=row.response_code, latency_ms=row.latency_ms, error=row.error,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
        )
