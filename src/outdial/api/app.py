"""The application factory: settings in, a ready ASGI app out."""

import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Receive, Scope, Send

from outdial import __version__
from outdial.api.dashboard import install_dashboard
from outdial.api.deps import credential
from outdial.api.docs import install_docs
from outdial.api.errors import RequestEnvelopeMiddleware, install_error_handlers
from outdial.api.metrics import HttpMetricsMiddleware, metrics_router
from outdial.api.routes import (
    auth,
    campaigncalls,
    campaigns,
    channels,
    contactlimits,
    dnclists,
    events,
    health,
    imports,
    outdials,
    outplans,
    webhooks,
)
from outdial.api.schemas import AUTHENTICATED_ERRORS, error_responses
from outdial.auth.cache import CredentialCache
from outdial.auth.service import AuthService
from outdial.channels.secrets import CHANNEL_KEY_NAME, SecretBox
from outdial.clock import Clock, SystemClock
from outdial.db import Database, Limits
from outdial.engine import BackgroundEngine
from outdial.imports.service import ImportRunner
from outdial.migrations import upgrade_database
from outdial.outdials.counts import Compactor
from outdial.settings import Settings
from outdial.timestamps import TimeFormat, use_time_format


async def prepare_database(
    database: Database, settings: Settings, clock: Clock
) -> tuple[str, SecretBox]:
    """Migrate, make the first admin if there is no user, and return the token-signing secret
    and the box that keeps channel passwords."""
    await upgrade_database(database)
    async with database.transaction() as session:
        service = AuthService(session, clock)
        secret = await service.signing_secret(settings.secret_key)
        channel_key = await service.server_secret(CHANNEL_KEY_NAME, settings.channel_secret_key)
        made = await service.bootstrap_admin(settings.admin_username, settings.admin_password)
    if made is not None and made.generated_password is not None:
        print(
            f"Created the first admin: username {made.username!r}, password "
            f"{made.generated_password!r} (shown once; set OUTDIAL_ADMIN_PASSWORD to choose it)",
            file=sys.stderr, flush=True,
        )
    return secret, SecretBox(channel_key)


# Connections of each of the API's two pools (writes, reads): as many as before, when ten were
# kept and ten more made for bursts.
API_POOL_SIZE = 20


API_DESCRIPTION = """Outbound dialing lists ("outdials" of targets) and the campaigns that dial them,
in the VoIPbin wire format.

**Credentials**, checked in this order: `?token=` (a login token from `POST /auth/login`, or an
access key), `Authorization: Bearer …`, `?accesskey=`. Every `/v1.0` call needs one.

**Errors** come in one envelope, `{"error": {"status", "reason", "message", "request_id"}}`,
with the same id in the `X-Request-Id` header; a 400 names the field and the reason.

**Metrics** for Prometheus are at `GET /metrics` (text format), outside this document and
outside any tenant: open, or behind `Authorization: Bearer <OUTDIAL_METRICS_TOKEN>` when the
server sets that token.
"""


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = Limits.for_api(settings)
        # Every connection the API makes is kept: under load, connections made for a burst and
        # closed after it would each cost a connect (TCP, TLS attempt, start-up) to make again.
        database = Database(settings.database_url, limits=limits, role="outdial api",
                            pool_size=API_POOL_SIZE, overflow=0)
        app.state.database = database
        # Reads have connections of their own: writes queued on a lock never starve them.
        app.state.read_database = Database(settings.database_url, limits=limits,
                                           role="outdial api reads", reads_only=True,
                                           pool_size=API_POOL_SIZE, overflow=0)
        app.state.signing_secret, app.state.channel_secrets = await prepare_database(
            database, settings, clock
        )
        app.state.imports = ImportRunner(settings, clock)
        await app.state.imports.start()
        compactor = Compactor(database, clock)
        compactor.start()
        engine = (
            BackgroundEngine.start(settings, clock, app.state.channel_secrets)
            if settings.engine_in_process else None
        )
        try:
            yield
        finally:
            if engine is not None:
                await engine.stop()
            await compactor.stop()
            await app.state.imports.close()
            await app.state.read_database.dispose()
            await database.dispose()

    app = FastAPI(
        title="Outdial", version=__version__, lifespan=lifespan, description=API_DESCRIPTION,
        docs_url=None, redoc_url=None,  # see install_docs: served without a CDN
        # Operation ids are the route functions' names (create_outdial, …): the method names
        # of a generated client.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.stopping = False  # set by `outdial serve` on SIGTERM (cli/server.py)
    app.state.streams = Counter()  # open live event streams, per customer (routes/events.py)
    app.state.credentials = CredentialCache()

    # The hot routes first: the framework tries an app's routes in order, and matches each
    # router on the way twice (to choose it, then inside it), so a route behind the others
    # pays for scanning them. Their paths are none of another route's.
    # Their one dependency reads the credential itself (deps.deferred_authentication), and
    # each declares the credential schemes (deps.CREDENTIALS_SECURITY) as the others do.
    app.include_router(outdials.hot_router, prefix="/v1.0",
                       responses=error_responses(*AUTHENTICATED_ERRORS))
    v1 = APIRouter(
        # Each route depends on `authenticated` (Ctx) or, for the hot ones, on
        # `deferred_authentication` (DeferredCtx); tests/unit/test_authenticated_routes.py holds
        # every /v1.0 route to that.
        prefix="/v1.0", dependencies=[Depends(credential)],
        responses=error_responses(*AUTHENTICATED_ERRORS),
    )
    v1.include_router(auth.router)
    # Before the outdials router: /targets/export must not be read as /targets/{target_id}.
    v1.include_router(imports.router)
    v1.include_router(outdials.router)
    v1.include_router(outplans.router)
    v1.include_router(campaigns.router)
    v1.include_router(campaigncalls.router)
    v1.include_router(channels.router)
    v1.include_router(contactlimits.router)
    v1.include_router(dnclists.router)
    v1.include_router(events.router)
    v1.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(metrics_router(settings.metrics_token))
    app.include_router(auth.login_router)
    app.include_router(v1)
    install_docs(app)
    install_dashboard(app)

    install_error_handlers(app)
    app.add_middleware(
        RequestEnvelopeMiddleware, max_body_bytes=settings.max_body_bytes,
        larger_bodies=[("POST", imports.IMPORT_PATH, settings.max_import_bytes)],
    )
    app.add_middleware(TimeFormatMiddleware, time_format=settings.time_format)
    # Outside the envelope, so that its 413s and 500s are counted too; inside the trailing
    # slash's, which passes a new scope on: the router's matched route is read from this one.
    app.add_middleware(HttpMetricsMiddleware, router=app.router)
    app.add_middleware(TrailingSlashMiddleware)  # outermost: every layer sees the one path
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class TimeFormatMiddleware:
    """Every request is answered with the app's OUTDIAL_TIME_FORMAT, streamed bodies included."""

    def __init__(self, app: ASGIApp, time_format: TimeFormat) -> None:
        self.app = app
        self.time_format = time_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with use_time_format(self.time_format):
            await self.app(scope, receive, send)
class TrailingSlashMiddleware:
    """`/v1.0/outdials/` is served as `/v1.0/outdials`: Starlette would answer 307 with an empty
    body, which clients that do not follow redirects (or drop the body on them) cannot read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            raw_path = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": path.rstrip("/") or "/", "raw_path": raw_path.rstrip(b"/") or b"/"}
        await self.app(scope, receive, send)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less the 422 it adds by default (and its schemas): this API answers
    400 in the error envelope instead."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        for path in schema["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
