"""Request dependencies: one database session per request and the authenticated caller."""

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.cache import Credential, CredentialCache
from outdial.auth.repository import CallerCheck, live_permission, permission_now
from outdial.auth.service import AuthService, Permission, Principal, confirm, known_credential
from outdial.clock import Clock
from outdial.db import Database
from outdial.db.driver import DriverConnection, driver_connection
from outdial.db.paging import PageRequest
from outdial.errors import InvalidArgument, OutdialError, Unauthenticated
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


def _database(request: Request) -> Database:
    """The read pool's for GET, else the write pool's (see app.create_app)."""
    state = request.app.state
    database: Database = state.read_database if request.method in READ_METHODS else state.database
    return database


async def open_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session of the request's database (_database)."""
    async with _database(request).sessions() as session:
        yield session  # anything not committed by the route is rolled back on close


# The three ways to pass a credential, declared as the OpenAPI document's security schemes.
token_query = APIKeyQuery(name="token", scheme_name="token", auto_error=False,
                          description="a login token (POST /auth/login) or an access key")
bearer_header = HTTPBearer(scheme_name="bearer", auto_error=False,
                           description="`Authorization: Bearer <login token or access key>`")
accesskey_query = APIKeyQuery(name="accesskey", scheme_name="accesskey", auto_error=False,
                              description="an access key (POST /v1.0/accesskeys)")


# What the OpenAPI document says of an operation that takes a credential: any one of the three
# schemes, in the order they are checked (the hot routes declare it, see credential_of).
CREDENTIALS_SECURITY = [{scheme.scheme_name: []}
                        for scheme in (token_query, bearer_header, accesskey_query)]


async def credential(
    token: Annotated[str | None, Security(token_query)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_header)],
    accesskey: Annotated[str | None, Security(accesskey_query)],
) -> str:
    """The credential the request carries (every /v1.0 call needs one), not yet checked."""
    return _first_credential(token, bearer, accesskey)


async def credential_of(request: Request) -> str:
    """`credential`, read by the same schemes without the framework solving them as four
    dependencies of the route (on a hot route that solving cost as much as its statement)."""
    return _first_credential(await token_query(request), await bearer_header(request),
                             await accesskey_query(request))


def _first_credential(
    token: str | None, bearer: HTTPAuthorizationCredentials | None, accesskey: str | None
) -> str:
    # ?token=, then Authorization: Bearer, then ?accesskey= (api.md's order).
    found = token or (bearer.credentials.strip() if bearer else None) or accesskey
    if not found:
        raise Unauthenticated(
            "a credential is required: ?token=, Authorization: Bearer or ?accesskey=",
            "AUTHENTICATION_REQUIRED",
        )
    return found


async def authenticated(
    request: Request,
    session: Annotated[AsyncSession, Depends(open_session)],
    secret: Annotated[str, Depends(credential)],
) -> Context:
    """The caller, checked before the route runs: one indexed statement when the credential is
    already known to this process (see auth/cache.py)."""
    state = request.app.state
    principal = await AuthService(session, state.clock).authenticate(
        secret, state.signing_secret, state.credentials)
    principal.require_manager()
    return Context(session, state.clock, principal)


@dataclass
class DeferredContext:
    """What a hot route works with: the caller's credential, proven (by this request or an
    earlier one of this process) but not yet checked against the database, which the route's
    own first statement does, so that a request makes one round trip where it would make two.

    The route runs its statements on a driver connection (`connection()`, db/driver.py), puts
    `check()` (the credential's live permission) into its first one and passes what it read
    to `confirm` before it answers; a route that found no row calls `verify`. Whatever the route
    raises inside `unconfirmed()` is preceded by that check, so a deleted key is answered 401
    (not 404, not 400) as on every other route.
    """

    database: Database  # the request's (_database)
    clock: Clock
    credential: Credential
    token: str
    cache: CredentialCache
    principal: Principal | None = field(default=None)

    def connection(self) -> AbstractAsyncContextManager[DriverConnection]:
        return driver_connection(self.database)

    def check(self) -> CallerCheck:
        return live_permission(self.credential)

    def confirm(self, permission: str | None) -> Principal:
        principal = confirm(self.credential, permission, self.cache, self.token)
        principal.require_manager()
        self.principal = principal
        return principal

    def confirm_writer(self) -> Principal:
        """The route's statement found the caller's permission among WRITERS without reading
        which one: the principal says manager, the least of them."""
        return self.confirm(Permission.MANAGER.value)

    async def verify(self, connection: DriverConnection) -> Principal:
        if self.principal is not None:
            return self.principal
        return self.confirm(await permission_now(connection, self.credential))

    @asynccontextmanager
    async def unconfirmed(self, connection: DriverConnection) -> AsyncIterator[None]:
        try:
            yield
        except OutdialError:
            await self.verify(connection)
            raise


async def deferred_authentication(request: Request) -> DeferredContext:
    """The caller of a hot route, without a session: a credential this process knows costs no
    statement here (see DeferredContext). The route's one dependency: it reads the credential
    itself (credential_of)."""
    secret = await credential_of(request)
    state = request.app.state
    database = _database(request)
    cache: CredentialCache = state.credentials
    found = known_credential(cache, secret, state.clock.now())
    if found is not None:
        return DeferredContext(database, state.clock, found, secret, cache)
    # Not seen by this process yet: proven now, its permission read with it.
    async with database.sessions() as session:
        # Reads only: no transaction (on SQLite no place in the writers' queue).
        await session.connection(execution_options=database.no_transaction)
        found, permission = await AuthService(session, state.clock).identify(
            secret, state.signing_secret, cache)
    context = DeferredContext(database, state.clock, found, secret, cache)
    context.confirm(permission)
    return context


Ctx = Annotated[Context, Depends(authenticated)]
# For hot routes only: the route checks the caller in its own statement (see DeferredContext).
DeferredCtx = Annotated[DeferredContext, Depends(deferred_authentication)]


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
