"""Request-body conventions shared by every resource: strict JSON types, ids as strings, no NUL."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator
from pydantic_core import PydanticCustomError

# JSON has no UUID type: an id in a body arrives as a string, which strict mode would refuse.
Id = Annotated[uuid.UUID, Strict(False)]

# Descriptions of the fields that many resources share, so the API document says them one way.
ID = "the resource's id (a UUIDv4)"
CUSTOMER_ID = "the customer (tenant) the resource belongs to"
NAME = "a name for people; free text"
DETAIL = "a longer description for people; free text"
TM_CREATE = "when it was created, UTC (`YYYY-MM-DD HH:MM:SS.ffffff`)"
TM_UPDATE = "when it was last changed, UTC; `9999-01-01 00:00:00.000000` if never"
TM_DELETE = "when it was deleted, UTC; `9999-01-01 00:00:00.000000` while it is live"


class Body(BaseModel):
    """A request body: JSON types are taken as they are (no "1" for 1), unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @field_validator("*")
    @classmethod
    def _no_nul_character(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000; refused here as bad input rather than failing later.
        if isinstance(value, str) and "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain the NUL character (U+0000)")
        return value


class NameDetail(Body):
    """The body of every PUT that renames a resource: outdials, outplans, access keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "summer list", "detail": ""}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)

