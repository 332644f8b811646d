"""Events: the outbox read by id (a page at a time), or followed live as Server-Sent Events.

Both read the database, not this process's memory: behind several API processes every one of
them serves every event, and a client resumes on any of them after the last id it saw.
"""

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from outdial.api.deps import Ctx, credential
from outdial.auth.service import AuthService
from outdial.db import busy_reason
from outdial.db.paging import MAX_PAGE_SIZE, PageRequest
from outdial.engine.worker import first_of
from outdial.errors import (
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from outdial.events.catalogue import EVENT_TYPES
from outdial.events.outbox import event_json, read_events

router = APIRouter(tags=["events"])
log = logging.getLogger("outdial.events")

TYPES_HELP = "only events of these types (repeat it, or separate types with commas): " + ", ".join(
    EVENT_TYPES)
AFTER_HELP = "only events with a greater id (the last id you saw); 0 or absent: from the oldest kept"


class EventOut(BaseModel):
    """A change, as it was committed: the resource as the API returned it at that moment."""

    id: int = Field(description="ascending; pass the last one you saw as `after` to resume")
    type: str = Field(description="what happened, <resource>_<verb>: " + ", ".join(EVENT_TYPES))
    customer_id: str = Field(description="the customer (tenant) of the resource")
    tm_create: str = Field(description="when the change was committed, UTC")
    data: dict[str, Any] = Field(description="the resource as its GET returns it")


class EventPage(BaseModel):
    """A page of events, oldest first."""

    result: list[EventOut] = Field(description="the page's events, ids ascending")
    next_page_token: str = Field(
        description='the last id of the page: pass it back as page_token (or after); "" on an '
                    "empty page (keep the id you had)")


# Event ids are 64-bit integers in both databases.
MAX_EVENT_ID = 2**63 - 1


def parse_after(value: str | None, field: str) -> int:
    if value in (None, ""):
        return 0
    after = int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else -1
    if not 0 <= after <= MAX_EVENT_ID:
        raise InvalidArgument(
            field, f"{value[:64]!r} is not an event id (an integer from 0 to {MAX_EVENT_ID})",
            "INVALID_REQUEST_PARAMETER")
    return after


def parse_types(values: list[str] | None) -> list[str]:
    types = [t.strip() for value in values or () for t in value.split(",") if t.strip()]
    for name in types:
        if name not in EVENT_TYPES:
            raise InvalidArgument(
                "type", f"{name!r} is not an event type; one of {', '.join(EVENT_TYPES)}",
                "INVALID_REQUEST_PARAMETER",
            )
    return types


Types = Annotated[list[str] | None, Query(alias="type", description=TYPES_HELP)]
After = Annotated[str | None, Query(description=AFTER_HELP)]


@router.get("/events")
async def list_events(
    ctx: Ctx,
    after: After = None,
    types: Types = None,
    page_size: Annotated[str | None, Query(description="1-100; other values mean 100")] = None,
    page_token: Annotated[str | None, Query(description="next_page_token of the previous page")] = None,
) -> EventPage:
    """Your events after an id, oldest first, a page at a time: poll with the last id you saw
    and you get every change once, in the order the ids say."""
    size = PageRequest.parse(page_size, None).size
    cursor = parse_after(page_token, "page_token") if page_token else parse_after(after, "after")
    rows = await read_events(ctx.session, ctx.principal.customer_id, cursor, parse_types(types), size)
    return EventPage(
        result=[EventOut(**event_json(r)) for r in rows],
        next_page_token=str(rows[-1].id) if rows else "",
    )


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`id:`, `event:` and `data:` (the event's JSON) per event"}},
)
async def stream_events(
    ctx: Ctx,
    request: Request,
    # The credential `ctx` was checked with (FastAPI reads it once per request), kept to be
    # checked again while the stream lasts.
    secret: Annotated[str, Depends(credential)],
    after: After = None,
    types: Types = None,
    last_event_id: Annotated[str | None, Header(
        description="the last id received; sent by EventSource when it reconnects")] = None,
) -> StreamingResponse:
    """Your events as Server-Sent Events, live: those after `Last-Event-ID` (or `after`) first,
    then each as it commits. A comment line comes every heartbeat period while none does.
    The credential is checked again every heartbeat period: once it no longer holds (a key
    deleted, a token expired, an agent deleted or demoted) the stream ends."""
    cursor = (parse_after(last_event_id, "Last-Event-ID") if last_event_id
              else parse_after(after, "after"))
    wanted = parse_types(types)
    customer_id = ctx.principal.customer_id
    state = request.app.state
    most = state.settings.events_streams_per_customer
    if state.streams[customer_id] >= most:
        raise ResourceExhausted(
            f"{most} live event streams of this customer are open on this server already "
            "(OUTDIAL_EVENTS_STREAMS_PER_CUSTOMER): close one, or read GET /v1.0/events page "
            "by page", "TOO_MANY_STREAMS")
    # Counted from here (no wait between the test and this): released when the response ends.
    state.streams[customer_id] += 1
    # The request's session was only for the credential: the stream reads in sessions of its
    # own, one short transaction a look.
    try:
        await ctx.session.close()
    except BaseException:
        _release(state, customer_id)
        raise
    settings, clock, database = state.settings, state.clock, state.read_database

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        # How long EventSource waits before reconnecting.
        yield f"retry: {round(settings.events_poll_seconds * 1000 * 4)}\n\n"
        quiet_since = checked_at = clock.now()
        recheck = dt.timedelta(seconds=settings.events_heartbeat_seconds)
        while not state.stopping:
            try:
                async with database.sessions() as session:
                    if clock.now() - checked_at >= recheck:
                        refusal = await why_refused(session, secret, state)
                        if refusal is not None:
                            yield f": credential refused: {refusal}\n\n"
                            return
                        checked_at = clock.now()
                    rows = await read_events(session, customer_id, cursor, wanted, MAX_PAGE_SIZE)
            except Exception as error:  # noqa: BLE001 - a busy database: look again later
                if (reason := busy_reason(error)) is None:
                    raise
                log.warning("event stream: the database is busy (%s)", reason)
                rows = []
            for row in rows:
                body = json.dumps(event_json(row), separators=(",", ":"))
                yield f"id: {row.id}\nevent: {row.type}\ndata: {body}\n\n"
                cursor = row.id
            if len(rows) == MAX_PAGE_SIZE:
                continue  # more are waiting
            now = clock.now()
            if rows:
                quiet_since = now
            elif (now - quiet_since).total_seconds() >= settings.events_heartbeat_seconds:
                yield ": heartbeat\n\n"
                quiet_since = now
            await clock.sleep(settings.events_poll_seconds)

    return EventStream(
        events(), state, release=lambda: _release(state, customer_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _release(state: State, customer_id: Any) -> None:
    state.streams[customer_id] -= 1
    if state.streams[customer_id] <= 0:
        del state.streams[customer_id]


class _Stalled(Exception):
    pass


class EventStream(StreamingResponse):
    """A stream whose every write is bounded: a client that has read nothing for
    `events_stall_seconds` (its connection's buffers full) is let go, and so is every such
    client as soon as the server shuts down. A write waits on the client, not on the loop:
    without a bound, one stalled reader holds its page of events in memory for ever and keeps
    a graceful shutdown from ending."""

    def __init__(self, content: AsyncIterator[str], state: State, release: Any,
                 **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.state = state
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()  # however it ended: the client gone, stalled, the server stopping

    async def stream_response(self, send: Any) -> None:
        try:
            await super().stream_response(self._bounded(send))
        except _Stalled as stalled:
            log.info("event stream: %s; it is closed", stalled)

    def _bounded(self, send: Any) -> Any:
        state, settings = self.state, self.state.settings

        async def bounded(message: Any) -> None:
            sending = asyncio.ensure_future(send(message))
            for _ in range(3):  # a client that reads: the write is taken at once
                if sending.done():
                    return sending.result()
                await asyncio.sleep(0)
            waited = 0.0
            while True:
                await first_of(asyncio.shield(sending), state.clock.sleep(settings.events_poll_seconds))
                if sending.done():
                    return sending.result()
                waited += settings.events_poll_seconds
                if state.stopping or waited >= settings.events_stall_seconds:
                    sending.cancel()
                    raise _Stalled("the server is stopping and the client reads nothing"
                                   if state.stopping else
                                   f"the client read nothing for {waited:.0f} s")

        return bounded


async def why_refused(session: AsyncSession, secret: str, state: State) -> str | None:
    """Why the stream's credential no longer lets it read events, by the check every request
    passes (None: it still does). A busy database raises, and the stream asks again at its
    next look."""
    try:
        principal = await AuthService(session, state.clock).authenticate(
            secret, state.signing_secret, state.credentials)
        principal.require_manager()
    except (Unauthenticated, PermissionDenied) as refused:
        return refused.message
    return None
