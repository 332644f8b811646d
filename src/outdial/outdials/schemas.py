"""Request and response shapes of outdials and targets, in the VoIPbin wire format."""

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from outdial.models import Outdial, OutdialTarget
from outdial.outdials.destinations import unknown_destination_keys
from outdial.schemas import Body, Id
from outdial.timestamps import format_timestamp
from outdial.validation import key_text

TargetStatus = Literal["idle", "progressing", "done"]


class Address(Body):
    model_config = ConfigDict(strict=True, extra="forbid")  # a misspelt key is not dropped
    type: str = Field(description="tel, sip or email")
    target: str = Field(description="E.164 number, SIP URI or email address")
    target_name: str = ""
    name: str = ""
    detail: str = ""


class OutdialCreate(Body):
    name: str = ""
    detail: str = ""
    data: str = ""
    campaign_id: Id | None = None


class OutdialCampaignUpdate(Body):
    campaign_id: Id


class OutdialDataUpdate(Body):
    data: str = ""


class TargetWrite(Body):
    name: str = ""
    detail: str = ""
    data: str = ""
    destination_0: Address | None = None
    destination_1: Address | None = None
    destination_2: Address | None = None
    destination_3: Address | None = None
    destination_4: Address | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_destination(cls, data: Any) -> Any:
        if isinstance(data, dict) and (unknown := unknown_destination_keys(data)):
            raise PydanticCustomError(
                "unknown_destination", "is not a destination (a target has destination_0 to "
                "destination_4)", {"field": key_text(unknown[0])},
            )
        return data

    def destinations(self) -> list[dict[str, Any] | None]:
        return [
            None if (a := getattr(self, f"destination_{n}")) is None else a.model_dump()
            for n in range(5)
        ]


class OutdialOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    campaign_id: uuid.UUID
    name: str
    detail: str
    data: str
    tm_create: str
    tm_update: str | None
    tm_delete: str | None

    @classmethod
    def of(cls, row: Outdial) -> "OutdialOut":
        return cls(
            id=row.id, customer_id=row.customer_id, campaign_id=row.campaign_id, name=row.name,
            detail=row.detail, data=row.data, tm_create=format_timestamp(row.tm_create),
            tm_update=format_timestamp(row.tm_update), tm_delete=format_timestamp(row.tm_delete),
        )


class AddressOut(BaseModel):
    type: str
    target: str
    target_name: str
    name: str
    detail: str


class TargetOut(BaseModel):
    id: uuid.UUID
    outdial_id: uuid.UUID
    name: str
    detail: str
    data: str
    status: TargetStatus
    destination_0: AddressOut | None
    destination_1: AddressOut | None
    destination_2: AddressOut | None
    destination_3: AddressOut | None
    destination_4: AddressOut | None
    try_count_0: int
    try_count_1: int
    try_count_2: int
    try_count_3: int
    try_count_4: int
    tm_create: str
    tm_update: str | None
    tm_delete: str | None

    @classmethod
    def of(cls, row: OutdialTarget) -> "TargetOut":
        return cls(
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
