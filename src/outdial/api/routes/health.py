"""Liveness that means something: 200 only when the database answers."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from outdial.api.errors import envelope

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    try:
        await request.app.state.database.ping()
    except Exception as error:  # any database failure means "not healthy", never a 500
        return envelope("UNAVAILABLE", "DATABASE_UNAVAILABLE", f"the database does not answer: {error}",
                        request.state.request_id)
    return JSONResponse({"status": "ok"})
