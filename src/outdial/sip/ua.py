"""The user agent: one transport towards one trunk, its client transactions, and its calls."""

import asyncio
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from outdial.sip import digest
from outdial.sip.message import Message, SipParseError, SipUri, new_branch, new_tag
from outdial.sip.timers import LoopTimers, Timers
from outdial.sip.transaction import (
    TIMEOUT,
    ClientTransaction,
    Event,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Report,
    TimerConfig,
)
from outdial.sip.transport import Address, Link, TransportError, local_ip_towards, make_transport

if TYPE_CHECKING:
    from outdial.sip.call import Call

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"


class SipTimeout(Exception):
    """No final response to a request within 64*T1."""


@dataclass(frozen=True)
class UaConfig:
    """How to reach the trunk and how to present ourselves to it."""

    host: str
    port: int = 5060
    transport: str = "udp"  # udp | tcp | tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    realm: str | None = None  # answer only this realm's challenges when a server offers several
    bind: Address = ("0.0.0.0", 0)
    public_host: str | None = None  # announced in Via/Contact (and SDP) instead of ours, for NAT
    public_port: int | None = None
    user_agent: str = "Outdial"
    timers: TimerConfig = field(default_factory=TimerConfig)
    tls_context: ssl.SSLContext | None = None


class Credentials:
    """Answers 401/407 challenges with the trunk's username and password."""

    def __init__(self, username: str | None, password: str | None, realm: str | None) -> None:
        self.username = username
        self.password = password
        self.realm = realm
        self._counts: dict[str, int] = {}

    def answer(self, request: Message, challenge: Message) -> bool:
        """Add the Authorization header answering `challenge` to `request`; False if we cannot."""
        if not self.username or self.password is None:
            return False
        if challenge.status == 407:
            offered, header = challenge.get_all("Proxy-Authenticate"), "Proxy-Authorization"
        else:
            offered, header = challenge.get_all("WWW-Authenticate"), "Authorization"
        chosen = digest.pick(offered, self.realm)
        if chosen is None:
            return False
        count = self._counts[chosen.nonce] = self._counts.get(chosen.nonce, 0) + 1
        request.headers = [(k, v) for k, v in request.headers if k != header]
        request.add(
            header,
            digest.authorization(
                chosen,
                method=request.method or "",
                uri=request.uri or "",
                username=self.username,
                password=self.password,
                nc=count,
            ),
        )
        return True


class UserAgent:
    """A SIP UAC bound to one trunk (used as outbound proxy for every out-of-dialog request)."""

    def __init__(self, config: UaConfig, timers: Timers | None = None) -> None:
        self.config = config
        self.timers = timers or LoopTimers()
        self.credentials = Credentials(config.username, config.password, config.realm)
        self.transport = make_transport(config.transport, config.tls_context, config.host)
        self.transactions: dict[tuple[str, str], ClientTransaction] = {}
        self.calls: dict[str, Call] = {}
        # Bytes kept after a call or transaction is gone: our ACK of each 2xx by Call-ID, and
        # our answer to each request we received, by branch and method (for retransmissions).
        self.acks: dict[str, tuple[bytes, Link]] = {}
        self.answers: dict[tuple[str, str], bytes] = {}
        self.tasks: set[asyncio.Task] = set()
        self.proxy: Address | None = None
        self.announced: Address = ("127.0.0.1", 0)
        self.registration: Registration | None = None

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.proxy = await self.resolve(self.config.host, self.config.port)
        bind_host, bind_port = self.config.bind
        await self.transport.start((bind_host, bind_port), self._on_message)
        if self.config.transport == "tls":
            await self.transport.link(self.proxy)  # our port is the connection's own
        self._announce()

    def _announce(self) -> None:
        local_host, local_port = self.transport.local
        if local_host in ("0.0.0.0", "::"):
            assert self.proxy is not None
            local_host = local_ip_towards(self.proxy[0])
        self.announced = (
            self.config.public_host or local_host,
            self.config.public_port or local_port,
        )

    async def close(self) -> None:
        try:
            if self.registration is not None:
                await self.registration.stop()
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=self.config.timers.b)
        finally:  # stopped or not, the port is let go: a successor binds it
            for task in list(self.tasks):
                task.cancel()
            self.transport.close()

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP background task failed", exc_info=task.exception())

    # -- addressing ----------------------------------------------------------------------------

    async def resolve(self, host: str, port: int) -> Address:
        """Host and port to an address (A/AAAA lookups; no NAPTR/SRV)."""
        kind = socket.SOCK_DGRAM if self.config.transport == "udp" else socket.SOCK_STREAM
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=kind)
        except OSError as error:
            raise TransportError(f"cannot resolve {host}: {error}") from None
        return infos[0][4][:2]

    async def link_for(self, uri: str | None = None) -> Link:
        """The way to the next hop: the trunk, or the host of `uri` (a Route or remote target)."""
        if uri is None:
            assert self.proxy is not None
            return await self.transport.link(self.proxy)
        parsed = SipUri.parse(uri)
        default = 5061 if parsed.scheme == "sips" or self.config.transport == "tls" else 5060
        address = await self.resolve(parsed.host, parsed.port or default)
        return await self.transport.link(address)

    @property
    def scheme(self) -> str:
        return "sips" if self.config.transport == "tls" else "sip"

    def via(self) -> str:
        host, port = self.announced
        return f"SIP/2.0/{self.transport.name} {host}:{port};branch={new_branch()};rport"

    def contact(self, user: str | None = None) -> str:
        host, port = self.announced
        user_part = f"{user}@" if user else ""
        transport = "" if self.config.transport == "udp" else f";transport={self.config.transport}"
        return f"<{self.scheme}:{user_part}{host}:{port}{transport}>"

    def uri_for(self, user: str) -> str:
        """`user` at the trunk's domain, as Request-URI or To."""
        port = "" if self.config.port in (5060, 5061) else f":{self.config.port}"
        return f"sip:{user}@{self.config.host}{port}"

    # -- transactions --------------------------------------------------------------------------

    def send_request(self, request: Message, link: Link, report: Report) -> ClientTransaction:
        kind = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        transaction = kind(
            request,
            link,
            self.transport.reliable,
            self.timers,
            self.config.timers,
            report,
            self._forget,
        )
        self.transactions[transaction.key] = transaction
        transaction.start()
        return transaction

    def _forget(self, transaction: ClientTransaction) -> None:
        if self.transactions.get(transaction.key) is transaction:
            del self.transactions[transaction.key]

    async def request(self, request: Message, link: Link | None = None) -> Message:
        """Send a non-INVITE request and return its final response, answering one challenge.

        Raises SipTimeout (Timer F) or TransportError.
        """
        link = link or await self.link_for()
        challenged = False
        while True:
            done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
            self.send_request(request, link, _settle(done))
            event = await done
            if event is TIMEOUT:
                raise SipTimeout(
                    f"no response to {request.method} within {self.config.timers.b:g} s"
                )
            if isinstance(event, TransportError):
                raise event
            assert isinstance(event, Message)
            if event.status in (401, 407) and not challenged:
                retry = self.next_request(request)
                if self.credentials.answer(retry, event):
                    request, challenged = retry, True
                    continue
            return event

    def next_request(self, request: Message) -> Message:
        """The same request again with a new branch and the next CSeq (for an auth retry)."""
        number, method = request.cseq
        again = Message(method=request.method, uri=request.uri, body=request.body)
        for key, value in request.headers:
            if key == "Via":
                value = self.via()
            elif key == "CSeq":
                value = f"{number + 1} {method}"
            again.add(key, value)
        return again

    def build(
        self,
        method: str,
        uri: str,
        *,
        from_uri: str,
        to_uri: str,
        call_id: str | None = None,
        from_tag: str | None = None,
        cseq: int = 1,
        from_name: str | None = None,
    ) -> Message:
        """An out-of-dialog request with the headers every request carries (§8.1.1)."""
        message = Message(method=method, uri=uri)
        message.add("Via", self.via())
        message.add("Max-Forwards", "70")
        shown = f'"{from_name}" ' if from_name else ""
        message.add("From", f"{shown}<{from_uri}>;tag={from_tag or new_tag()}")
        message.add("To", f"<{to_uri}>")
        message.add("Call-ID", call_id or new_call_id())
        message.add("CSeq", f"{cseq} {method}")
        message.add("User-Agent", self.config.user_agent)
        return message

    async def options(self, uri: str | None = None) -> Message:
        """An OPTIONS ping to the trunk (a channel check): its final response."""
        user = self.config.username or "outdial"
        target = uri or f"{self.scheme}:{self.config.host}:{self.config.port}"
        request = self.build("OPTIONS", target, from_uri=self.uri_for(user), to_uri=target)
        request.add("Contact", self.contact(user))
        request.add("Accept", "application/sdp")
        return await self.request(request)

    async def register(self, expires: int = 3600) -> "Registration":
        """Register with the trunk and keep the registration refreshed until `close`."""
        registration = Registration(self, expires)
        await registration.start()
        self.registration = registration
        return registration

    # -- what comes in -------------------------------------------------------------------------

    def _on_message(self, message: Message, link: Link) -> None:
        try:
            if message.is_request:
                self._on_request(message, link)
            else:
                self._on_response(message)
        except (SipParseError, ValueError) as error:
            log.info("dropped a malformed %s from %s: %s", message, link.address, error)

    def _on_response(self, response: Message) -> None:
        key = (response.branch or "", response.cseq[1])
        transaction = self.transactions.get(key)
        if transaction is not None:
            transaction.on_response(response)
            return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            call = self.calls.get(response.call_id)
            if call is not None:
                call.on_2xx_again(response)  # our ACK was lost: ACK again (§13.2.2.4)
            elif (ack := self.acks.get(response.call_id)) is not None:
                ack[1].send(ack[0])

    def remember_ack(self, call_id: str, ack: bytes, link: Link) -> None:
        if self.transport.reliable:
            return  # no retransmissions on a reliable transport
        self.acks[call_id] = (ack, link)
        self.timers.call_later(self.config.timers.b, lambda: self.acks.pop(call_id, None))

    def answer(self, request: Message, response: Message, link: Link) -> None:
        """Send our response to a request, and keep it for the request's retransmissions."""
        data = response.to_bytes()
        link.send(data)
        if not self.transport.reliable:
            key = (request.branch or "", request.method or "")
            self.answers[key] = data
            self.timers.call_later(self.config.timers.b, lambda: self.answers.pop(key, None))

    def _on_request(self, request: Message, link: Link) -> None:
        method = request.method
        if method == "ACK":
            return
        again = self.answers.get((request.branch or "", method or ""))
        if again is not None:  # a retransmission: the same answer (§17.2.2)
            link.send(again)
            return
        call = self.calls.get(request.call_id)
        if call is not None and request.tag("To") == call.local_tag:
            call.on_request(request, link)
            return
        if method == "OPTIONS":
            response = self.response_to(request, 200, "OK")
            response.add("Allow", ALLOW)
            link.send(response.to_bytes())
            return
        if request.tag("To") or method in ("BYE", "CANCEL"):
            status, reason = 481, "Call/Transaction Does Not Exist"
        else:
            status, reason = 405, "Method Not Allowed"  # a UAC only: we take no calls
        link.send(self.response_to(request, status, reason).to_bytes())

    def response_to(
        self, request: Message, status: int, reason: str, tag: str | None = None
    ) -> Message:
        """A response copying what §8.2.6.2 says to copy; a To tag added if there is none."""
        response = Message(status=status, reason=reason)
        for via in request.get_all("Via"):
            response.add("Via", via)
        response.add("From", request.get("From") or "")
        to = request.get("To") or ""
        if request.tag("To") is None:
            to += f";tag={tag or new_tag()}"
        response.add("To", to)
        response.add("Call-ID", request.call_id)
        response.add("CSeq", request.get("CSeq") or "")
        response.add("Server", self.config.user_agent)
        return response


def _settle(future: asyncio.Future[Event]) -> Report:
    return lambda event: None if future.done() else future.set_result(event)


def new_call_id() -> str:
    return secrets.token_hex(12)


class Registration:
    """A binding at the trunk's registrar, refreshed before it expires (RFC 3261 §10)."""

    def __init__(self, ua: UserAgent, expires: int) -> None:
        self.ua = ua
        self.expires = expires
        self.user = ua.config.username or "outdial"
        self.aor = ua.uri_for(self.user)
        self.call_id = new_call_id()
        self.tag = new_tag()
        self.cseq = 0
        self.granted = 0
        self._refresh: asyncio.Task | None = None

    async def _send(self, expires: int) -> Message:
        self.cseq += 1
        request = self.ua.build(
            "REGISTER",
            f"{self.ua.scheme}:{self.ua.config.host}",
            from_uri=self.aor,
            to_uri=self.aor,
            call_id=self.call_id,
            from_tag=self.tag,
            cseq=self.cseq,
        )
        request.add("Contact", self.ua.contact(self.user))
        request.add("Expires", str(expires))
        response = await self.ua.request(request)
        self.cseq = max(self.cseq, response.cseq[0])
        return response

    async def start(self) -> None:
        response = await self._send(self.expires)
        if not 200 <= response.status < 300:
            raise RegistrationFailed(response.status, response.reason)
        self.granted = _granted_expiry(response, self.expires)
        self._refresh = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while True:
            # Refresh well before expiry; a failed refresh is retried soon, not at expiry.
            await asyncio.sleep(max(self.granted * 0.8, 1))
            try:
                response = await self._send(self.expires)
                if 200 <= response.status < 300:
                    self.granted = _granted_expiry(response, self.expires)
                else:
                    log.warning("SIP registration refused: %s", response)
                    self.granted = 30
            except (SipTimeout, TransportError) as error:
                log.warning("SIP registration refresh failed: %s", error)
                self.granted = 30

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
            try:
                await self._send(0)
            except (SipTimeout, TransportError) as error:
                log.info("SIP unregistration failed: %s", error)


class RegistrationFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the registrar answered {status} {reason}")
        self.status = status
        self.reason = reason


def _granted_expiry(response: Message, asked: int) -> int:
    for contact in response.get_all("Contact"):
        value = contact[contact.rfind(">") + 1 :] if ">" in contact else contact
        for piece in value.split(";")[1:]:
            key, _, val = piece.partition("=")
            if key.strip().lower() == "expires" and val.strip().isdigit():
                return int(val)
    header = response.get("Expires")
    return int(header) if header and header.strip().isdigit() else asked
