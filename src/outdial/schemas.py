"""Request-body conventions shared by every resource: strict JSON types, ids as strings, no NUL."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Strict, field_validator
from pydantic_core import PydanticCustomError

# JSON has no UUID type: an id in a body arrives as a string, which strict mode would refuse.
Id = Annotated[uuid.UUID, Strict(False)]


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

    name: str = ""
    detail: str = ""
