"""Request-body conventions shared by every resource: strict JSON types, ids as strings, and
the value rules of outdial.validation on every field."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from outdial.validation import json_problem, text_problem

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
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        # What is accepted must be readable back: refused here, naming the field, rather than
        # stored and failing every page that holds it.
        if isinstance(value, str):
            problem = text_problem(info.field_name or "", value)
            if problem:
                raise PydanticCustomError("unstorable_text", problem)
        elif isinstance(value, dict):  # free JSON, such as an action's option
            found = json_problem(value)
            if found:
                # ctx["field"]: where inside the field, appended to its name in the error.
                raise PydanticCustomError("unstorable_json", found[1], {"field": found[0]})
        return value


class NameDetail(Body):
    """The body of every PUT that renames a resource: outdials, outplans, access keys."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "summer list", "detail": ""}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)

