"""Request-body conventions shared by every resource: strict JSON types, ids as strings, and
the value rules of outdial.validation on every field."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Strict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from outdial.validation import json_problem, text_problem

# JSON has no UUID type: an id in a body arrives as a string, which strict mode would refuse.
Id = Annotated[uuid.UUID, Strict(False)]


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

    name: str = ""
    detail: str = ""
