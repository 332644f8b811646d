"""The SIP dialer: each attempt is a call through one SIP trunk, with the campaign's actions
played by the media layer once the callee answers."""

import asyncio
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import phonenumbers

from outdial.dialers.base import (
    Attempt,
    CheckResult,
    Dialer,
    DialerUnavailable,
    HangupBy,
    InvalidDestination,
    Outcome,
    OutcomeKind,
)
from outdial.media import (
    ActionFailed,
    AudioSources,
    MediaError,
    RtpSession,
    SdpError,
    build_offer,
    parse_answer,
    run_actions,
)
from outdial.outdials.destinations import sip_uri
from outdial.sip.call import Call, Setup, SetupResult
from outdial.sip.message import SipParseError, SipUri
from outdial.sip.timers import Timers
from outdial.sip.transaction import TimerConfig
from outdial.sip.transport import TransportError
from outdial.sip.ua import RegistrationFailed, SipTimeout, UaConfig, UserAgent

log = logging.getLogger(__name__)

NUMBER_FORMATS = ("e164", "e164_no_plus", "national")

# The outcome table of the channels spec: final SIP status → outcome.
_BY_STATUS = {
    200: OutcomeKind.ANSWERED,
    486: OutcomeKind.BUSY,
    600: OutcomeKind.BUSY,
    408: OutcomeKind.NO_ANSWER,
    480: OutcomeKind.NO_ANSWER,
    603: OutcomeKind.REJECTED,
    403: OutcomeKind.REJECTED,
    404: OutcomeKind.INVALID_DESTINATION,
    484: OutcomeKind.INVALID_DESTINATION,
    604: OutcomeKind.INVALID_DESTINATION,
    410: OutcomeKind.INVALID_DESTINATION,
}


def outcome_for(status: int) -> OutcomeKind:
    """The outcome of a final response we did not provoke (487 after our CANCEL is no_answer)."""
    if 200 <= status < 300:
        return OutcomeKind.ANSWERED
    return _BY_STATUS.get(status, OutcomeKind.FAILED)


@dataclass(frozen=True)
class SipTrunk:
    """A SIP channel's settings, as the dialer uses them."""

    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    realm: str | None = None
    register: bool = False
    register_expires: int = 3600
    caller_id: str | None = None  # E.164 number or SIP URI: From when the outplan has no source
    number_format: str = "e164"  # e164 | e164_no_plus | national
    country_code: int | None = None  # `national`: numbers of this country are dialled nationally
    national_prefix: str = "0"
    international_prefix: str = "00"
    public_host: str | None = None  # announced in Via, Contact and SDP instead of ours (NAT)
    public_port: int | None = None
    local_port: int = 0
    rtp_port_min: int = 10000
    rtp_port_max: int = 20000
    tls_verify: bool = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SipTrunk":
        """From a channel's `settings` object; keys this dialer does not use are ignored."""
        known = {f.name for f in fields(cls)}
        trunk = cls(**{k: v for k, v in settings.items() if k in known and v is not None})
        trunk.check()
        return trunk

    def check(self) -> None:
        if self.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"transport {self.transport!r} is not one of udp, tcp, tls")
        if self.number_format not in NUMBER_FORMATS:
            raise ValueError(
                f"number_format {self.number_format!r} is not one of {', '.join(NUMBER_FORMATS)}"
            )
        if self.number_format == "national" and not self.country_code:
            raise ValueError("number_format national needs country_code")
        if not 0 < self.rtp_port_min <= self.rtp_port_max < 65536:
            raise ValueError("rtp_port_min..rtp_port_max must be a port range")

    def format_number(self, e164: str) -> str:
        """An E.164 number as the trunk wants it in the Request-URI and To."""
        if self.number_format == "e164":
            return e164
        if self.number_format == "e164_no_plus":
            return e164.lstrip("+")
        number = phonenumbers.parse(e164, None)
        if number.country_code == self.country_code:
            national = phonenumbers.national_significant_number(number)
            return f"{self.national_prefix}{national}"
        return f"{self.international_prefix}{e164.lstrip('+')}"


# The discard port: what a call without media offers (signalling tests and benchmarks).
NO_MEDIA_PORT = 9


class SipDialer(Dialer):
    """Places every attempt as a call through one trunk; safe to share across attempts."""

    def __init__(
        self,
        trunk: SipTrunk,
        *,
        media: bool = True,
        sources: AudioSources | None = None,
        timers: Timers | None = None,
        timer_config: TimerConfig | None = None,
        tls_context: ssl.SSLContext | None = None,
        allow_private_audio: bool = False,
    ) -> None:
        trunk.check()
        self.trunk = trunk
        self.media = media
        self._own_sources = media and sources is None
        self.sources = (AudioSources(allow_private_networks=allow_private_audio)
                        if self._own_sources else sources)
        if trunk.transport == "tls" and tls_context is None:
            tls_context = ssl.create_default_context()
            if not trunk.tls_verify:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
        self.ua = UserAgent(
            UaConfig(
                host=trunk.host,
                port=trunk.port,
                transport=trunk.transport,
                username=trunk.username,
                password=trunk.password,
                realm=trunk.realm,
                bind=("0.0.0.0", trunk.local_port),
                public_host=trunk.public_host,
                public_port=trunk.public_port,
                timers=timer_config or TimerConfig(),
                tls_context=tls_context,
            ),
            timers,
        )
        self._started: asyncio.Task | None = None
        # When the dialers this one replaced, which hold the same fixed local port for their
        # calls in progress, have closed: its calls wait for them (see follow).
        self._port_holders: list[asyncio.Future[None]] = []

    @property
    def fixed_bind(self) -> tuple[str, int] | None:
        """The fixed local port this dialer binds (by transport), or None for any free one."""
        if not self.trunk.local_port:
            return None
        return ("udp" if self.trunk.transport == "udp" else "tcp", self.trunk.local_port)

    def follow(self, predecessor: Dialer, closed: "asyncio.Future[None]") -> None:
        """Bind only once every replaced dialer holding the same fixed local port has closed
        (a channel edited, once or more, while calls of its earlier settings talk)."""
        if (isinstance(predecessor, SipDialer) and self.fixed_bind is not None
                and predecessor.fixed_bind == self.fixed_bind):
            self._port_holders.append(closed)

    @property
    def port_held_by_predecessor(self) -> bool:
        return not all(closed.done() for closed in self._port_holders)

    async def _predecessor_gone(self) -> Outcome | None:
        """None once the port is ours; an outcome if the attempt was stopped (dial_timeout)
        while the replaced dialers' calls still held it."""
        if not self.port_held_by_predecessor:
            return None
        try:
            await asyncio.shield(asyncio.gather(*self._port_holders))
        except asyncio.CancelledError:
            return Outcome(OutcomeKind.FAILED, detail=(
                f"local_port {self.trunk.local_port} was still held by the calls of the "
                "channel's previous settings"))
        return None

    async def start(self) -> None:
        """Open the transport (and register, when the trunk wants it). Called by the first dial."""
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        try:
            await asyncio.shield(self._started)
        except (TransportError, SipTimeout, RegistrationFailed, OSError) as error:
            self._started = None
            self.ua.transport.close()
            raise DialerUnavailable(f"SIP trunk {self.trunk.host}: {error}") from None

    async def _start(self) -> None:
        # The replaced dialers holding this one's fixed port close first (a check of the
        # channel, too, may come while they do); dial() says so if stopped meanwhile.
        if self._port_holders:  # asyncio.wait: a start stopped here leaves those futures be
            await asyncio.wait(self._port_holders)
        await self.ua.start()
        if self.trunk.register:
            await self.ua.register(self.trunk.register_expires)

    async def aclose(self) -> None:
        started, self._started = self._started, None
        try:
            if started is not None:
                if not started.done():
                    # Still binding or registering (a registrar slow to answer): stopped, so
                    # that the port it bound goes with the rest, not to a start nobody awaits.
                    started.cancel()
                    await asyncio.gather(started, return_exceptions=True)
                await self.ua.close()  # un-registers only what was registered
        finally:
            if self._own_sources and self.sources is not None:
                await self.sources.aclose()

    async def check(self) -> CheckResult:
        """An OPTIONS to the trunk: whether it answered, and what."""
        try:
            await self.start()
            response = await self.ua.options()
        except DialerUnavailable as error:
            return CheckResult(False, str(error))
        except (SipTimeout, TransportError) as error:
            return CheckResult(False, str(error))
        ok = 200 <= response.status < 300
        return CheckResult(ok, f"OPTIONS answered {response.status} {response.reason}")

    # -- addresses -----------------------------------------------------------------------------

    def request_uri(self, destination: Mapping[str, Any]) -> str:
        """Where the call goes: a number at the trunk, or a SIP URI reached through it."""
        kind, target = destination.get("type"), str(destination.get("target") or "").strip()
        if kind == "tel":
            if not target.startswith("+"):
                raise InvalidDestination(f"{target!r} is not an E.164 number")
            try:
                return self.ua.uri_for(self.trunk.format_number(target))
            except phonenumbers.NumberParseException as error:
                raise InvalidDestination(f"{target!r}: {error}") from None
        if kind == "sip":
            target = sip_uri(target)  # a bare user@host is sip:user@host
            try:
                SipUri.parse(target)
            except SipParseError as error:
                raise InvalidDestination(str(error)) from None
            return target
        raise InvalidDestination(f"a SIP trunk cannot dial a {kind!r} destination")

    def from_uri(self, source: Mapping[str, Any] | None) -> str:
        """The caller: the outplan's source, else the trunk's caller_id, else its username."""
        if source and source.get("type") in ("tel", "sip") and source.get("target"):
            return self.request_uri(source)
        caller = self.trunk.caller_id
        if caller:
            if caller.startswith("+"):
                return self.ua.uri_for(self.trunk.format_number(caller))
            return caller if caller.startswith(("sip:", "sips:")) else "sip:" + caller
        return self.ua.uri_for(self.trunk.username or "outdial")

    # -- one attempt ---------------------------------------------------------------------------

    async def dial(self, attempt: Attempt) -> Outcome:
        uri = self.request_uri(attempt.destination)
        caller = self.from_uri(attempt.source)
        if (stopped := await self._predecessor_gone()) is not None:
            return stopped
        await self.start()
        host = self.ua.announced[0]
        session = None
        if self.media:
            try:
                session = await RtpSession.open(self.trunk.rtp_port_min, self.trunk.rtp_port_max)
            except (MediaError, OSError) as error:
                raise DialerUnavailable(f"no RTP port for the call: {error}") from None
        try:
            offer = build_offer(host, session.local_port if session else NO_MEDIA_PORT)
            call = Call(
                self.ua,
                request_uri=uri,
                to_uri=uri,
                from_uri=caller,
                sdp=offer.encode(),
                dial_timeout=attempt.dial_timeout / 1000,
            )
            try:
                result = await call.setup()
            except asyncio.CancelledError:
                if call.unheard:
                    # Stopped at dial_timeout (the engine's) before the trunk said a word:
                    # not reached, whatever Timer B would have said later. No CANCEL: RFC 3261
                    # sends one only after a provisional response.
                    return Outcome(OutcomeKind.UNREACHABLE,
                                   detail="no response from the trunk within dial_timeout")
                raise
            if result.kind is not Setup.ANSWERED:
                return self._unanswered(call, result)
            attempt.answered()
            return await self._talk(call, result, attempt, session)
        finally:
            if session is not None:
                session.close()

    def _unanswered(self, call: Call, result: SetupResult) -> Outcome:
        ring_ms = _ms(call.ringing_at, call.ended_at)
        response = result.response
        code = response.status if response else None
        reason = response.reason if response else None
        if result.kind is Setup.TRANSPORT_ERROR:
            return Outcome(OutcomeKind.FAILED, ring_ms, detail=result.error)
        if result.kind is Setup.TIMEOUT and not result.cancel_sent:
            return Outcome(OutcomeKind.UNREACHABLE, detail="no response from the trunk (Timer B)")
        if result.canceled:  # we gave up at dial_timeout: 487, a late 2xx, or silence after it
            return Outcome(
                OutcomeKind.NO_ANSWER, ring_ms, detail="canceled at dial_timeout",
                sip_code=code, sip_reason=reason,
            )  # fmt: skip
        assert response is not None
        kind = outcome_for(response.status)
        detail = ""
        if 300 <= response.status < 400:
            detail = f"redirected to {response.get('Contact') or 'nowhere'} (not followed)"
        elif response.status in (401, 407):
            detail = "the trunk refused our credentials"
        return Outcome(kind, ring_ms, detail=detail, sip_code=code, sip_reason=reason)

    async def _talk(
        self, call: Call, result: SetupResult, attempt: Attempt, session: RtpSession | None
    ) -> Outcome:
        """The callee answered: run the actions until they end or the callee hangs up; BYE."""
        response = result.response
        assert response is not None
        kind, digits, detail = OutcomeKind.ANSWERED, "", ""
        try:
            if session is not None:
                try:
                    digits = await self._play(call, attempt, session)
                except SdpError as error:
                    # Nothing can be heard: the attempt failed, though someone picked up.
                    kind, detail = OutcomeKind.FAILED, f"unusable SDP answer: {error}"
                except ActionFailed as error:
                    digits, detail = error.digits, f"actions stopped: {error}"
            await call.hangup()
        except asyncio.CancelledError:
            call.abandon()
            raise
        return Outcome(
            kind,
            ring_ms=_ms(call.ringing_at, call.answered_at),
            talk_ms=_ms(call.answered_at, call.ended_at),
            detail=detail,
            sip_code=response.status,
            sip_reason=response.reason,
            hangup_by=HangupBy(call.hangup_by or "us"),
            digits=digits or None,
        )

    async def _play(self, call: Call, attempt: Attempt, session: RtpSession) -> str:
        """The actions on the RTP session; a BYE from the callee closes the session under them."""
        session.start(parse_answer((call.remote_sdp or b"").decode("utf-8", "replace")))
        assert self.sources is not None
        actions = asyncio.ensure_future(run_actions(attempt.actions, session, self.sources))
        hung_up = asyncio.ensure_future(call.ended.wait())
        try:
            await asyncio.wait({actions, hung_up}, return_when=asyncio.FIRST_COMPLETED)
            if not actions.done():
                session.close()  # the callee's BYE: the actions return what they collected
            return (await actions).digits
        finally:
            hung_up.cancel()
            if not actions.done():
                actions.cancel()


def _ms(start: float | None, end: float | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, round((end - start) * 1000))
