"""Request dependencies: one database session per request and the authenticated caller."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
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


# The three ways to pass a credential, declared as the OpenAPI document's security schemes.
token_query = APIKeyQuery(name="token", scheme_name="token", auto_error=False,
                          description="a login token (POST /auth/login) or an access key")
bearer_header = HTTPBearer(scheme_name="bearer", auto_error=False,
                           description="`Authorization: Bearer <login token or access key>`")
accesskey_query = APIKeyQuery(name="accesskey", scheme_name="accesskey", auto_error=False,
                              description="an access key (POST /v1.0/accesskeys)")


async def authenticated(
    request: Request,
    session: Annotated[AsyncSession, Depends(open_session)],
    token: Annotated[str | None, Security(token_query)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_header)],
    accesskey: Annotated[str | None, Security(accesskey_query)],
) -> Context:
    # ?token=, then Authorization: Bearer, then ?accesskey= (api.md's order).
    credential = token or (bearer.credentials.strip() if bearer else None) or accesskey
    if not credential:
        raise Unauthenticated(
            "a credential is required: ?token=, Authorization: Bearer or ?accesskey=",
            "AUTHENTICATION_REQUIRED",
        )
    state = request.app.state
    principal = await AuthService(session, state.clock).authenticate(credential, state.signing_secret)
    principal.require_manager()
    return Context(session, state.clock, principal)


Ctx = Annotated[Context, Depends(authenticated)]


# Path ids, as routes declare them (parse_id checks them, so that a bad one is a 400 in the envelope).
OutdialId = Annotated[str, Path(description="the outdial's id")]
TargetId = Annotated[str, Path(description="the target's id")]
ImportId = Annotated[str, Path(description="the import job's id")]
OutplanId = Annotated[str, Path(description="the outplan's id")]
CampaignId = Annotated[str, Path(description="the campaign's id")]
CampaigncallId = Annotated[str, Path(description="the campaigncall's id")]
AccessKeyId = Annotated[str, Path(description="the access key's id")]
ChannelId = Annotated[str, Path(description="the channel's id")]
DnclistId = Annotated[str, Path(description="the do-not-call list's id")]
WebhookId = Annotated[str, Path(description="the webhook's id")]
DeliveryId = Annotated[str, Path(description="the delivery's id")]


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
