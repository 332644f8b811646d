"""Shapes shared by every route: the list page and the error envelope."""

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import Response
from pydantic import BaseModel, Field

from outdial.db.paging import Page

Item = TypeVar("Item")


class PageOut(BaseModel, Generic[Item]):
    """One page of a list, newest first."""

    result: list[Item] = Field(description="the page's items, newest first")
    next_page_token: str = Field(
        description='pass it back as page_token for the next page; "" on an empty page'
    )

    @classmethod
    def of(cls, page: Page[Any], render: Callable[[Any], Item]) -> "PageOut[Item]":
        return cls(result=[render(row) for row in page.rows], next_page_token=page.next_page_token)


def answer(model: BaseModel) -> Response:
    """A hot route's answer, the bytes the framework would write for the route's response model
    (by alias, compact JSON) without validating the model a second time."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


class ErrorDetail(BaseModel):
    status: str = Field(description="the class of error, e.g. INVALID_ARGUMENT, NOT_FOUND",
                        examples=["INVALID_ARGUMENT"])
    reason: str = Field(description="the precise cause, e.g. INVALID_ID, OUTDIAL_IN_USE",
                        examples=["INVALID_ARGUMENT"])
    message: str = Field(description="for people: the field at fault and why",
                         examples=["destination_0.target: '+1555' is not a valid E.164 phone number"])
    request_id: str = Field(description="the request's id, also in the X-Request-Id header; "
                                        "quote it when reporting a problem")


class ErrorEnvelope(BaseModel):
    """Every error answer: {"error": {...}}."""

    error: ErrorDetail = Field(description="what went wrong")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


AUTHENTICATED_ERRORS: Sequence[int] = (400, 401, 403, 404, 409, 413)
