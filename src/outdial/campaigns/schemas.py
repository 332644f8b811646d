"""Request and response shapes of outplans, campaigns and campaigncalls, in the wire format."""

import uuid
from typing import Any

from pydantic import BaseModel, Field

from outdial.models import Campaign, Campaigncall, Outplan
from outdial.outdials.schemas import Address, AddressOut
from outdial.schemas import Body, Id
from outdial.timestamps import format_timestamp


def _address(value: dict[str, Any] | None) -> AddressOut | None:
    return None if value is None else AddressOut(**value)


# -- outplans ---------------------------------------------------------------------------------


class DialInfo(Body):
    """How hard to try: the body of PUT dial_info, and part of an outplan's creation.
    Ranges are checked by the service, which names the field and the accepted range."""

    source: Address | None = Field(None, description="caller id / sender address, or null")
    dial_timeout: int = Field(30000, description="ms to wait for an answer (1000-600000)")
    try_interval: int = Field(
        60000, description="ms from the end of a failed attempt to the next (0-30 days)"
    )
    max_try_count_0: int = Field(1, description="attempts allowed on destination_0 (0-100)")
    max_try_count_1: int = 0
    max_try_count_2: int = 0
    max_try_count_3: int = 0
    max_try_count_4: int = 0
    sip_channel_id: Id | None = Field(
        None, description="channel dialing tel and sip destinations (sip or simulated); "
        "nil UUID: none; left out: kept (none on creation)")
    email_channel_id: Id | None = Field(
        None, description="channel sending to email destinations (smtp or simulated); "
        "nil UUID: none; left out: kept (none on creation)")

    def max_try_counts(self) -> list[int]:
        return [getattr(self, f"max_try_count_{n}") for n in range(5)]


class OutplanCreate(DialInfo):
    name: str = ""
    detail: str = ""


class OutplanOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    detail: str
    source: AddressOut | None
    dial_timeout: int
    try_interval: int
    max_try_count_0: int
    max_try_count_1: int
    max_try_count_2: int
    max_try_count_3: int
    max_try_count_4: int
    tm_create: str
    tm_update: str
    tm_delete: str
    sip_channel_id: uuid.UUID
    email_channel_id: uuid.UUID

    @classmethod
    def of(cls, row: Outplan) -> "OutplanOut":
        return cls(
            id=row.id, customer_id=row.customer_id, name=row.name, detail=row.detail,
            source=_address(row.source), dial_timeout=row.dial_timeout,
            try_interval=row.try_interval,
            max_try_count_0=row.max_try_count_0, max_try_count_1=row.max_try_count_1,
            max_try_count_2=row.max_try_count_2, max_try_count_3=row.max_try_count_3,
            max_try_count_4=row.max_try_count_4,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
            sip_channel_id=row.sip_channel_id, email_channel_id=row.email_channel_id,
        )


# -- campaigns --------------------------------------------------------------------------------


class Action(Body):
    """One step for the dialer: what to do when a call is answered, or the email to send."""

    type: str = Field(description="answer, talk, play, beep, sleep, digits_receive, hangup or "
                      "email_send")
    option: dict[str, Any] = Field(default_factory=dict, description="the step's settings")


class ResourceInfo(Body):
    """What a campaign dials (outdial), how (outplan), and what it hands over to."""

    outplan_id: Id | None = Field(None, description="required: a live outplan")
    outdial_id: Id | None = Field(
        None, description="required: a live outdial that no other campaign uses"
    )
    queue_id: Id | None = None
    next_campaign_id: Id | None = None


class CampaignCreate(ResourceInfo):
    type: str = Field("call", description="call (the only type this service runs)")
    name: str = ""
    detail: str = ""
    service_level: int = 0
    end_handle: str = Field("stop", description="stop or continue")
    actions: list[Action] = Field(default_factory=list)
    concurrency: int = Field(10, description="most attempts in flight at once (1-1000)")
    dial_rate: int = Field(10, description="most new attempts per second (1-1000)")


class CampaignUpdate(Body):
    """PUT /campaigns/{id}: name and detail are replaced (omitted = ""), as for outdials; the
    other fields keep their value when omitted."""

    name: str = ""
    detail: str = ""
    type: str | None = None
    end_handle: str | None = None
    service_level: int | None = None
    concurrency: int | None = None
    dial_rate: int | None = None


class CampaignStatusUpdate(Body):
    status: str = Field(description="run or stop")


class CampaignServiceLevelUpdate(Body):
    service_level: int


class CampaignActionsUpdate(Body):
    actions: list[Action]


class CampaignOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    type: str
    name: str
    detail: str
    status: str
    service_level: int
    end_handle: str
    actions: list[dict[str, Any]]
    outplan_id: uuid.UUID
    outdial_id: uuid.UUID
    queue_id: uuid.UUID
    next_campaign_id: uuid.UUID
    tm_create: str
    tm_update: str
    tm_delete: str
    concurrency: int
    dial_rate: int

    @classmethod
    def of(cls, row: Campaign) -> "CampaignOut":
        return cls(
            id=row.id, customer_id=row.customer_id, type=row.type, name=row.name,
            detail=row.detail, status=row.status, service_level=row.service_level,
            end_handle=row.end_handle, actions=row.actions, outplan_id=row.outplan_id,
            outdial_id=row.outdial_id, queue_id=row.queue_id,
            next_campaign_id=row.next_campaign_id,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
            concurrency=row.concurrency, dial_rate=row.dial_rate,
        )


# -- campaigncalls ----------------------------------------------------------------------------


class CampaigncallOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    campaign_id: uuid.UUID
    outplan_id: uuid.UUID
    outdial_id: uuid.UUID
    outdial_target_id: uuid.UUID
    queue_id: uuid.UUID
    activeflow_id: uuid.UUID
    flow_id: uuid.UUID
    reference_type: str
    reference_id: uuid.UUID
    status: str
    result: str
    source: AddressOut | None
    destination: AddressOut | None
    destination_index: int
    try_count: int
    tm_create: str
    tm_update: str
    tm_delete: str
    outcome: str
    tm_end: str
    channel_id: uuid.UUID
    channel_type: str
    sip_code: int
    sip_reason: str
    hangup_by: str
    digits: str
    smtp_code: int
    smtp_reply: str
    message_id: str

    @classmethod
    def of(cls, row: Campaigncall) -> "CampaigncallOut":
        return cls(
            id=row.id, customer_id=row.customer_id, campaign_id=row.campaign_id,
            outplan_id=row.outplan_id, outdial_id=row.outdial_id,
            outdial_target_id=row.outdial_target_id, queue_id=row.queue_id,
            activeflow_id=row.activeflow_id, flow_id=row.flow_id,
            reference_type=row.reference_type, reference_id=row.reference_id,
            status=row.status, result=row.result, source=_address(row.source),
            destination=_address(row.destination), destination_index=row.destination_index,
            try_count=row.try_count,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
            outcome=row.outcome, tm_end=format_timestamp(row.tm_end),
            channel_id=row.channel_id, channel_type=row.channel_type, sip_code=row.sip_code,
            sip_reason=row.sip_reason, hangup_by=row.hangup_by, digits=row.digits,
            smtp_code=row.smtp_code, smtp_reply=row.smtp_reply, message_id=row.message_id,
        )
