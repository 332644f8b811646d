"""GET /metrics (Prometheus text), and the middleware that counts every HTTP request for it."""

import hmac
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import iter_route_contexts
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outdial import metrics
from outdial.api.errors import RequestEnvelopeMiddleware, envelope, install_error_handlers
from outdial.settings import Settings

METRICS_PATH = "/metrics"


def metrics_router(token: str | None) -> APIRouter:
    """The /metrics route; with a token, only `Authorization: Bearer <token>` may read it.
    Not part of the OpenAPI document: it is for the scraper, not for tenants' clients."""
    router = APIRouter()
    expected = token.encode() if token else None

    @router.get(METRICS_PATH, include_in_schema=False)
    async def read_metrics(request: Request) -> Response:
        if expected is not None and not _bearer_matches(request, expected):
            refused = envelope(
                "UNAUTHENTICATED", "METRICS_TOKEN_REQUIRED",
                "/metrics needs the header Authorization: Bearer <OUTDIAL_METRICS_TOKEN>",
                request.state.request_id,
            )
            refused.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        body, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return router


def _bearer_matches(request: Request, expected: bytes) -> bool:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    # Header values arrive decoded as latin-1: encoding them back gives the bytes sent.
    given = credential.strip().encode("latin-1")
    # Compared in constant time whatever the scheme, so the answer's timing tells nothing.
    matches = hmac.compare_digest(given, expected)
    return matches and scheme.lower() == "bearer"


def metrics_app(settings: Settings) -> FastAPI:
    """What `outdial worker --metrics-port` serves: /metrics alone, with the API's envelope."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(metrics_router(settings.metrics_token))
    install_error_handlers(app)
    app.add_middleware(RequestEnvelopeMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware, router=app.router)
    return app


class HttpMetricsMiddleware:
    """Counts each HTTP request by method, route template and status, and times it.

    The route label is the template of the route that answered (`/v1.0/outdials/{outdial_id}`),
    never the raw path, so the number of series stays bounded. The router leaves the route
    object it matched in the scope; an included router's route knows only its own part of the
    path (`/outdials/{outdial_id}`), so the full template is looked up among `router`'s routes.

    Pure ASGI and cheap: each (method, route, status) keeps its label children, so a request
    costs two clock reads, a dict look-up, an increment and an observation.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router
        self._series: dict[tuple[str, int, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app ends without answering

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        began = time.perf_counter()
        try:
            await self.app(scope, receive, noting_send)
        except Exception:
            self._count(scope, 500, time.perf_counter() - began)
            raise
        self._count(scope, status, time.perf_counter() - began)

    def _count(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        if method not in metrics.HTTP_METHODS:
            method = "OTHER"
        route = scope.get("route")
        # Routes live as long as the app: their identity is a stable key.
        key = (method, id(route), status)
        series = self._series.get(key)
        if series is None:
            template = self._template(route)
            series = self._series[key] = (
                metrics.HTTP_REQUESTS.labels(method, template, str(status)),
                metrics.HTTP_SECONDS.labels(method, template),
            )
        series[0].inc()
        series[1].observe(seconds)

    def _template(self, route: object) -> str:
        if route is None:
            return metrics.UNMATCHED_ROUTE
        for context in iter_route_contexts(self.router.routes):
            if context.original_route is route and context.path_format:
                return context.path_format
        return getattr(route, "path_format", metrics.UNMATCHED_ROUTE)
