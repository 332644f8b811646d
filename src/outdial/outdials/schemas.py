"""Request and response shapes of outdials and targets, in the VoIPbin wire format."""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from outdial.models import Outdial, OutdialTarget
from outdial.outdials.destinations import UNKNOWN_DESTINATION, unknown_destination_keys
from outdial.schemas import CUSTOMER_ID, DETAIL, ID, NAME, TM_CREATE, TM_DELETE, TM_UPDATE, Body, Id
from outdial.timestamps import format_timestamp
from outdial.validation import key_text

TargetStatus = Literal["idle", "progressing", "done"]
DATA = "free data for your own use, handed to the dialer with each attempt"
DESTINATION = "slot {n}: an address to contact, tried in slot order; null if empty"
TRY_COUNT = "attempts made so far on destination_{n}"
TIMEZONE = (
    "the contact's IANA time zone, for the campaign's calling window; null: the zones of its "
    "numbers, else the campaign's timezone_default"
)
WAITING_REASON = (
    "why the target is not being dialed now: dialable, retry_interval, dnc, "
    "outside_calling_window, contact_limit, campaign_not_running, exhausted, answered, "
    "in_progress; null if deleted"
)
NEXT_ATTEMPT_AT = (
    "when it may be dialed: now or earlier if dialable, else when the rule it waits for lets it "
    "(the window opens, the interval or cap runs out); null if done, being dialed, or unknown"
)
WAITING_DETAIL = "what it waits for: the zone whose window is shut, the list it is on; or null"


class Address(Body):
    # a misspelt key is not dropped
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"type": "tel", "target": "+15559876543", "target_name": "Alice", "name": "mobile", "detail": ""}]})

    type: str = Field(description="tel, sip or email", examples=["tel"])
    target: str = Field(description="E.164 number, SIP URI or email address", examples=["+15559876543"])
    target_name: str = Field("", description="the name of the person or place reached there")
    name: str = Field("", description="a name for this address, e.g. mobile")
    detail: str = Field("", description=DETAIL)


class OutdialCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "spring list", "detail": "renewals due in April", "data": "promo=spring"}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    data: str = Field("", description=DATA)
    campaign_id: Id | None = Field(None, description="the campaign it serves; null or nil UUID: none")


class OutdialCampaignUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"campaign_id": "00000000-0000-0000-0000-000000000000"}]})

    campaign_id: Id = Field(description="a campaign of yours, or the nil UUID for none")


class OutdialDataUpdate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": "promo=summer"}]})

    data: str = Field("", description=DATA)


class TargetWrite(Body):
    """A target's fields; on PUT the whole target is replaced (left out: empty or null)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Alice", "detail": "vip", "data": "account=1042",
        "destination_0": {"type": "tel", "target": "+15559876543"},
        "destination_1": {"type": "email", "target": "alice@example.com"}}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    data: str = Field("", description=DATA)
    destination_0: Address | None = Field(None, description=DESTINATION.format(n=0))
    destination_1: Address | None = Field(None, description=DESTINATION.format(n=1))
    destination_2: Address | None = Field(None, description=DESTINATION.format(n=2))
    destination_3: Address | None = Field(None, description=DESTINATION.format(n=3))
    destination_4: Address | None = Field(None, description=DESTINATION.format(n=4))
    timezone: str | None = Field(None, description=TIMEZONE, examples=["America/Chicago"])

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_destination(cls, data: Any) -> Any:
        if isinstance(data, dict) and (unknown := unknown_destination_keys(data)):
            raise PydanticCustomError(
                "unknown_destination", UNKNOWN_DESTINATION, {"field": key_text(unknown[0])},
            )
        return data

    def destinations(self) -> list[dict[str, Any] | None]:
        return [
            None if (a := getattr(self, f"destination_{n}")) is None else a.model_dump()
            for n in range(5)
        ]


class OutdialOut(BaseModel):
    """A dialing list."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    campaign_id: uuid.UUID = Field(description="the campaign it serves; the nil UUID if none")
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    data: str = Field(description=DATA)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, row: Outdial) -> "OutdialOut":
        return cls(
            id=row.id, customer_id=row.customer_id, campaign_id=row.campaign_id, name=row.name,
            detail=row.detail, data=row.data, tm_create=format_timestamp(row.tm_create),
            tm_update=format_timestamp(row.tm_update), tm_delete=format_timestamp(row.tm_delete),
        )


class AddressOut(BaseModel):
    """An address as stored: a tel number in E.164, every key present."""

    type: str = Field(description="tel, sip or email")
    target: str = Field(description="E.164 number, SIP URI or email address")
    target_name: str = Field(description="the name of the person or place reached there")
    name: str = Field(description="a name for this address, e.g. mobile")
    detail: str = Field(description=DETAIL)


class TargetOut(BaseModel):
    """One entry of a dialing list: up to five addresses of one person, tried in slot order."""

    id: uuid.UUID = Field(description=ID)
    outdial_id: uuid.UUID = Field(description="the outdial it belongs to")
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    data: str = Field(description=DATA)
    status: TargetStatus = Field(description="idle (waiting), progressing (being dialed) or done")
    destination_0: AddressOut | None = Field(description=DESTINATION.format(n=0))
    destination_1: AddressOut | None = Field(description=DESTINATION.format(n=1))
    destination_2: AddressOut | None = Field(description=DESTINATION.format(n=2))
    destination_3: AddressOut | None = Field(description=DESTINATION.format(n=3))
    destination_4: AddressOut | None = Field(description=DESTINATION.format(n=4))
    try_count_0: int = Field(description=TRY_COUNT.format(n=0))
    try_count_1: int = Field(description=TRY_COUNT.format(n=1))
    try_count_2: int = Field(description=TRY_COUNT.format(n=2))
    try_count_3: int = Field(description=TRY_COUNT.format(n=3))
    try_count_4: int = Field(description=TRY_COUNT.format(n=4))
    timezone: str | None = Field(description=TIMEZONE)
    waiting_reason: str | None = Field(description=WAITING_REASON)
    next_attempt_at: str | None = Field(description=NEXT_ATTEMPT_AT)
    waiting_detail: str | None = Field(description=WAITING_DETAIL)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, row: OutdialTarget, waiting: Any = None) -> "TargetOut":
        """The target, with its waiting (strategy.reasons.Waiting) when told."""
        return cls(
            timezone=row.timezone,
            waiting_reason=waiting.reason if waiting else None,
            next_attempt_at=format_timestamp(waiting.next_attempt_at)
            if waiting and waiting.next_attempt_at else None,
            waiting_detail=waiting.detail if waiting else None,
            id=row.id, outdial_id=row.outdial_id, name=row.name, detail=row.detail, data=row.data,
            status=row.status,
            destination_0=row.destination_0, destination_1=row.destination_1,
            destination_2=row.destination_2, destination_3=row.destination_3,
            destination_4=row.destination_4,
            try_count_0=row.try_count_0, try_count_1=row.try_count_1,
            try_count_2=row.try_count_2, try_count_3=row.try_count_3,
            try_count_4=row.try_count_4,
            tm_create=format_timestamp(row.tm_create), tm_update=format_timestamp(row.tm_update),
            tm_delete=format_timestamp(row.tm_delete),
        )
