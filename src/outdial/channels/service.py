"""Rules of channels: typed settings, write-only passwords, tenancy, deletes, and checks."""

import asyncio
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from outdial.auth.service import Principal
from outdial.channels.dialing import build_channel_dialer, channel_config, for_a_check
from outdial.channels.repository import ChannelRepository
from outdial.channels.schemas import (
    CHANNEL_TYPES,
    ChannelCheckOut,
    ChannelCreate,
    ChannelSettings,
    ChannelUpdate,
    parse_settings,
)
from outdial.channels.secrets import SecretBox, SecretUnreadable
from outdial.clock import Clock
from outdial.db.paging import Page, PageRequest
from outdial.dialers.base import CheckResult
from outdial.errors import FailedPrecondition, InvalidArgument, NotFound
from outdial.events import catalogue
from outdial.events.outbox import emit
from outdial.models import Channel
from outdial.models.base import NIL_UUID

CHECK_TIMEOUT_S = 45.0  # a whole check: connect, TLS, authenticate
# Which channel types may fill an outplan's channel slots: a simulated channel stands in for
# either, so that a demo is an explicit choice.
SLOT_TYPES = {"sip_channel_id": ("sip", "simulated"), "email_channel_id": ("smtp", "simulated")}


def _stored(settings: ChannelSettings) -> dict[str, object]:
    """Settings as kept in the row: every key but the password, which is kept encrypted."""
    return settings.model_dump(by_alias=True, exclude={"password"})


async def referenced_channel(
    session: AsyncSession, principal: Principal, field: str, channel_id: uuid.UUID | None
) -> uuid.UUID:
    """An outplan's channel reference checked: nil, or a live channel of the caller whose type
    fits the slot (`field`)."""
    if channel_id is None or channel_id == NIL_UUID:
        return NIL_UUID
    # Locked so that the channel cannot be deleted while an outplan starts naming it.
    channel = await ChannelRepository(session).get_channel(
        principal.customer_id, channel_id, for_update=True
    )
    if channel is None:
        raise InvalidArgument(field, f"channel {channel_id} does not exist")
    if channel.tm_delete is not None:
        raise InvalidArgument(field, f"channel {channel_id} is deleted")
    accepted: Sequence[str] = SLOT_TYPES[field]
    if channel.type not in accepted:
        raise InvalidArgument(
            field, f"channel {channel_id} is a {channel.type} channel; this slot takes "
            f"{' or '.join(accepted)} channels",
        )
    return channel.id


class ChannelService:
    def __init__(self, session: AsyncSession, clock: Clock, secrets: SecretBox) -> None:
        self.repo = ChannelRepository(session)
        self.session = session
        self.clock = clock
        self.secrets = secrets

    async def create_channel(self, principal: Principal, body: ChannelCreate) -> Channel:
        if body.type not in CHANNEL_TYPES:
            raise InvalidArgument(
                "type", f"{body.type!r} is not a channel type (one of: {', '.join(CHANNEL_TYPES)})"
            )
        settings = parse_settings(body.type, body.settings)
        password = getattr(settings, "password", None)
        channel = Channel(
            id=uuid.uuid4(), customer_id=principal.customer_id, name=body.name,
            detail=body.detail, type=body.type, settings=_stored(settings),
            password_encrypted=self.secrets.encrypt(password) if password else None,
            revision=1, tm_create=self.clock.now(),
        )
        self.repo.add(channel)
        await self.repo.flush()
        return channel

    async def list_channels(self, principal: Principal, page: PageRequest) -> Page[Channel]:
        return await self.repo.list_channels(principal.customer_id, page)

    async def get_channel(
        self, principal: Principal, channel_id: uuid.UUID, *, for_update: bool = False
    ) -> Channel:
        """The channel, deleted or not; another customer's is as missing as a made-up id."""
        channel = await self.repo.get_channel(
            principal.customer_id, channel_id, for_update=for_update
        )
        if channel is None:
            raise NotFound(f"channel {channel_id} not found", "CHANNEL_NOT_FOUND")
        return channel

    async def live_channel(self, principal: Principal, channel_id: uuid.UUID) -> Channel:
        channel = await self.get_channel(principal, channel_id, for_update=True)
        if channel.tm_delete is not None:
            raise FailedPrecondition(f"channel {channel_id} is deleted", "CHANNEL_DELETED")
        return channel

    async def update_channel(
        self, principal: Principal, channel_id: uuid.UUID, body: ChannelUpdate
    ) -> Channel:
        channel = await self.live_channel(principal, channel_id)
        if body.type is not None and body.type != channel.type:
            raise InvalidArgument(
                "type", f"a {channel.type} channel stays one; create a {body.type} channel instead"
            )
        settings = parse_settings(channel.type, body.settings)
        password = getattr(settings, "password", None)
        if password is not None:  # "" removes the password; null or left out keeps it
            channel.password_encrypted = self.secrets.encrypt(password) if password else None
        channel.name, channel.detail = body.name, body.detail
        channel.settings = _stored(settings)
        channel.revision += 1
        channel.tm_update = self.clock.now()
        return channel

    async def delete_channel(self, principal: Principal, channel_id: uuid.UUID) -> Channel:
        channel = await self.get_channel(principal, channel_id, for_update=True)
        if channel.tm_delete is not None:
            return channel
        if await self.repo.channel_in_use(channel.id):
            raise FailedPrecondition(
                f"channel {channel_id} is used by a running campaign; stop the campaign first",
                "CHANNEL_IN_USE",
            )
        channel.tm_delete = channel.tm_update = self.clock.now()
        channel.revision += 1
        return channel

    async def check_channel(self, principal: Principal, channel_id: uuid.UUID) -> CheckResult:
        """Try the channel now, then add its channel_check_done event to a new transaction
        (for the caller to commit): no row is held while the peer is talked to."""
        channel = await self.get_channel(principal, channel_id)
        if channel.tm_delete is not None:
            raise FailedPrecondition(f"channel {channel_id} is deleted", "CHANNEL_DELETED")
        customer_id = channel.customer_id  # the row is expired once the check rolls back
        result = await self._try(channel)
        payload = catalogue.channel_check(channel_id, ChannelCheckOut(ok=result.ok, detail=result.detail))
        await emit(self.session, catalogue.CHANNEL_CHECK_DONE, customer_id, payload,
                   now=self.clock.now())
        return result

    async def _try(self, channel: Channel) -> CheckResult:
        try:
            config = channel_config(channel, self.secrets)
        except SecretUnreadable as error:
            return CheckResult(False, str(error))
        await self.session.rollback()  # nothing to write: end the transaction before the I/O
        dialer = build_channel_dialer(for_a_check(config), self.clock)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                return await dialer.check()
        except TimeoutError:
            return CheckResult(False, f"the channel's peer did not answer within {CHECK_TIMEOUT_S:g} s")
        finally:
            await dialer.aclose()
