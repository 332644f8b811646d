"""The benchmarks' server: the real app from create_app plus no-op routes, under uvicorn.

Run as a subprocess by the benchmarks (`python bench/server.py --database-url URL --port N`).
uvicorn is started exactly as `outdial serve` starts it (one process, uvloop/httptools when
installed, no access log), so the no-op routes measure the same stack as the real ones.
"""

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI

from outdial.api import create_app
from outdial.api.deps import Ctx
from outdial.outdials.schemas import TargetWrite
from outdial.outdials.service import validate_destinations
from outdial.settings import Settings

ADMIN_USERNAME = "bench-admin"
ADMIN_PASSWORD = "bench-password-1"


def create_bench_app(settings: Settings) -> FastAPI:
    """The service's app with three extra routes that peel off one layer of work each."""
    app = create_app(settings)

    async def noop() -> dict[str, Any]:
        """Routing, middleware and JSON answer only: the framework's ceiling."""
        return {}

    async def noop_validated(body: TargetWrite) -> dict[str, Any]:
        """The target body parsed and its destinations checked, no database."""
        validate_destinations(body.destinations())
        return {}

    async def noop_authenticated(ctx: Ctx) -> dict[str, Any]:
        """A session opened and the caller authenticated (what every /v1.0 call pays), no write."""
        return {}

    app.add_api_route("/bench/noop", noop, methods=["POST"])
    app.add_api_route("/bench/validated", noop_validated, methods=["POST"])
    app.add_api_route("/bench/authenticated", noop_authenticated, methods=["POST"])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings(
        database_url=args.database_url, admin_username=ADMIN_USERNAME,
        admin_password=ADMIN_PASSWORD, log_level="warning",
    )
    # The same call as `outdial serve`, but for the app and the quieter log level.
    uvicorn.run(create_bench_app(settings), host="127.0.0.1", port=args.port,
                log_level=settings.log_level, access_log=False)


if __name__ == "__main__":
    main()
