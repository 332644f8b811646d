"""The application factory: settings in, a ready ASGI app out."""

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from outdial import __version__
from outdial.api.deps import authenticated
from outdial.api.errors import RequestEnvelopeMiddleware, install_error_handlers
from outdial.api.routes import (
    auth,
    campaigncalls,
    campaigns,
    channels,
    health,
    imports,
    outdials,
    outplans,
)
from outdial.api.schemas import AUTHENTICATED_ERRORS, error_responses
from outdial.auth.service import AuthService
from outdial.channels.secrets import CHANNEL_KEY_NAME, SecretBox
from outdial.clock import Clock, SystemClock
from outdial.db import Database
from outdial.engine import BackgroundEngine
from outdial.imports.service import ImportRunner, recover_abandoned_imports
from outdial.migrations import upgrade_database
from outdial.settings import Settings


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


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        app.state.database = database
        app.state.signing_secret, app.state.channel_secrets = await prepare_database(
            database, settings, clock
        )
        await recover_abandoned_imports(database, clock)
        app.state.imports = ImportRunner(database, clock, settings.import_workers)
        engine = (
            BackgroundEngine.start(database, settings, clock, app.state.channel_secrets)
            if settings.engine_in_process else None
        )
        try:
            yield
        finally:
            if engine is not None:
                await engine.stop()
            app.state.imports.close()
            await database.dispose()

    app = FastAPI(
        title="Outdial", version=__version__, lifespan=lifespan,
        description="Outbound dialing lists and the campaigns that dial them "
                    "(VoIPbin-compatible wire format).",
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
    v1.include_router(channels.router)
    app.include_router(health.router)
    app.include_router(auth.login_router)
    app.include_router(v1)

    install_error_handlers(app)
    app.add_middleware(
        RequestEnvelopeMiddleware, max_body_bytes=settings.max_body_bytes,
        larger_bodies=[("POST", imports.IMPORT_PATH, settings.max_import_bytes)],
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less the 422 it adds by default: this API answers 400 instead."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        for path in schema["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema
