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
from outdial.auth.cache import Credential, CredentialCache
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
from outdial.validation import text_problem

JWT_SECRET_NAME = "jwt_signing_key"
MAX_ACCESS_KEY_LIFETIME_S = 100 * 365 * 24 * 3600
_PG_BOOTSTRAP_LOCK = 7_305_112_602


class Permission(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    AGENT = "agent"


# The permissions the API's calls need.
WRITERS = (Permission.ADMIN.value, Permission.MANAGER.value)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the customer it acts for and with what permission."""

    customer_id: uuid.UUID
    permission: Permission
    agent_id: uuid.UUID | None = None
    access_key_id: uuid.UUID | None = None

    def require_manager(self) -> None:
        if self.permission not in WRITERS:
            raise PermissionDenied("this call needs the admin or manager permission")


def confirm(
    credential: Credential, permission: str | None, cache: CredentialCache | None = None,
    token: str = "",
) -> Principal:
    """The caller a credential is, given its live permission (None: it or its agent is deleted)."""
    if permission is None:
        if cache is not None:
            cache.forget(token)
        raise Unauthenticated(_refusal(credential))
    return Principal(credential.customer_id, Permission(permission), agent_id=credential.agent_id,
                     access_key_id=credential.access_key_id)


# One answer whatever the reason: a refused token tells nothing of its agent.
TOKEN_REFUSED = ("the token is invalid or has expired (or its agent was deleted, or changed "
                 "password since): log in again")


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidArgument("password", "must be at least 8 characters long")
    if problem := text_problem("password", password):  # NUL, a lone surrogate, too long
        raise InvalidArgument("password", problem)


def known_credential(cache: CredentialCache, token: str, now: dt.datetime) -> Credential | None:
    """The credential this process has proven the token to be, None if not known; refused
    once expired."""
    credential = cache.get(token)
    if credential is not None and credential.expired(now):
        cache.forget(token)
        raise Unauthenticated(_refusal(credential))
    return credential


def _refusal(credential: Credential) -> str:
    if credential.access_key_id is None:
        return TOKEN_REFUSED
    return "the access key is invalid, expired or deleted, or its agent has been deleted"


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
        return await self.server_secret(JWT_SECRET_NAME, configured)

    async def server_secret(self, name: str, configured: str | None) -> str:
        """A secret of the server: the configured one, else the one kept in the database under
        `name` (made on first start), so that every process sharing the database agrees."""
        if configured:
            return configured
        await self._serialize_bootstrap()
        stored = await self.repo.get_secret(name)
        if stored is None:
            stored = secrets.token_urlsafe(48)
            self.repo.add(ServerSecret(name=name, value=stored))
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
        _check_password(password)
        if await self.repo.find_agent(username) is not None:
            raise AlreadyExists(f"username {username!r} is taken", "AGENT_ALREADY_EXISTS")
        if await self.repo.username_of_deleted_agent(username):
            raise AlreadyExists(
                f"username {username!r} belonged to an agent that was deleted; a deleted "
                "agent keeps its name: choose another",
                "AGENT_ALREADY_EXISTS")
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

    async def change_password(self, username: str, password: str) -> Agent:
        """Set an agent's password; every login token issued before is refused from now on
        (its access keys, credentials of their own, keep working)."""
        _check_password(password)
        agent = await self.repo.find_agent(username)
        if agent is None:
            raise NotFound(f"no agent is named {username!r}", "AGENT_NOT_FOUND")
        agent.password_hash = credentials.hash_password(password)
        # Raised in the UPDATE itself: two changes at once both count.
        agent.token_generation = Agent.token_generation + 1  # type: ignore[assignment]
        agent.tm_update = self.clock.now()
        await self.repo.flush()
        return agent

    # -- credentials -------------------------------------------------------------------------

    async def login(self, username: str, password: str, secret: str, lifetime_s: int) -> str:
        agent = await self.repo.find_agent(username)
        if not credentials.verify_password(agent.password_hash if agent else None, password):
            raise Unauthenticated("wrong username or password")
        assert agent is not None
        return credentials.issue_login_token(
            agent.id, agent.token_generation, secret, self.clock.now(), lifetime_s)

    async def authenticate(
        self, token: str, secret: str, cache: CredentialCache | None = None
    ) -> Principal:
        """Resolve a login token or an access key; anything not currently valid is refused."""
        credential, permission = await self.identify(token, secret, cache)
        if permission is None:
            permission = await self.repo.permission_of(credential)
        return confirm(credential, permission, cache, token)

    async def authenticate_access_key(self, token: str) -> Principal:
        """A live key acts with its agent's permission of the moment, so deleting the agent (or
        lowering its permission) reaches its keys at once. Keys older than key owners act as
        their customer's admin."""
        return await self.authenticate(token, secret="")

    async def identify(
        self, token: str, secret: str, cache: CredentialCache | None = None
    ) -> tuple[Credential, str | None]:
        """The credential the token is, from `cache` or proven now (and then kept there), with
        its live permission when proving it read that (else None: the caller reads it, see
        repository.live_permission). An expired, unknown or deleted one is refused."""
        now = self.clock.now()
        if cache is not None and (credential := known_credential(cache, token, now)) is not None:
            return credential, None
        if credentials.looks_like_jwt(token):
            claims = credentials.read_login_claims(token, secret, now)
            agent = (await self.repo.live_agent(claims.agent_id, claims.generation)
                     if claims else None)
            if claims is None or agent is None:
                raise Unauthenticated(TOKEN_REFUSED)
            credential = Credential(agent.customer_id, claims.agent_id, None,
                                    token_exp=claims.exp, token_generation=claims.generation)
            permission = agent.permission
        else:
            key = await self.repo.live_access_key(credentials.access_key_digest(token))
            if key is None or key.tm_expire <= now:
                raise Unauthenticated("the access key is invalid, expired or deleted")
            credential = Credential(key.customer_id, key.agent_id, key.id, key_expire=key.tm_expire)
            permission = key.permission
        if cache is not None:
            cache.put(token, credential)
        return credential, permission

    # -- access keys -------------------------------------------------------------------------

    async def create_access_key(
        self, principal: Principal, name: str, detail: str, expire_s: int
    ) -> tuple[AccessKey, str]:
        """Create a key; the secret is returned this once and only its digest is kept."""
        if not 1 <= expire_s <= MAX_ACCESS_KEY_LIFETIME_S:
            raise InvalidArgument("expire", f"must be between 1 and {MAX_ACCESS_KEY_LIFETIME_S} seconds")
        if principal.agent_id is None:
            # A key from before keys had an owner acts as its customer's admin whatever any
            # agent's permission: the keys it made would too, one generation after another.
            raise PermissionDenied(
                "this access key belongs to no agent (it is older than keys' owners), so it "
                "cannot make keys: log in (POST /auth/login) and make the key with that token",
                "ACCESSKEY_WITHOUT_OWNER")
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
