"""Request dependencies: one database session per request and the authenticated caller."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.service import AuthService, Principal
from outdial.clock import Clock
from outdial.db.paging import PageRequest
from outdial.errors import InvalidArgument, Unauthenticated
from outdial.models.base import NIL_UUID


@dataclass
class Context:
    """What a route works with: its session (one transaction), the clock and the caller."""

    session: AsyncSession
    clock: Clock
    principal: Principal

    async def commit(self) -> None:
        await self.session.commit()


READ_METHODS = ("GET", "HEAD")


async def open_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session of the read pool for GET, else of the write pool (see app.create_app)."""
    state = request.app.state
    database = state.read_database if request.method in READ_METHODS else state.database
    async with database.sessions() as session:
        yield session  # anything not committed by the route is rolled back on close


def _credential(request: Request) -> str | None:
    """?token=, then Authorization: Bearer, then ?accesskey= (api.md's order)."""
    if token := request.query_params.get("token"):
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("accesskey") or None


async def authenticated(
    request: Request,
    session: Annotated[AsyncSession, Depends(open_session)],
    # Declared so that the OpenAPI document shows how to pass a credential.
    token: Annotated[str | None, Query(description="login token or access key")] = None,
    accesskey: Annotated[str | None, Query(description="access key")] = None,
) -> Context:
    credential = _credential(request)
    if credential is None:
        raise Unauthenticated(
            "a credential is required: ?token=, Authorization: Bearer or ?accesskey=",
            "AUTHENTICATION_REQUIRED",
        )
    state = request.app.state
    principal = await AuthService(session, state.clock).authenticate(credential, state.signing_secret)
    principal.require_manager()
    return Context(session, state.clock, principal)


Ctx = Annotated[Context, Depends(authenticated)]


def parse_id(value: str, field: str = "id") -> uuid.UUID:
    """A path id: a UUID other than the nil one."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not a valid id (a UUID)", "INVALID_ID") from None
    if parsed == NIL_UUID:
        raise InvalidArgument(field, "the nil UUID names nothing", "INVALID_ID")
    return parsed


def page_request(
    page_size: Annotated[str | None, Query(description="1-100; other values mean 100")] = None,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page")] = None,
) -> PageRequest:
    return PageRequest.parse(page_size, page_token)


Paging = Annotated[PageRequest, Depends(page_request)]
