"""SQL for customers, agents, access keys and server secrets."""

import datetime as dt
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.db.paging import Page, PageRequest, fetch_page
from outdial.models import AccessKey, Agent, Customer, ServerSecret


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

    async def find_access_key(self, token_hash: str) -> AccessKey | None:
        return await self.session.scalar(select(AccessKey).where(AccessKey.token_hash == token_hash))

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
