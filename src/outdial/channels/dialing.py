"""From a channel row to the dialer that serves it, and each engine's cache of those dialers.

An engine builds one dialer per channel on first use and keeps it (an SMTP pool, a SIP stack)
until the channel changes: each attempt is claimed with the channel's `revision`, and a newer
revision replaces the dialer; the old one is closed once its last attempt has ended. A SIP
dialer bound to a fixed local port waits for its predecessor on that port to close.
"""

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from outdial.channels.schemas import (
    ChannelSettings,
    SimulatedSettings,
    SipSettings,
    SmtpSettings,
    parse_settings,
)
from outdial.channels.secrets import SecretBox, SecretUnreadable
from outdial.clock import Clock
from outdial.db import Database
from outdial.dialers.base import Attempt, CheckResult, Dialer, DialerUnavailable, Outcome
from outdial.dialers.base import OutcomeKind as Kind
from outdial.dialers.email import EmailDialer
from outdial.dialers.simulated import SimulatedDialer, SimulationPlan
from outdial.dialers.sip import SipDialer, SipTrunk
from outdial.errors import InvalidArgument
from outdial.models import Channel
from outdial.settings import Settings

log = logging.getLogger("outdial.channels")

@dataclass(frozen=True)
class ChannelConfig:
    """A channel as a dialer needs it: its checked settings and its password in clear."""

    id: uuid.UUID
    type: str
    revision: int
    settings: ChannelSettings
    password: str | None = field(default=None, repr=False)  # never in a log line


def channel_config(row: Channel, secrets: SecretBox) -> ChannelConfig:
    """Raises SecretUnreadable when the stored password cannot be decrypted."""
    password = None
    if row.password_encrypted is not None:
        password = secrets.decrypt(row.password_encrypted)
    return ChannelConfig(
        row.id, row.type, row.revision, parse_settings(row.type, row.settings), password
    )


class UnavailableDialer(Dialer):
    """A channel that cannot dial: every attempt fails with the reason, and so does a check."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def dial(self, attempt: Attempt) -> Outcome:
        raise DialerUnavailable(self.reason)

    async def check(self) -> CheckResult:
        return CheckResult(False, self.reason)


def build_simulated(config: ChannelConfig, clock: Clock) -> Dialer:
    settings = config.settings
    assert isinstance(settings, SimulatedSettings)
    plan = SimulationPlan(
        weights={
            Kind.ANSWERED: settings.p_answered, Kind.BUSY: settings.p_busy,
            Kind.NO_ANSWER: settings.p_no_answer, Kind.REJECTED: settings.p_rejected,
            Kind.FAILED: settings.p_failed, Kind.UNREACHABLE: settings.p_unreachable,
        },
        ring_ms=(settings.ring_min_ms, settings.ring_max_ms),
        talk_ms=(settings.talk_min_ms, settings.talk_max_ms),
        seed=settings.seed,
    )
    return SimulatedDialer(plan, clock)


def build_email(config: ChannelConfig, clock: Clock) -> Dialer:
    assert isinstance(config.settings, SmtpSettings)
    return EmailDialer(config.settings, config.password)


def sip_trunk(config: ChannelConfig, rtp_ports: tuple[int, int] | None = None) -> SipTrunk:
    """A SIP channel's settings as the SIP dialer takes them."""
    settings = config.settings
    assert isinstance(settings, SipSettings)
    values = settings.model_dump(by_alias=True, exclude={"password", "max_calls",
                                                        "max_calls_per_second"})
    values["password"] = config.password
    values["country_code"] = int(settings.country_code) if settings.country_code else None
    for key in ("username", "realm", "caller_id", "public_host"):
        values[key] = values[key] or None
    if rtp_ports is not None:
        values["rtp_port_min"], values["rtp_port_max"] = rtp_ports
    return SipTrunk.from_settings(values)


def for_a_check(config: ChannelConfig) -> ChannelConfig:
    """The channel as a check talks through it: a SIP trunk's fixed local_port belongs to the
    engines' dialers (their calls and registration hold it), so a check binds a free port of
    its own and announces that one (Via's rport brings the answers back through a NAT)."""
    settings = config.settings
    if isinstance(settings, SipSettings) and settings.local_port:
        own = settings.model_copy(update={"local_port": 0, "public_port": None})
        return dataclasses.replace(config, settings=own)
    return config


def build_sip(config: ChannelConfig, clock: Clock) -> Dialer:
    return SipDialer(sip_trunk(config))


DialerBuilder = Callable[[ChannelConfig, Clock], Dialer]
BUILDERS: dict[str, DialerBuilder] = {
    "simulated": build_simulated, "smtp": build_email, "sip": build_sip,
}


def server_builders(settings: Settings) -> dict[str, DialerBuilder]:
    """The builders of a server: SIP calls take their RTP ports from the server's range."""
    ports = (settings.rtp_port_min, settings.rtp_port_max)
    return {**BUILDERS, "sip": lambda config, clock: SipDialer(
        sip_trunk(config, ports), allow_private_audio=settings.play_allow_private_networks)}


def build_channel_dialer(
    config: ChannelConfig, clock: Clock, builders: dict[str, DialerBuilder] | None = None
) -> Dialer:
    return (builders or BUILDERS)[config.type](config, clock)


@dataclass
class _Held:
    revision: int
    dialer: Dialer
    users: int = 0
    retired: bool = False
    # Set once the dialer has really closed (its port let go): its successor binds then.
    closed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    _closing: "asyncio.Task[None] | None" = None

    def close(self) -> "asyncio.Task[None]":
        """Close the dialer, once: every caller gets the same task (ChannelDialers._close)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def _close(self) -> None:
        try:
            await self.dialer.aclose()
        except Exception:  # whoever waited may be gone (stopped): said here, once
            log.exception("closing the dialer of a replaced channel revision failed")
        finally:
            if not self.closed.done():
                self.closed.set_result(None)


class ChannelDialers:
    """One engine's dialers, one per channel, built on first use and rebuilt on change."""

    def __init__(
        self, database: Database, secrets: SecretBox, clock: Clock,
        builders: dict[str, DialerBuilder] | None = None,
    ) -> None:
        self.database = database
        self.secrets = secrets
        self.clock = clock
        self.builders = builders or BUILDERS
        self._held: dict[uuid.UUID, _Held] = {}
        # Replaced dialers still in use by their attempts, per channel, until they close.
        self._retiring: dict[uuid.UUID, list[_Held]] = {}
        self._lock = asyncio.Lock()  # one build at a time: never two dialers for a channel
        self._closings: set[asyncio.Task[None]] = set()  # dialers closing, for aclose to wait

    @asynccontextmanager
    async def use(self, channel_id: uuid.UUID, revision: int) -> AsyncIterator[Dialer]:
        """The channel's dialer at `revision` or later, held for the length of one attempt."""
        held = self._held.get(channel_id)
        if held is None or held.revision < revision:
            held = await self._rebuild(channel_id, revision)  # comes held for this attempt
        else:
            held.users += 1
        try:
            yield held.dialer
        finally:
            held.users -= 1
            if held.retired and held.users == 0:
                # Not awaited: the attempt's outcome is told now (an un-REGISTER may take the
                # registrar's time); a successor on the same port waits for `held.closed`.
                self._close(held)

    def _close(self, held: _Held) -> "asyncio.Task[None]":
        """Close `held`'s dialer (once) in a task of its own, tracked until done (aclose waits
        for it): nothing can stop it half-way, so the dialer's port is let go, and
        `held.closed` tells a successor when it may bind."""
        task = held.close()
        if not task.done():
            self._closings.add(task)
            task.add_done_callback(self._closings.discard)
        return task

    async def _rebuild(self, channel_id: uuid.UUID, revision: int) -> _Held:
        """The channel's current dialer, held once for the caller (taken under the lock, so
        that no other rebuild can retire and close it before the caller uses it)."""
        async with self._lock:
            held = self._held.get(channel_id)
            if held is not None and held.revision >= revision:
                held.users += 1  # another attempt rebuilt it meanwhile
                return held
            async with self.database.transaction() as session:
                row = await session.get(Channel, channel_id)
            if row is None:
                fresh = _Held(revision, UnavailableDialer(f"channel {channel_id} does not exist"))
            else:
                try:
                    dialer = build_channel_dialer(
                        channel_config(row, self.secrets), self.clock, self.builders
                    )
                except (SecretUnreadable, InvalidArgument, ValueError) as error:
                    # Stored settings this version no longer accepts, or a password the key
                    # cannot read: the channel's attempts fail saying why.
                    dialer = UnavailableDialer(f"channel {channel_id}: {error}")
                fresh = _Held(max(row.revision, revision), dialer)
            fresh.users = 1
            self._held[channel_id] = fresh
            if held is not None:
                held.retired = True
                if held.users > 0:
                    retiring = self._retiring.setdefault(channel_id, [])
                    retiring.append(held)
                    held.closed.add_done_callback(lambda _, h=held: retiring.remove(h))
            # The dialers it replaces until they have closed: the one replaced now (closed
            # below if idle, which takes a while for a trunk it un-registers from) and those
            # whose calls are still in progress (whichever edit replaced them, the last or one
            # before). The new dialer may need what they hold.
            replaced = list(self._retiring.get(channel_id, ()))
            if held is not None and held.users == 0:
                replaced.append(held)
            for predecessor in replaced:
                fresh.dialer.follow(predecessor.dialer, predecessor.closed)
        if held is not None and held.users == 0:
            # Not awaited: nothing can stop it half-way, and the new dialer follows its
            # `closed` (SipDialer waits for it before binding the same port).
            self._close(held)
        return fresh

    async def aclose(self) -> None:
        held, self._held = list(self._held.values()), {}
        for each in held:
            each.retired = True
            if each.users == 0:
                self._close(each)
        if self._closings:
            await asyncio.wait(set(self._closings))

