"""Shapes shared by every route: the list page and the error envelope."""

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from outdial.db.paging import Page

Item = TypeVar("Item")


class PageOut(BaseModel, Generic[Item]):
    result: list[Item]
    next_page_token: str

    @classmethod
    def of(cls, page: Page[Any], render: Callable[[Any], Item]) -> "PageOut[Item]":
        return cls(result=[render(row) for row in page.rows], next_page_token=page.next_page_token)


class ErrorDetail(BaseModel):
    status: str
    reason: str
    message: str
    request_id: str


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorEnvelope} for code in codes}


AUTHENTICATED_ERRORS: Sequence[int] = (400, 401, 403, 404, 409, 413)
