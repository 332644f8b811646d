"""The application factory: settings in, a ready ASGI app out."""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from outdial import __version__
from outdial.api.deps import authenticated
from outdial.api.docs import install_docs
from outdial.api.errors import RequestEnvelopeMiddleware, install_error_handlers
from outdial.api.routes import auth, campaigncalls, campaigns, health, imports, outdials, outplans
from outdial.api.schemas import AUTHENTICATED_ERRORS, error_responses
from outdial.auth.service import AuthService
from outdial.clock import Clock, SystemClock
from outdial.db import Database
from outdial.engine import BackgroundEngine
from outdial.imports.service import ImportRunner, recover_abandoned_imports
from outdial.migrations import upgrade_database
from outdial.settings import Settings


async def prepare_database(database: Database, settings: Settings, clock: Clock) -> str:
    """Migrate, make the first admin if there is no user, and return the token-signing secret."""
    await upgrade_database(database)
    async with database.transaction() as session:
        service = AuthService(session, clock)
        secret = await service.signing_secret(settings.secret_key)
        made = await service.bootstrap_admin(settings.admin_username, settings.admin_password)
    if made is not None and made.generated_password is not None:
        print(
            f"Created the first admin: username {made.username!r}, password "
            f"{made.generated_password!r} (shown once; set OUTDIAL_ADMIN_PASSWORD to choose it)",
            file=sys.stderr, flush=True,
        )
    return secret


API_DESCRIPTION = """Outbound dialing lists ("outdials" of targets) and the campaigns that dial them,
in the VoIPbin wire format.

**Credentials**, checked in this order: `?token=` (a login token from `POST /auth/login`, or an
access key), `Authorization: Bearer …`, `?accesskey=`. Every `/v1.0` call needs one.

**Errors** come in one envelope, `{"error": {"status", "reason", "message", "request_id"}}`,
with the same id in the `X-Request-Id` header; a 400 names the field and the reason.
"""


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        app.state.database = database
        app.state.signing_secret = await prepare_database(database, settings, clock)
        await recover_abandoned_imports(database, clock)
        app.state.imports = ImportRunner(database, clock, settings.import_workers)
        engine = BackgroundEngine.start(database, settings, clock) if settings.engine_in_process else None
        try:
            yield
        finally:
            if engine is not None:
                await engine.stop()
            app.state.imports.close()
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

    v1 = APIRouter(
        prefix="/v1.0", dependencies=[Depends(authenticated)],
        responses=error_responses(*AUTHENTICATED_ERRORS),
    )
    v1.include_router(auth.router)
    # Before the outdials router: /targets/export must not be read as /targets/{target_id}.
    v1.include_router(imports.router)
    v1.include_router(outdials.router)
    v1.include_router(outplans.router)
    v1.include_router(campaigns.router)
    v1.include_router(campaigncalls.router)
    app.include_router(health.router)
    app.include_router(auth.login_router)
    app.include_router(v1)
    install_docs(app)

    install_error_handlers(app)
    app.add_middleware(
        RequestEnvelopeMiddleware, max_body_bytes=settings.max_body_bytes,
        larger_bodies=[("POST", imports.IMPORT_PATH, settings.max_import_bytes)],
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


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
