"""Bulk calls on an outdial: import jobs, export of its targets, and live statistics."""

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from outdial.api.deps import Ctx, DnclistId, ImportId, OutdialId, Paging, parse_id
from outdial.api.schemas import PageOut
from outdial.errors import InvalidArgument
from outdial.imports.reading import UploadInterrupted, media_format
from outdial.imports.repository import DNC_ENTRIES, batches
from outdial.imports.schemas import ImportJobOut
from outdial.imports.service import ImportOptions, ImportRunner, find_job, list_jobs
from outdial.dnclists.export import export_entries
from outdial.dnclists.service import DnclistService
from outdial.outdials.export import EXPORT_FORMATS, export_targets
from outdial.outdials.service import OutdialService
from outdial.outdials.stats import OutdialStats, outdial_stats

router = APIRouter(tags=["imports"])
# The one route allowed a body larger than the API's cap (see RequestEnvelopeMiddleware).
IMPORT_PATH = r"/v1\.0/(?:outdials|dnclists)/[^/]+/imports"

# The route reads its body as a stream, so FastAPI cannot see it: declared here for the API
# document, with the formats `media_format` accepts, so that /docs can send a file.
_DESTINATION = {
    "description": "a bare address (type inferred: +… tel, sip:… sip, …@… email), "
                   "an address object, or empty",
    "anyOf": [{"type": "string"}, {"type": "object"}, {"type": "null"}],
}
_ROW = {
    "type": "object",
    "description": "one target; other keys are ignored",
    "properties": {
        "name": {"type": "string", "description": "the target's name"},
        "detail": {"type": "string", "description": "the target's detail"},
        "data": {"type": "string", "description": "the target's data"},
        **{f"destination_{n}": _DESTINATION for n in range(5)},
    },
}
_CSV_EXAMPLE = "name,detail,data,destination_0,destination_1\nAlice,vip,,+15559876543,alice@example.com\n"
_ROWS_EXAMPLE = [{"name": "Alice", "destination_0": "+15559876543"},
                 {"name": "Bob", "destination_0": "(212) 555-0123", "destination_1": "sip:bob@example.com"}]
IMPORT_BODY: dict[str, Any] = {
    "required": True,
    "description": "the list, in the format its Content-Type names; a CSV has a header row",
    "content": {
        "text/csv": {
            "schema": {"type": "string", "contentMediaType": "text/csv"},
            "example": _CSV_EXAMPLE,
        },
        "application/x-ndjson": {
            "schema": {"type": "string", "contentMediaType": "application/x-ndjson",
                       "description": "one JSON object (a row) per line"},
            "example": "".join(json.dumps(row) + "\n" for row in _ROWS_EXAMPLE),
        },
        "application/json": {
            "schema": {"type": "array", "items": _ROW},
            "example": _ROWS_EXAMPLE,
        },
    },
}


@router.post("/outdials/{outdial_id}/imports", openapi_extra={"requestBody": IMPORT_BODY})
async def create_import(
    outdial_id: OutdialId,
    request: Request,
    ctx: Ctx,
    default_region: Annotated[str | None, Query(description="region of national numbers, e.g. US")] = None,
    validation: Annotated[str | None, Query(
        description="possible (default): a number's length fits its country code; "
                    "valid: it is also in a range in service")] = None,
    dedupe: Annotated[str | None, Query(
        description="true: skip rows whose first destination is already in the outdial or "
                    "earlier in the file")] = None,
    id: Annotated[str | None, Query(description="the job's id, chosen by the client (a UUIDv4) "
                                                "to follow the job while it uploads")] = None,
) -> ImportJobOut:
    """Import a CSV, NDJSON or JSON-array file (by Content-Type), read as it streams in; valid rows
    become targets, all at once when the whole file is read. Answers the finished job."""
    target = parse_id(outdial_id)
    job_id = _client_job_id(id)
    format = media_format(request.headers.get("content-type", ""))
    options = ImportOptions.parse(default_region, validation, dedupe)
    # The import works in transactions of its own; end this one now, or on SQLite it would
    # hold the single writer for the whole upload.
    await ctx.commit()
    runner: ImportRunner = request.app.state.imports
    job = await runner.run(ctx.principal, target, format, options, _upload(request), job_id)
    return ImportJobOut.of(job)


def _client_job_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    job_id = parse_id(value, "id")
    if job_id.version != 4:
        raise InvalidArgument("id", f"{value!r} is not a version 4 UUID", "INVALID_ID")
    return job_id


async def _upload(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a client that goes away fails the import at once."""
    try:
        async for data in request.stream():
            yield data
    except ClientDisconnect:
        raise UploadInterrupted() from None


@router.get("/outdials/{outdial_id}/imports")
async def list_imports(outdial_id: OutdialId, ctx: Ctx, paging: Paging) -> PageOut[ImportJobOut]:
    """The outdial's import jobs, newest first (deleted outdials' too)."""
    page = await list_jobs(ctx.session, ctx.clock, ctx.principal, parse_id(outdial_id), paging)
    return PageOut.of(page, ImportJobOut.of)


@router.get("/outdials/{outdial_id}/imports/{import_id}")
async def get_import(outdial_id: OutdialId, import_id: ImportId, ctx: Ctx) -> ImportJobOut:
    """An import job: running with its counts so far, or done/failed with the first bad rows."""
    job = await find_job(ctx.session, ctx.clock, ctx.principal, parse_id(outdial_id, "outdial_id"),
                         parse_id(import_id, "import_id"))
    return ImportJobOut.of(job)


def _csv_stream(header: Iterable[str], chunks: AsyncIterator[list[Any]],
                render: Callable[[Any], Iterable[Any]]) -> AsyncIterator[bytes]:
    async def stream() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        async for rows in chunks:
            writer.writerows(render(row) for row in rows)
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue().encode()

    return stream()


@router.get("/outdials/{outdial_id}/imports/{import_id}/errors",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
async def get_import_errors(outdial_id: OutdialId, import_id: ImportId, request: Request, ctx: Ctx) -> StreamingResponse:
    """Every rejected row of the job, as CSV: row,field,message."""
    job = await find_job(ctx.session, ctx.clock, ctx.principal, parse_id(outdial_id, "outdial_id"),
                         parse_id(import_id, "import_id"))
    await ctx.commit()  # the stream reads in sessions of its own; free SQLite's writer now
    return _errors_response(request, job.id)


def _errors_response(request: Request, job_id: uuid.UUID) -> StreamingResponse:
    chunks = batches(request.app.state.database,
                     lambda repo, after: repo.error_batch(job_id, after, 5000), (0, ""),
                     lambda e: (e.row, e.field))
    return StreamingResponse(
        _csv_stream(("row", "field", "message"), chunks, lambda e: (e.row, e.field, e.message)),
        media_type="text/csv; charset=utf-8",
    )


@router.get("/outdials/{outdial_id}/imports/{import_id}/mapping",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
async def get_import_mapping(outdial_id: OutdialId, import_id: ImportId, request: Request, ctx: Ctx) -> StreamingResponse:
    """Which target each imported row became, as CSV: row,target_id (rows in file order)."""
    job = await find_job(ctx.session, ctx.clock, ctx.principal, parse_id(outdial_id, "outdial_id"),
                         parse_id(import_id, "import_id"))
    await ctx.commit()  # the stream reads in sessions of its own; free SQLite's writer now
    chunks = batches(request.app.state.database,
                     lambda repo, after: repo.mapping_batch(job.id, after, 10_000), 0,
                     lambda m: m.row)
    return StreamingResponse(
        _csv_stream(("row", "target_id"), chunks, lambda m: (m.row, m.target_id)),
        media_type="text/csv; charset=utf-8",
    )


@router.get("/outdials/{outdial_id}/targets/export", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
async def export_outdial_targets(
    outdial_id: OutdialId, request: Request, ctx: Ctx,
    format: Annotated[str, Query(description="csv or ndjson")] = "csv",
) -> StreamingResponse:
    """Every live target with its status and try counts, oldest first; imports back unchanged."""
    if format not in EXPORT_FORMATS:
        raise InvalidArgument("format", f"{format!r} is not one of: csv, ndjson",
                              "INVALID_REQUEST_PARAMETER")
    outdial = await OutdialService(ctx.session, ctx.clock).get_outdial(ctx.principal, parse_id(outdial_id))
    await ctx.commit()  # the stream reads in sessions of its own; free SQLite's writer now
    return StreamingResponse(
        export_targets(request.app.state.database, outdial.id, format, ctx.clock.now()),
        media_type=EXPORT_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="outdial-{outdial.id}.{format}"'},
    )


@router.get("/outdials/{outdial_id}/stats")
async def get_outdial_stats(
    outdial_id: OutdialId, ctx: Ctx,
    reasons: Annotated[bool, Query(description=(
        "also count the targets per waiting_reason (waiting_reasons); this reads the targets "
        "some rule may hold now, where the other figures come from counters alone"))] = False,
) -> OutdialStats:
    """Live figures of an outdial: targets by status, attempts per slot, dialable now."""
    outdial = await OutdialService(ctx.session, ctx.clock).get_outdial(ctx.principal, parse_id(outdial_id))
    return await outdial_stats(ctx.session, outdial, ctx.clock.now(), reasons_wanted=reasons)


# -- do-not-call lists: the same jobs, leases and formats, filling a list's entries ----------

_ENTRIES_CSV = "value,tm_expire\n+12125550123,\nalice@example.com,2027-06-30T00:00:00Z\n"
_ENTRIES = [{"value": "+1 212 555 0123"}, {"value": "sip:bob@example.com", "tm_expire": None}]
DNC_IMPORT_BODY: dict[str, Any] = {
    "required": True,
    "description": "entries {value, tm_expire}, in the format its Content-Type names; a CSV "
                   "has a header row naming a value column",
    "content": {
        "text/csv": {"schema": {"type": "string", "contentMediaType": "text/csv"},
                     "example": _ENTRIES_CSV},
        "application/x-ndjson": {
            "schema": {"type": "string", "contentMediaType": "application/x-ndjson"},
            "example": "".join(json.dumps(row) + "\n" for row in _ENTRIES)},
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}},
                             "example": _ENTRIES},
    },
}


@router.post("/dnclists/{dnclist_id}/imports", openapi_extra={"requestBody": DNC_IMPORT_BODY})
async def create_dnc_import(
    dnclist_id: DnclistId,
    request: Request,
    ctx: Ctx,
    default_region: Annotated[str | None, Query(description="region of national numbers, e.g. US")] = None,
    id: Annotated[str | None, Query(description="the job's id, chosen by the client (a UUIDv4) "
                                                "to follow the job while it uploads")] = None,
) -> ImportJobOut:
    """Import entries into a do-not-call list (CSV, NDJSON or a JSON array, by Content-Type),
    normalised as single entries are; values the list or the file holds already are skipped
    (rows_duplicate). All rows at once when the whole file is read. Answers the finished job."""
    target = parse_id(dnclist_id, "dnclist_id")
    job_id = _client_job_id(id)
    format = media_format(request.headers.get("content-type", ""))
    options = ImportOptions.parse(default_region, None, None)
    await ctx.commit()  # the import works in transactions of its own
    runner: ImportRunner = request.app.state.imports
    job = await runner.run(ctx.principal, target, format, options, _upload(request), job_id,
                           kind=DNC_ENTRIES)
    return ImportJobOut.of(job)


@router.get("/dnclists/{dnclist_id}/imports")
async def list_dnc_imports(dnclist_id: DnclistId, ctx: Ctx, paging: Paging) -> PageOut[ImportJobOut]:
    """The list's import jobs, newest first."""
    page = await list_jobs(ctx.session, ctx.clock, ctx.principal,
                           parse_id(dnclist_id, "dnclist_id"), paging, DNC_ENTRIES)
    return PageOut.of(page, ImportJobOut.of)


@router.get("/dnclists/{dnclist_id}/imports/{import_id}")
async def get_dnc_import(dnclist_id: DnclistId, import_id: ImportId, ctx: Ctx) -> ImportJobOut:
    """An import job of the list: running with its counts so far, or done/failed."""
    job = await find_job(ctx.session, ctx.clock, ctx.principal, parse_id(dnclist_id, "dnclist_id"),
                         parse_id(import_id, "import_id"), DNC_ENTRIES)
    return ImportJobOut.of(job)


@router.get("/dnclists/{dnclist_id}/imports/{import_id}/errors",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
async def get_dnc_import_errors(dnclist_id: DnclistId, import_id: ImportId, request: Request,
                                ctx: Ctx) -> StreamingResponse:
    """Every rejected row of the job, as CSV: row,field,message."""
    job = await find_job(ctx.session, ctx.clock, ctx.principal, parse_id(dnclist_id, "dnclist_id"),
                         parse_id(import_id, "import_id"), DNC_ENTRIES)
    await ctx.commit()
    return _errors_response(request, job.id)


@router.get("/dnclists/{dnclist_id}/entries/export", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
async def export_dnc_entries(
    dnclist_id: DnclistId, request: Request, ctx: Ctx,
    format: Annotated[str, Query(description="csv or ndjson")] = "csv",
) -> StreamingResponse:
    """Every entry of the list, oldest first; imports back unchanged."""
    if format not in EXPORT_FORMATS:
        raise InvalidArgument("format", f"{format!r} is not one of: csv, ndjson",
                              "INVALID_REQUEST_PARAMETER")
    dnclist = await DnclistService(ctx.session, ctx.clock).get_list(
        ctx.principal, parse_id(dnclist_id, "dnclist_id"))
    await ctx.commit()  # the stream reads in sessions of its own; free SQLite's writer now
    return StreamingResponse(
        export_entries(request.app.state.database, dnclist.id, format),
        media_type=EXPORT_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="dnclist-{dnclist.id}.{format}"'},
    )


__all__ = ["IMPORT_PATH", "router"]
