"""Helpers that build outplans, outdials, campaigns and campaigncalls for the campaign tests."""

import uuid
from typing import Any

from outdial.clock import FakeClock
from outdial.models import Campaigncall
from tests.conftest import Api

NIL = "00000000-0000-0000-0000-000000000000"


async def new_outplan(api: Api, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1.0/outplans", json={"name": "plan", **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def new_outdial(api: Api, name: str = "list") -> dict[str, Any]:
    response = await api.post("/v1.0/outdials", json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()


async def new_target(api: Api, outdial_id: str, number: str = "+15559876543") -> dict[str, Any]:
    response = await api.post(f"/v1.0/outdials/{outdial_id}/targets",
                              json={"destination_0": {"type": "tel", "target": number}})
    assert response.status_code == 200, response.text
    return response.json()


async def new_campaign(
    api: Api, outplan: dict[str, Any] | None = None, outdial: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    outplan = outplan or await new_outplan(api)
    outdial = outdial or await new_outdial(api)
    response = await api.post("/v1.0/campaigns", json={
        "name": "campaign", "outplan_id": outplan["id"], "outdial_id": outdial["id"], **fields})
    assert response.status_code == 200, response.text
    return response.json()


async def insert_campaigncall(
    app: Any, clock: FakeClock, campaign: dict[str, Any], target: dict[str, Any],
    status: str = "dialing", **fields: Any,
) -> str:
    """A campaigncall row as the engine would write it, straight into the database."""
    call_id = uuid.uuid4()
    async with app.state.database.transaction() as session:
        session.add(Campaigncall(
            id=call_id, customer_id=uuid.UUID(campaign["customer_id"]),
            campaign_id=uuid.UUID(campaign["id"]), outplan_id=uuid.UUID(campaign["outplan_id"]),
            outdial_id=uuid.UUID(campaign["outdial_id"]), outdial_target_id=uuid.UUID(target["id"]),
            status=status, result="" if status != "done" else "fail",
            source=None, destination=target["destination_0"], destination_index=0, try_count=1,
            tm_create=clock.now(), tm_update=clock.now(),
            tm_end=clock.now() if status == "done" else None, **fields,
        ))
    return str(call_id)


async def finish_campaigncall(app: Any, clock: FakeClock, call_id: str) -> None:
    """End an attempt as the engine would: done, with a result and an outcome."""
    async with app.state.database.transaction() as session:
        call = await session.get(Campaigncall, uuid.UUID(call_id))
        assert call is not None
        call.status, call.result, call.outcome = "done", "fail", "busy"
        call.tm_end = call.tm_update = clock.now()
