"""Request and response shapes of do-not-call lists and their entries, in the wire format."""

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outdial.models import DncEntry, Dnclist
from outdial.schemas import CUSTOMER_ID, DETAIL, ID, NAME, TM_CREATE, TM_DELETE, TM_UPDATE, Body
from outdial.timestamps import format_timestamp

APPLIES_TO_ALL = ("true: honoured by every campaign of the customer, named in its dnclist_ids "
                  "or not")
VALUE = ("a phone number (E.164, or national with default_region), a SIP URI or an email "
         "address; stored normalised: E.164, SIP URIs and emails lower-cased")
TM_EXPIRE = "when the entry stops counting, UTC; null (`9999-01-01 …` on reads): never"


class DnclistCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "national DNC registry", "detail": "", "applies_to_all": True}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    applies_to_all: bool = Field(False, description=APPLIES_TO_ALL)


class DnclistUpdate(DnclistCreate):
    """PUT /dnclists/{id}: name, detail and applies_to_all are replaced (left out: defaults)."""


class DnclistOut(BaseModel):
    """A do-not-call list: destinations that the customer's campaigns never dial."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    applies_to_all: bool = Field(description=APPLIES_TO_ALL)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, row: Dnclist) -> "DnclistOut":
        return cls(
            id=row.id, customer_id=row.customer_id, name=row.name, detail=row.detail,
            applies_to_all=row.applies_to_all, tm_create=format_timestamp(row.tm_create),
            tm_update=format_timestamp(row.tm_update), tm_delete=format_timestamp(row.tm_delete),
        )


class DncEntryCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"value": "+1 212 555 0123", "tm_expire": "2027-06-30T00:00:00Z"},
        {"value": "(212) 555-0123", "default_region": "US"},
        {"value": "Alice@Example.com"}]})

    # Any: checked by dnc_entry, as an imported row's value is, with one message for both.
    value: Any = Field(description=VALUE + "; or an address object")
    # Any: checked by entry_expiry, as an imported row's tm_expire is.
    tm_expire: Any = Field(None, description=TM_EXPIRE,
                           json_schema_extra={"type": ["string", "null"]})
    default_region: str | None = Field(
        None, description="region of a national number, e.g. US (ISO 3166 alpha-2)")
    # Any: checked by dnc_entry, as an imported row's type is.
    type: Any = Field(None, description="tel, sip or email: what a bare value is (as an entry "
                      "reads back); left out: told from the value's form",
                      json_schema_extra={"type": ["string", "null"]})


class DncEntryOut(BaseModel):
    """One destination on a do-not-call list."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    dnclist_id: uuid.UUID = Field(description="the list holding it")
    type: str = Field(description="tel, sip or email")
    value: str = Field(description=VALUE)
    tm_expire: str | None = Field(description=TM_EXPIRE)
    tm_create: str = Field(description=TM_CREATE)

    @classmethod
    def of(cls, row: DncEntry) -> "DncEntryOut":
        return cls(
            id=row.id, customer_id=row.customer_id, dnclist_id=row.dnclist_id, type=row.type,
            value=row.value, tm_expire=format_timestamp(row.tm_expire),
            tm_create=format_timestamp(row.tm_create),
        )
