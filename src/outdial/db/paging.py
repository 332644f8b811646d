"""Keyset paging, newest first, that never skips or repeats a row."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.errors import InvalidArgument
from outdial.timestamps import format_page_token, parse_page_token

MAX_PAGE_SIZE = 100
Row = TypeVar("Row")


@dataclass(frozen=True)
class PageRequest:
    size: int = MAX_PAGE_SIZE
    before: dt.datetime | None = None
    before_id: uuid.UUID | None = None

    @classmethod
    def parse(cls, page_size: str | None, page_token: str | None) -> "PageRequest":
        """Read the query's page_size and page_token: sizes outside 1..100 become 100."""
        size = MAX_PAGE_SIZE
        if page_size not in (None, ""):
            try:
                size = int(page_size)
            except ValueError:
                raise InvalidArgument(
                    "page_size", f"{page_size!r} is not an integer", "INVALID_REQUEST_PARAMETER"
                ) from None
            if not 1 <= size <= MAX_PAGE_SIZE:
                size = MAX_PAGE_SIZE
        if not page_token:
            return cls(size)
        try:
            before, before_id = parse_page_token(page_token)
        except ValueError:
            raise InvalidArgument(
                "page_token",
                f"{page_token!r} is not a page token (a timestamp such as "
                "'2022-04-28 01:41:40.503790' or '2022-04-28T01:41:40.503790Z')",
                "INVALID_REQUEST_PARAMETER",
            ) from None
        return cls(size, before, before_id)


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    next_page_token: str


async def fetch_page(session: AsyncSession, query: Select[Any], model: Any, page: PageRequest) -> Page[Any]:
    """Run `query` (rows of `model`) one page at a time, ordered by (tm_create, id) descending."""
    if page.before is not None:
        if page.before_id is None:
            query = query.where(model.tm_create < page.before)
        else:
            # A row-value comparison, not the equivalent OR: both databases then seek the
            # (tm_create, id) index to the page, where the OR made them scan every row before it.
            seek = tuple_(model.tm_create, model.id) < tuple_(page.before, page.before_id)
            query = query.where(seek)
    query = query.order_by(model.tm_create.desc(), model.id.desc()).limit(page.size + 1)
    rows = list((await session.scalars(query)).all())
    more, rows = rows[page.size:], rows[: page.size]
    if not rows:
        return Page([], "")
    last = rows[-1]
    # The id is needed only when the next row shares the last row's microsecond.
    tie = more and more[0].tm_create == last.tm_create
    return Page(rows, format_page_token(last.tm_create, last.id if tie else None))
