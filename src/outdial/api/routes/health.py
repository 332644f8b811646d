"""Liveness that means something: 200 only when the database answers, on a connection of its
own (never queued behind the request pool) and within a second."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from outdial.api.errors import envelope
from outdial.api.schemas import error_responses
from outdial.db.engine import PROBE_TIMEOUT_SECONDS

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str = Field(description="ok", examples=["ok"])


@router.get("/health", response_model=HealthOut, responses=error_responses(503))
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 in the error envelope when it does not; no credential."""
    try:
        await request.app.state.database.ping()
    except Exception as error:  # noqa: BLE001 - any database failure means "not healthy", never a 500
        problem = str(error) or f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
        return envelope("UNAVAILABLE", "DATABASE_UNAVAILABLE", f"the database does not answer: {problem}",
                        request.state.request_id)
    return JSONResponse({"status": "ok"})
