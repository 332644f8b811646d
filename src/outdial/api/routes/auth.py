"""Login and access keys."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.api.bodies import JsonRulesRoute
from outdial.api.deps import AccessKeyId, Ctx, Paging, open_session, parse_id
from outdial.api.schemas import PageOut, error_responses
from outdial.auth.service import AuthService
from outdial.models import AccessKey
from outdial.schemas import (
    CUSTOMER_ID,
    DETAIL,
    ID,
    NAME,
    TM_CREATE,
    TM_DELETE,
    TM_UPDATE,
    Body,
    NameDetail,
)
from outdial.timestamps import format_timestamp

login_router = APIRouter(tags=["auth"], route_class=JsonRulesRoute)
router = APIRouter(tags=["accesskeys"], route_class=JsonRulesRoute)


TM_EXPIRE = "when it stops working, UTC"
SECRET = "the access key's secret: send it as ?token=, ?accesskey= or a Bearer header"


class LoginBody(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"username": "admin", "password": "change-me-now"}]})

    username: str = Field(description="the agent's username")
    password: str = Field(description="the agent's password")


class LoginOut(BaseModel):
    username: str = Field(description="the username logged in")
    token: str = Field(description="a login token (JWT): send it as ?token= or a Bearer header")


class AccessKeyCreate(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "nightly import", "detail": "cron on crm-1", "expire": 2592000}]})

    name: str = Field("", description=NAME)
    detail: str = Field("", description=DETAIL)
    expire: int = Field(default=365 * 24 * 3600, description="lifetime in seconds")


class AccessKeyOut(BaseModel):
    """An access key, without its secret."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    tm_expire: str = Field(description=TM_EXPIRE)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)

    @classmethod
    def of(cls, key: AccessKey) -> "AccessKeyOut":
        return cls(
            id=key.id, customer_id=key.customer_id, name=key.name, detail=key.detail,
            tm_expire=format_timestamp(key.tm_expire), tm_create=format_timestamp(key.tm_create),
            tm_update=format_timestamp(key.tm_update), tm_delete=format_timestamp(key.tm_delete),
        )


class AccessKeyCreated(BaseModel):
    """The one answer that carries the key's secret."""

    id: uuid.UUID = Field(description=ID)
    customer_id: uuid.UUID = Field(description=CUSTOMER_ID)
    name: str = Field(description=NAME)
    detail: str = Field(description=DETAIL)
    token: str = Field(description=SECRET + "; shown only in this answer")
    tm_expire: str = Field(description=TM_EXPIRE)
    tm_create: str = Field(description=TM_CREATE)
    tm_update: str | None = Field(description=TM_UPDATE)
    tm_delete: str | None = Field(description=TM_DELETE)


@login_router.post("/auth/login", responses=error_responses(400, 401, 413))
async def login(
    body: LoginBody, request: Request, session: Annotated[AsyncSession, Depends(open_session)]
) -> LoginOut:
    """Exchange a username and password for a login token (a JWT); send it as ?token= or a Bearer header."""
    state = request.app.state
    token = await AuthService(session, state.clock).login(
        body.username, body.password, state.signing_secret, state.settings.token_lifetime_seconds
    )
    return LoginOut(username=body.username, token=token)


@router.post("/accesskeys")
async def create_access_key(body: AccessKeyCreate, ctx: Ctx) -> AccessKeyCreated:
    """Create an access key: a long-lived credential for scripts; its secret is shown only here."""
    key, secret = await AuthService(ctx.session, ctx.clock).create_access_key(
        ctx.principal, body.name, body.detail, body.expire
    )
    await ctx.commit()
    return AccessKeyCreated(**{**AccessKeyOut.of(key).model_dump(), "token": secret})


@router.get("/accesskeys")
async def list_access_keys(ctx: Ctx, paging: Paging) -> PageOut[AccessKeyOut]:
    """Your live access keys, newest first (without their secrets)."""
    page = await AuthService(ctx.session, ctx.clock).list_access_keys(ctx.principal, paging)
    return PageOut.of(page, AccessKeyOut.of)


@router.get("/accesskeys/{key_id}")
async def get_access_key(key_id: AccessKeyId, ctx: Ctx) -> AccessKeyOut:
    """One access key, deleted ones too (without its secret)."""
    key = await AuthService(ctx.session, ctx.clock).get_access_key(ctx.principal, parse_id(key_id))
    return AccessKeyOut.of(key)


@router.put("/accesskeys/{key_id}")
async def update_access_key(key_id: AccessKeyId, body: NameDetail, ctx: Ctx) -> AccessKeyOut:
    """Rename an access key: name and detail are replaced (left out: empty)."""
    key = await AuthService(ctx.session, ctx.clock).update_access_key(
        ctx.principal, parse_id(key_id), body.name, body.detail
    )
    await ctx.commit()
    return AccessKeyOut.of(key)


@router.delete("/accesskeys/{key_id}")
async def delete_access_key(key_id: AccessKeyId, ctx: Ctx) -> AccessKeyOut:
    """Delete an access key; it stops working at once."""
    key = await AuthService(ctx.session, ctx.clock).delete_access_key(ctx.principal, parse_id(key_id))
    await ctx.commit()
    return AccessKeyOut.of(key)
