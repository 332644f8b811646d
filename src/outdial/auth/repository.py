"""SQL for customers, agents, access keys and server secrets."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, ScalarSelect, and_, bindparam, case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.cache import Credential
from outdial.db.driver import DriverConnection
from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import AccessKey, Agent, Customer, ServerSecret

_KEYS, _AGENTS = AccessKey.__table__, Agent.__table__
# An access key's live agent: one of the key's customer that is not deleted.
_KEY_AGENT = _KEYS.outerjoin(_AGENTS, and_(
    _AGENTS.c.id == _KEYS.c.agent_id, _AGENTS.c.customer_id == _KEYS.c.customer_id,
    _AGENTS.c.tm_delete.is_(None),
))
# What a live key may do: its agent's permission, or an admin's for keys older than key owners;
# NULL when its agent is gone.
_KEY_PERMISSION = case((_KEYS.c.agent_id.is_(None), literal("admin")), else_=_AGENTS.c.permission)


@dataclass(frozen=True)
class CallerCheck:
    """A credential's permission of the moment, NULL once it (or its agent) is deleted: a
    scalar subquery built once (one index look-up by primary key), so that a route can read it
    in its own statement, and the parameters it binds. Expiry is not in it: it never changes,
    and is checked against the clock."""

    permission: ScalarSelect[str | None]
    parameters: dict[str, Any]


_TOKEN_PERMISSION = (
    select(_AGENTS.c.permission)
    .where(_AGENTS.c.id == bindparam("caller_agent_id"),
           _AGENTS.c.customer_id == bindparam("caller_customer_id"), _AGENTS.c.tm_delete.is_(None),
           _AGENTS.c.token_generation == bindparam("caller_token_generation"))
    .scalar_subquery()
)
_ACCESS_KEY_PERMISSION = (
    select(_KEY_PERMISSION).select_from(_KEY_AGENT)
    .where(_KEYS.c.id == bindparam("caller_key_id"), _KEYS.c.tm_delete.is_(None))
    .scalar_subquery()
)
_CHECKS = {expression: select(expression.label("permission"))
           for expression in (_TOKEN_PERMISSION, _ACCESS_KEY_PERMISSION)}


def live_permission(credential: Credential) -> CallerCheck:
    if credential.access_key_id is None:
        return CallerCheck(_TOKEN_PERMISSION, {
            "caller_agent_id": credential.agent_id, "caller_customer_id": credential.customer_id,
            "caller_token_generation": credential.token_generation})
    return CallerCheck(_ACCESS_KEY_PERMISSION, {"caller_key_id": credential.access_key_id})


async def permission_now(connection: DriverConnection, credential: Credential) -> str | None:
    """permission_of on a hot route's driver connection."""
    check = live_permission(credential)
    return (await connection.fetch_one(_CHECKS[check.permission], check.parameters)).permission


class AuthRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_agents(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Agent)) or 0

    async def get_customer(self, customer_id: uuid.UUID) -> Customer | None:
        customer = await self.session.get(Customer, customer_id)
        return customer if customer is not None and customer.tm_delete is None else None

    async def get_agent(self, agent_id: uuid.UUID) -> Agent | None:
        return await self.session.get(Agent, agent_id)

    async def find_agent(self, username: str) -> Agent | None:
        return await self.session.scalar(
            select(Agent).where(Agent.username == username, Agent.tm_delete.is_(None))
        )

    async def username_of_deleted_agent(self, username: str) -> bool:
        return await self.session.scalar(
            select(Agent.id).where(Agent.username == username, Agent.tm_delete.is_not(None))
        ) is not None

    async def find_access_key(self, token_hash: str) -> AccessKey | None:
        return await self.session.scalar(select(AccessKey).where(AccessKey.token_hash == token_hash))

    async def live_agent(self, agent_id: uuid.UUID, token_generation: int) -> Row | None:
        """A login token's agent, unless deleted or its password changed since the token was
        issued: (customer_id, permission)."""
        return (await self.session.execute(
            select(_AGENTS.c.customer_id, _AGENTS.c.permission)
            .where(_AGENTS.c.id == agent_id, _AGENTS.c.tm_delete.is_(None),
                   _AGENTS.c.token_generation == token_generation)
        )).one_or_none()

    async def live_access_key(self, token_hash: str) -> Row | None:
        """The key of this digest, unless deleted: (id, customer_id, agent_id, tm_expire,
        permission), the permission NULL when its agent is gone."""
        return (await self.session.execute(
            select(_KEYS.c.id, _KEYS.c.customer_id, _KEYS.c.agent_id, _KEYS.c.tm_expire,
                   _KEY_PERMISSION.label("permission"))
            .select_from(_KEY_AGENT)
            .where(_KEYS.c.token_hash == token_hash, _KEYS.c.tm_delete.is_(None))
        )).one_or_none()

    async def permission_of(self, credential: Credential) -> str | None:
        check = live_permission(credential)
        connection = await self.session.connection()
        return (await connection.execute(_CHECKS[check.permission], check.parameters)).scalar()

    async def get_access_key(self, customer_id: uuid.UUID, key_id: uuid.UUID) -> AccessKey | None:
        return await self.session.scalar(
            select(AccessKey).where(AccessKey.id == key_id, AccessKey.customer_id == customer_id)
        )

    async def list_access_keys(self, customer_id: uuid.UUID, page: PageRequest) -> Page[AccessKey]:
        query = select(AccessKey).where(
            AccessKey.customer_id == customer_id, AccessKey.tm_delete.is_(None)
        )
        return await fetch_page(self.session, query, AccessKey, page)

    async def delete_access_keys_of(self, agent_id: uuid.UUID, now: dt.datetime) -> None:
        await self.session.execute(
            update(AccessKey)
            .where(AccessKey.agent_id == agent_id, AccessKey.tm_delete.is_(None))
            .values(tm_delete=now, tm_update=now)
        )

    async def get_secret(self, name: str) -> str | None:
        secret = await self.session.get(ServerSecret, name)
        return secret.value if secret else None

    def add(self, row: Customer | Agent | AccessKey | ServerSecret) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()
