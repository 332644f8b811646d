"""Login and access keys."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import Ctx, Paging, open_session, parse_id
from outdial.api.schemas import PageOut, error_responses
from outdial.auth.service import AuthService
from outdial.models import AccessKey
from outdial.schemas import Body, NameDetail
from outdial.timestamps import format_timestamp

login_router = APIRouter(tags=["auth"], route_class=JsonRulesRoute)
router = APIRouter(tags=["accesskeys"], route_class=JsonRulesRoute)


class LoginBody(Body):
    username: str
    password: str


class LoginOut(BaseModel):
    username: str
    token: str


class AccessKeyCreate(Body):
    name: str = ""
    detail: str = ""
    expire: int = Field(default=365 * 24 * 3600, description="lifetime in seconds")


class AccessKeyOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    detail: str
    tm_expire: str
    tm_create: str
    tm_update: str | None
    tm_delete: str | None

    @classmethod
    def of(cls, key: AccessKey) -> "AccessKeyOut":
        return cls(
            id=key.id, customer_id=key.customer_id, name=key.name, detail=key.detail,
            tm_expire=format_timestamp(key.tm_expire), tm_create=format_timestamp(key.tm_create),
            tm_update=format_timestamp(key.tm_update), tm_delete=format_timestamp(key.tm_delete),
        )


class AccessKeyCreated(BaseModel):
    """The one answer that carries the key's secret."""

    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    detail: str
    token: str
    tm_expire: str
    tm_create: str
    tm_update: str | None
    tm_delete: str | None


@login_router.post("/auth/login", responses=error_responses(400, 401, 413))
async def login(
    body: LoginBody, request: Request, session: Annotated[AsyncSession, Depends(open_session)]
) -> LoginOut:
    state = request.app.state
    token = await AuthService(session, state.clock).login(
        body.username, body.password, state.signing_secret, state.settings.token_lifetime_seconds
    )
    return LoginOut(username=body.username, token=token)


@router.post("/accesskeys")
async def create_access_key(body: AccessKeyCreate, ctx: Ctx) -> AccessKeyCreated:
    key, secret = await AuthService(ctx.session, ctx.clock).create_access_key(
        ctx.principal, body.name, body.detail, body.expire
    )
    await ctx.commit()
    return AccessKeyCreated(**{**AccessKeyOut.of(key).model_dump(), "token": secret})


@router.get("/accesskeys")
async def list_access_keys(ctx: Ctx, paging: Paging) -> PageOut[AccessKeyOut]:
    page = await AuthService(ctx.session, ctx.clock).list_access_keys(ctx.principal, paging)
    return PageOut.of(page, AccessKeyOut.of)


@router.get("/accesskeys/{key_id}")
async def get_access_key(key_id: str, ctx: Ctx) -> AccessKeyOut:
    key = await AuthService(ctx.session, ctx.clock).get_access_key(ctx.principal, parse_id(key_id))
    return AccessKeyOut.of(key)


@router.put("/accesskeys/{key_id}")
async def update_access_key(key_id: str, body: NameDetail, ctx: Ctx) -> AccessKeyOut:
    key = await AuthService(ctx.session, ctx.clock).update_access_key(
        ctx.principal, parse_id(key_id), body.name, body.detail
    )
    await ctx.commit()
    return AccessKeyOut.of(key)


@router.delete("/accesskeys/{key_id}")
async def delete_access_key(key_id: str, ctx: Ctx) -> AccessKeyOut:
    key = await AuthService(ctx.session, ctx.clock).delete_access_key(ctx.principal, parse_id(key_id))
    await ctx.commit()
    return AccessKeyOut.of(key)
