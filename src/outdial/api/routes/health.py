"""Liveness that means something: 200 only when the database answers, on a connection of its
own (never queued behind the request pool) and within a second."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from outdial.api.errors import envelope
from outdial.db.engine import PROBE_TIMEOUT_SECONDS

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    try:
        await request.app.state.database.ping()
    except Exception as error:  # noqa: BLE001 - any database failure means "not healthy", never a 500
        problem = str(error) or f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
        return envelope("UNAVAILABLE", "DATABASE_UNAVAILABLE", f"the database does not answer: {problem}",
                        request.state.request_id)
    return JSONResponse({"status": "ok"})
