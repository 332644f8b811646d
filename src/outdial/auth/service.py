"""Who is calling and what they may do: login, credentials, access keys, tenants and bootstrap."""

import datetime as dt
import enum
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth import credentials
from outdial.auth.repository import AuthRepository
from outdial.clock import Clock
from outdial.db.paging import Page, PageRequest
from outdial.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from outdial.models import AccessKey, Agent, Customer, ServerSecret

JWT_SECRET_NAME = "jwt_signing_key"
MAX_ACCESS_KEY_LIFETIME_S = 100 * 365 * 24 * 3600
_PG_BOOTSTRAP_LOCK = 7_305_112_602


class Permission(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the customer it acts for and with what permission."""

    customer_id: uuid.UUID
    permission: Permission
    agent_id: uuid.UUID | None = None
    access_key_id: uuid.UUID | None = None

    def require_manager(self) -> None:
        if self.permission not in (Permission.ADMIN, Permission.MANAGER):
            raise PermissionDenied("this call needs the admin or manager permission")


@dataclass(frozen=True)
class Bootstrap:
    username: str
    generated_password: str | None  # set only when the password was made up here


class AuthService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = AuthRepository(session)
        self.session = session
        self.clock = clock

    # -- server start ------------------------------------------------------------------------

    async def signing_secret(self, configured: str | None) -> str:
        """The configured secret, else the one kept in the database (made on first start)."""
        if configured:
            return configured
        await self._serialize_bootstrap()
        stored = await self.repo.get_secret(JWT_SECRET_NAME)
        if stored is None:
            stored = secrets.token_urlsafe(48)
            self.repo.add(ServerSecret(name=JWT_SECRET_NAME, value=stored))
            await self.repo.flush()
        return stored

    async def bootstrap_admin(self, username: str | None, password: str | None) -> Bootstrap | None:
        """On a database with no user, create one customer and its admin."""
        await self._serialize_bootstrap()
        if await self.repo.count_agents():
            return None
        customer = await self.create_customer("default")
        username = username or "admin"
        generated = None if password else credentials.new_random_password()
        await self.create_agent(customer.id, username, password or generated or "", Permission.ADMIN)
        return Bootstrap(username, generated)

    async def _serialize_bootstrap(self) -> None:
        if self.session.bind.dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_BOOTSTRAP_LOCK}
            )

    # -- tenants and users -------------------------------------------------------------------

    async def create_customer(self, name: str, detail: str = "") -> Customer:
        if not name.strip():
            raise InvalidArgument("name", "must not be empty")
        customer = Customer(id=uuid.uuid4(), name=name, detail=detail, tm_create=self.clock.now())
        self.repo.add(customer)
        await self.repo.flush()
        return customer

    async def create_agent(
        self, customer_id: uuid.UUID, username: str, password: str, permission: Permission
    ) -> Agent:
        if await self.repo.get_customer(customer_id) is None:
            raise NotFound(f"customer {customer_id} does not exist", "CUSTOMER_NOT_FOUND")
        if not username.strip():
            raise InvalidArgument("username", "must not be empty")
        if len(password) < 8:
            raise InvalidArgument("password", "must be at least 8 characters long")
        if await self.repo.find_agent(username) is not None:
            raise AlreadyExists(f"username {username!r} is taken", "AGENT_ALREADY_EXISTS")
        agent = Agent(
            id=uuid.uuid4(), customer_id=customer_id, username=username,
            password_hash=credentials.hash_password(password), permission=permission.value,
            tm_create=self.clock.now(),
        )
        self.repo.add(agent)
        try:
            await self.repo.flush()
        except IntegrityError:
            raise AlreadyExists(f"username {username!r} is taken", "AGENT_ALREADY_EXISTS") from None
        return agent

    async def delete_agent(self, username: str) -> Agent:
        """Soft-delete an agent and its access keys: its login tokens and keys are refused from
        now on."""
        agent = await self.repo.find_agent(username)
        if agent is None:
            raise NotFound(f"no agent is named {username!r}", "AGENT_NOT_FOUND")
        agent.tm_delete = agent.tm_update = self.clock.now()
        # Authentication refuses them anyway; deleting them too keeps the key list truthful.
        await self.repo.delete_access_keys_of(agent.id, agent.tm_delete)
        return agent

    # -- credentials -------------------------------------------------------------------------

    async def login(self, username: str, password: str, secret: str, lifetime_s: int) -> str:
        agent = await self.repo.find_agent(username)
        if not credentials.verify_password(agent.password_hash if agent else None, password):
            raise Unauthenticated("wrong username or password")
        assert agent is not None
        return credentials.issue_login_token(agent.id, secret, self.clock.now(), lifetime_s)

    async def authenticate(self, token: str, secret: str) -> Principal:
        """Resolve a login token or an access key; anything not currently valid is refused."""
        if credentials.looks_like_jwt(token):
            agent_id = credentials.read_login_token(token, secret, self.clock.now())
            agent = await self.repo.get_agent(agent_id) if agent_id else None
            if agent is None or agent.tm_delete is not None:
                raise Unauthenticated("the token is invalid or has expired")
            return Principal(agent.customer_id, Permission(agent.permission), agent_id=agent.id)
        return await self.authenticate_access_key(token)

    async def authenticate_access_key(self, token: str) -> Principal:
        """A live key acts with its agent's permission of the moment, so deleting the agent (or
        lowering its permission) reaches its keys at once. Keys older than key owners act as
        their customer's admin."""
        key = await self.repo.find_access_key(credentials.access_key_digest(token))
        if key is None or key.tm_delete is not None or key.tm_expire <= self.clock.now():
            raise Unauthenticated("the access key is invalid, expired or deleted")
        if key.agent_id is None:
            return Principal(key.customer_id, Permission.ADMIN, access_key_id=key.id)
        agent = await self.repo.get_agent(key.agent_id)
        if agent is None or agent.tm_delete is not None or agent.customer_id != key.customer_id:
            raise Unauthenticated("the access key's agent has been deleted")
        return Principal(key.customer_id, Permission(agent.permission), agent_id=agent.id,
                         access_key_id=key.id)

    # -- access keys -------------------------------------------------------------------------

    async def create_access_key(
        self, principal: Principal, name: str, detail: str, expire_s: int
    ) -> tuple[AccessKey, str]:
        """Create a key; the secret is returned this once and only its digest is kept."""
        if not 1 <= expire_s <= MAX_ACCESS_KEY_LIFETIME_S:
            raise InvalidArgument("expire", f"must be between 1 and {MAX_ACCESS_KEY_LIFETIME_S} seconds")
        now = self.clock.now()
        secret = credentials.new_access_key_secret()
        key = AccessKey(
            id=uuid.uuid4(), customer_id=principal.customer_id, agent_id=principal.agent_id,
            name=name, detail=detail,
            token_hash=credentials.access_key_digest(secret),
            tm_expire=now + dt.timedelta(seconds=expire_s), tm_create=now,
        )
        self.repo.add(key)
        await self.repo.flush()
        return key, secret

    async def list_access_keys(self, principal: Principal, page: PageRequest) -> Page[AccessKey]:
        return await self.repo.list_access_keys(principal.customer_id, page)

    async def get_access_key(self, principal: Principal, key_id: uuid.UUID) -> AccessKey:
        key = await self.repo.get_access_key(principal.customer_id, key_id)
        if key is None:
            raise NotFound(f"access key {key_id} not found", "ACCESSKEY_NOT_FOUND")
        return key

    async def update_access_key(
        self, principal: Principal, key_id: uuid.UUID, name: str, detail: str
    ) -> AccessKey:
        key = await self.get_access_key(principal, key_id)
        key.name, key.detail, key.tm_update = name, detail, self.clock.now()
        return key

    async def delete_access_key(self, principal: Principal, key_id: uuid.UUID) -> AccessKey:
        key = await self.get_access_key(principal, key_id)
        if key.tm_delete is None:
            key.tm_delete = key.tm_update = self.clock.now()
        return key
