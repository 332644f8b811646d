"""The one mapping from errors to the API's envelope, and the middleware that guarantees it."""

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outdial.db import busy_reason
from outdial.errors import OutdialError, Unavailable

log = logging.getLogger("outdial.api")

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}


class PayloadTooLarge(OutdialError):
    status = "PAYLOAD_TOO_LARGE"
    default_reason = "REQUEST_BODY_TOO_LARGE"


# Seconds a client is told to wait before retrying a 503.
RETRY_AFTER_SECONDS = 1


def envelope(status: str, reason: str, message: str, request_id: str) -> JSONResponse:
    body = {"error": {"status": status, "reason": reason, "message": message, "request_id": request_id}}
    headers = {"X-Request-Id": request_id}
    if status == "UNAVAILABLE":
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return JSONResponse(body, status_code=HTTP_STATUS[status], headers=headers)


def unavailable(error: BaseException) -> Unavailable | None:
    """A database wait that ran out (pool, lock, statement) as the 503 it is; else None."""
    reason = busy_reason(error)
    if reason is None:
        return None
    return Unavailable(f"the service is busy ({reason}); retry in a moment")


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "") or str(uuid.uuid4())


def _field_of(location: tuple[Any, ...]) -> str:
    """("body", "destination_0", "target") → "destination_0.target"."""
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


_PYDANTIC_WORDS = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "uuid_type": "must be a UUID string",
    "uuid_parsing": "must be a UUID string",
    "bool_type": "must be true or false",
    "extra_forbidden": "is not an accepted field",
}


def _validation_response(request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return envelope("INVALID_ARGUMENT", "INVALID_JSON_BODY",
                        f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}",
                        _request_id(request))
    # A validator may say where inside its field (or, for the whole body, which key) it means.
    inside = first.get("ctx", {}).get("field", "")
    field = ".".join(part for part in (_field_of(tuple(first["loc"])), inside) if part) or "body"
    content_type = request.headers.get("content-type", "")
    if field == "body" and content_type and "json" not in content_type:
        return envelope("INVALID_ARGUMENT", "INVALID_JSON_BODY",
                        f"body: must be JSON sent with Content-Type: application/json, not {content_type!r}",
                        _request_id(request))
    if field == "body" and first["type"] == "missing":
        problem = "a JSON object is required"
    elif first["type"] == "value_error":
        problem = str(first["ctx"]["error"])
    else:
        problem = _PYDANTIC_WORDS.get(first["type"], first["msg"])
    return envelope("INVALID_ARGUMENT", "INVALID_ARGUMENT", f"{field}: {problem}", _request_id(request))


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, OutdialError)
        return envelope(error.status, error.reason, error.message, _request_id(request))

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _validation_response(request, error)

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        rid = _request_id(request)
        if error.status_code == 404:
            return envelope("NOT_FOUND", "ROUTE_NOT_FOUND",
                            f"no route {request.method} {request.url.path}", rid)
        if error.status_code == 405:
            return envelope("METHOD_NOT_ALLOWED", "METHOD_NOT_ALLOWED",
                            f"{request.method} is not allowed on {request.url.path}", rid)
        if error.status_code == 400:
            return envelope("INVALID_ARGUMENT", "INVALID_ARGUMENT", str(error.detail), rid)
        return envelope("INTERNAL", "INTERNAL", str(error.detail), rid)

    app.add_exception_handler(OutdialError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


class RequestEnvelopeMiddleware:
    """Gives every request an id (X-Request-Id), caps the body size, and turns any escaped
    exception into the envelope: no stack trace or bare framework body ever leaves."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int,
        larger_bodies: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        """`larger_bodies`: (method, path regex, limit) of the few routes that stream a body
        larger than `max_body_bytes` (imports); every other request keeps the cap."""
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.larger_bodies = [(m, re.compile(p), limit) for m, p, limit in larger_bodies]

    def _streamed_limit(self, scope: Scope) -> int | None:
        """The limit of a route that streams its body, or None for an ordinary JSON route."""
        for method, path, limit in self.larger_bodies:
            if scope["method"] == method and path.fullmatch(scope["path"]):
                return limit
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        streamed_limit = self._streamed_limit(scope)
        limit = self.max_body_bytes if streamed_limit is None else streamed_limit
        too_large = f"the request body is larger than {limit} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_envelope(send, "PAYLOAD_TOO_LARGE", "REQUEST_BODY_TOO_LARGE", too_large, request_id)
                return

        if streamed_limit is None:
            body_receive = await _read_whole_body(receive, limit)
            if body_receive is None:
                await _send_envelope(send, "PAYLOAD_TOO_LARGE", "REQUEST_BODY_TOO_LARGE", too_large, request_id)
                return
        else:
            body_receive = _counting(receive, limit, too_large)

        started = False

        async def tagging_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, body_receive, tagging_send)
        except Exception as error:
            if (busy := unavailable(error)) is not None:
                log.warning("request %s: %s", request_id, busy.message)
                if not started:
                    await _send_envelope(send, busy.status, busy.reason, busy.message, request_id)
                return
            log.exception("request %s failed", request_id)
            if not started:
                await _send_envelope(send, "INTERNAL", "INTERNAL",
                                     "the server failed; quote the request id when reporting it", request_id)


async def _read_whole_body(receive: Receive, limit: int) -> Receive | None:
    """JSON bodies are small: read one whole, up to `limit`, before the app sees it, so an
    oversized body is refused here whatever the framework would make of it. None: too large."""
    body, more = bytearray(), True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            return None
    replayed = False

    async def replaying_receive() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    return replaying_receive


def _counting(receive: Receive, limit: int, too_large: str) -> Receive:
    """A streamed body (an import) passes through as it comes, counted against its own limit;
    the route reading it gets PayloadTooLarge past the limit."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise PayloadTooLarge(too_large)
        return message

    return counting_receive


async def _send_envelope(send: Send, status: str, reason: str, message: str, request_id: str) -> None:
    response = envelope(status, reason, message, request_id)
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
