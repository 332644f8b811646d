"""Request and response shapes of outplans, campaigns and campaigncalls, in the wire format."""

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from outdial.models import Campaign, Campaigncall, Outplan
from outdial.outdials.schemas import Address, AddressOut
from outdial.schemas import CUSTOMER_ID, DETAIL, ID, NAME, TM_CREATE, TM_DELETE, TM_UPDATE, Body, Id
from outdial.timestamps import format_timestamp

MAX_TRY_COUNT = "attempts allowed on destination_{n} (0-100)"
SOURCE = "caller id / sender address, or null"
DIAL_TIMEOUT = "ms to wait for an answer (1000-600000)"
TRY_INTERVAL = "ms from the end of a failed attempt to the next (0-30 days)"
OUTPLAN_ID = "the outplan: how hard to try"
OUTDIAL_ID = "the outdial: whom to dial"
QUEUE_ID = "stored for VoIPbin clients; the nil UUID if none"
NEXT_CAMPAIGN_ID = "a campaign of yours to hand over to; the nil UUID if none"
ACTIONS = "steps handed to the dialer: what to do when a call is answered"
SERVICE_LEVEL = "an integer >= 0, stored for VoIPbin clients"
END_HANDLE = "stop: stop once no target can be dialed again; continue: keep running"
CONCURRENCY = "most attempts in flight at once (1-1000)"
DIAL_RATE = "most new attempts per second (1-1000)"
TYPE = "call (the only type this service runs)"
CALLING_WINDOW = (
    "when destinations may be dialed, in each one's own time zone: {days: [mon..sun], start: "
    "HH:MM, end: HH:MM (or 24:00), timezone_default: an IANA zone for destinations with no "
    "known zone, holidays: [YYYY-MM-DD]}; null: any time"
)
_WINDOW_EXAMPLE = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00",
                   "timezone_default": "America/New_York", "holidays": ["2026-12-25"]}
RETRY_RULES = (
    "what each outcome does next, by outcome (busy, no_answer, rejected, failed, unreachable, "
    "invalid_destination, canceled): {interval (ms, replaces try_interval), max_tries (n or "
    "null: tries on one destination that may end so), next (retry, next_destination or "
    "finish), backoff (optional factor >= 1 per such try)}; null: try_interval for all; "
    "left out: kept (none on creation)")
PRIORITY = "due_first (earliest due first) or fresh_first (untried targets before retries)"
DNCLIST_IDS = ("the do-not-call lists the campaign honours (besides the customer's lists "
               "that apply to all)")
_DIAL_INFO_EXAMPLE = {
    "source": {"type": "tel", "target": "+15550000000"}, "dial_timeout": 30000,
    "try_interval": 600000, "max_try_count_0": 2, "max_try_count_1": 1,
    "retry_rules": {"busy": {"interval": 120000, "max_tries": 3, "next": "retry", "backoff": 2.0},
                    "rejected": {"interval": 0, "next": "finish"}},
}
_ACTION_EXAMPLE = {"type": "talk", "option": {"text": "Hello, this is a reminder."}}
_RESOURCE_INFO_EXAMPLE = {
    "outplan_id": "5f0f4a9c-3d5e-4c1e-9a52-5d6c2e0b7f11",
    "outdial_id": "40bea034-1d17-474d-a5de-da00d0861c69",
    "queue_id": "00000000-0000-0000-0000-000000000000",
    "next_campaign_id": "00000000-0000-0000-0000-000000000000",
}


def _address(value: dict[str, Any] | None) -> AddressOut | None:
    return None if value is None else AddressOut(**value)


# -- outplans ---------------------------------------------------------------------------------


class DialInfo(Body):
    """How hard to try: the body of PUT dial_info, and part of an outplan's creation.
    Ranges are checked by the service, which names the field and the accepted range."""

    model_config = ConfigDict(json_schema_extra={"examples": [_DIAL_INFO_EXAMPLE]})

    source: Address | None = Field(None, description=SOURCE)
    dial_timeout: int = Field(30000, description=DIAL_TIMEOUT)
    try_interval: int = Field(60000, description=TRY_INTERVAL)
    max_try_count_0: int = Field(1, description=MAX_TRY_COUNT.format(n=0))
    max_try_count_1: int = Field(0, description=MAX_TRY_COUNT.format(n=1))
    max_try_count_2: int = Field(0, description=MAX_TRY_COUNT.format(n=2))
    max_try_count_3: int = Field(0, description=MAX_TRY_COUNT.format(n=3))
    max_try_count_4: int = Field(0, description=MAX_TRY_COUNT.format(n=4))
    sip_channel_id: Id | None = Field(
        None, description="channel dialing tel and sip destinations (sip or simulated); "
        "nil UUID: none; left out: kept (none on creation)")
    email_channel_id: Id | None = Field(
        None, description="channel sending to email destinations (smtp or simulated); "
        "nil UUID: none; left out: kept (none on creation)")
    # Checked by strategy.retry.check_retry_rules, which names the field inside the rules.
    retry_rules: dict[str, Any] | None = Field(None, description=RETRY_RULES)

    def max_try_counts(self) -> list[int]:
        return [getattr(self, f"max_try_count_{n}") for n in range(5)]


class OutplanCreate(DialInfo):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "twice, then the mobile", "detail": "", **_DIAL_INFO_EXAMPLE}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)


class OutplanOut(BaseModel):
    """A retry plan: how long to ring, how long between tries, how many tries per slot."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    source: AddressOut | None = Field(description=SOURCE)
    dial_timeout: int = Field(description=DIAL_TIMEOUT)
    try_interval: int = Field(description=TRY_INTERVAL)
    max_try_count_0: int = Field(description=MAX_TRY_COUNT.format(n=0))
    max_try_count_1: int = Field(description=MAX_TRY_COUNT.format(n=1))
    max_try_count_2: int = Field(description=MAX_TRY_COUNT.format(n=2))
    max_try_count_3: int = Field(description=MAX_TRY_COUNT.format(n=3))
    max_try_count_4: int = Field(description=MAX_TRY_COUNT.format(n=4))
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)
    sip_channel_id: uuid.UUID = Field(
        description="the channel dialing tel and sip destinations; the nil UUID: none")
    email_channel_id: uuid.UUID = Field(
        description="the channel sending to email destinations; the nil UUID: none")
    retry_rules: dict[str, Any] | None = Field(description=RETRY_RULES)

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
            retry_rules=row.retry_rules,
        )


# -- campaigns --------------------------------------------------------------------------------


class Action(Body):
    """One step for the dialer: what to do when a call is answered, or the email to send."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ACTION_EXAMPLE]})

    type: str = Field(description="answer, talk, play, beep, sleep, digits_receive, hangup or "
                      "email_send")
    option: dict[str, Any] = Field(default_factory=dict, description="the step's settings")


class ResourceInfo(Body):
    """What a campaign dials (outdial), how (outplan), and what it hands over to."""

    model_config = ConfigDict(json_schema_extra={"examples": [_RESOURCE_INFO_EXAMPLE]})

    outplan_id: Id | None = Field(None, description="required: a live outplan")
    outdial_id: Id | None = Field(
        None, description="required: a live outdial that no other campaign uses"
    )
    queue_id: Id | None = Field(None, description=QUEUE_ID)
    next_campaign_id: Id | None = Field(None, description=NEXT_CAMPAIGN_ID)


class CampaignCreate(ResourceInfo):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "call", "name": "renewals", "detail": "", "service_level": 0, "end_handle": "stop",
        "actions": [_ACTION_EXAMPLE], **_RESOURCE_INFO_EXAMPLE, "concurrency": 10, "dial_rate": 5}]})

    type: str = Field("call", description=TYPE)
    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    service_level: int = Field(0, description=SERVICE_LEVEL)
    end_handle: str = Field("stop", description=END_HANDLE)
    actions: list[Action] = Field(default_factory=list, description=ACTIONS)
    concurrency: int = Field(10, description=CONCURRENCY)
    dial_rate: int = Field(10, description=DIAL_RATE)
    calling_window: dict[str, Any] | None = Field(
        None, description=CALLING_WINDOW, examples=[_WINDOW_EXAMPLE])
    priority: str = Field("due_first", description=PRIORITY)
    dnclist_ids: list[Id] = Field(default_factory=list, description=DNCLIST_IDS)

    @model_validator(mode="before")
    @classmethod
    def _null_is_left_out(cls, data: Any) -> Any:
        """A field sent as null takes its default, as if left out: a client that sends every
        field, the unset ones null, creates what PUT would keep (PUT keeps a null field)."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class CampaignUpdate(Body):
    """PUT /campaigns/{id}: name and detail are replaced (omitted = ""), as for outdials; the
    other fields keep their value when omitted."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "renewals (June)", "detail": "", "concurrency": 20, "dial_rate": 10}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    type: str | None = Field(None, description=TYPE + "; left out: kept")
    end_handle: str | None = Field(None, description=END_HANDLE + "; left out: kept")
    service_level: int | None = Field(None, description=SERVICE_LEVEL + "; left out: kept")
    concurrency: int | None = Field(None, description=CONCURRENCY + "; left out: kept")
    dial_rate: int | None = Field(None, description=DIAL_RATE + "; left out: kept")
    calling_window: dict[str, Any] | None = Field(
        None, description=CALLING_WINDOW + "; left out: kept", examples=[_WINDOW_EXAMPLE])
    priority: str | None = Field(None, description=PRIORITY + "; left out: kept")
    dnclist_ids: list[Id] | None = Field(None, description=DNCLIST_IDS + "; left out: kept")


class CampaignStatusUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "run"}]})

    status: str = Field(description="run or stop")


class CampaignServiceLevelUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"service_level": 80}]})

    service_level: int = Field(description=SERVICE_LEVEL)


class CampaignActionsUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"actions": [_ACTION_EXAMPLE]}]})

    actions: list[Action] = Field(description=ACTIONS)


class CampaignOut(BaseModel):
    """A run that dials an outdial's targets by an outplan."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    type: str = Field(description=TYPE)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    status: str = Field(description="stop, run or stopping (attempts in flight are ending)")
    service_level: int = Field(description=SERVICE_LEVEL)
    end_handle: str = Field(description=END_HANDLE)
    actions: list[dict[str, Any]] = Field(description=ACTIONS + ", each {type, option}")
    outplan_id: uuid.UUID = Field(description=OUTPLAN_ID)
    outdial_id: uuid.UUID = Field(description=OUTDIAL_ID)
    queue_id: uuid.UUID = Field(description=QUEUE_ID)
    next_campaign_id: uuid.UUID = Field(description=NEXT_CAMPAIGN_ID)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)
    concurrency: int = Field(description=CONCURRENCY)
    dial_rate: int = Field(description=DIAL_RATE)
    calling_window: dict[str, Any] | None = Field(description=CALLING_WINDOW)
    priority: str = Field(description=PRIORITY)
    dnclist_ids: list[uuid.UUID] = Field(description=DNCLIST_IDS)

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
            calling_window=row.calling_window,
            priority=row.priority, dnclist_ids=[uuid.UUID(str(i)) for i in row.dnclist_ids or []],
        )


# -- campaigncalls ----------------------------------------------------------------------------


class CampaigncallOut(BaseModel):
    """One attempt of a campaign on one target's destination."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    campaign_id: uuid.UUID = Field(description="the campaign that made the attempt")
    outplan_id: uuid.UUID = Field(description=OUTPLAN_ID)
    outdial_id: uuid.UUID = Field(description=OUTDIAL_ID)
    outdial_target_id: uuid.UUID = Field(description="the target dialed")
    queue_id: uuid.UUID = Field(description=QUEUE_ID)
    activeflow_id: uuid.UUID = Field(description="stored for VoIPbin clients; the nil UUID")
    flow_id: uuid.UUID = Field(description="stored for VoIPbin clients; the nil UUID")
    reference_type: str = Field(description="what reference_id names: call")
    reference_id: uuid.UUID = Field(description="stored for VoIPbin clients; the nil UUID")
    status: str = Field(description="dialing, progressing (answered) or done")
    result: str = Field(description='"" until done, then success or fail')
    source: AddressOut | None = Field(description="the outplan's source at the time of the attempt")
    destination: AddressOut | None = Field(description="the address dialed")
    destination_index: int = Field(description="the slot dialed: N of destination_N")
    try_count: int = Field(description="the attempt's number on that slot, from 1")
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)
    outcome: str = Field(description="how it ended: answered, busy, no_answer, rejected, failed, "
                                     "canceled, unreachable or invalid_destination; dnc: not "
                                     "dialed, the destination is on a do-not-call list")
    tm_end: str | None = Field(description="when it ended, UTC; `9999-01-01 00:00:00.000000` until then")
    channel_id: uuid.UUID = Field(
        description="the channel that placed it; the nil UUID: the server's simulated dialer")
    channel_type: str = Field(description='sip, smtp or simulated ("": the outplan had no '
                                          "channel for the destination's type)")
    sip_code: int = Field(description="the final SIP response code; 0: none came")
    sip_reason: str = Field(description="the final SIP response's reason phrase")
    hangup_by: str = Field(description='who ended an answered call: callee or us ("": none)')
    digits: str = Field(description="the DTMF keys the callee pressed")
    smtp_code: int = Field(description="the relay's last reply code; 0: none came")
    smtp_reply: str = Field(description="the relay's last reply, or why it was not reached")
    message_id: str = Field(description="the Message-ID of the email the relay took")
    outcome_detail: str = Field(
        description="why it ended as it did, when the channel said: a redirect's target, "
                    "refused credentials, a connection that was gone, an engine that stopped")

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
            outcome_detail=row.outcome_detail,
        )
