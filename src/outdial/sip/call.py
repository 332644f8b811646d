"""One outgoing call: INVITE, provisional responses, CANCEL at the dial timeout, digest retry,
ACK of the 2xx, the dialog it makes (RFC 3261 §12–§15), and BYE from either side."""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from outdial.sip.message import Message, address_uri, new_tag
from outdial.sip.timers import Handle
from outdial.sip.transaction import TIMEOUT, ClientTransaction, Event
from outdial.sip.transport import Link, TransportError
from outdial.sip.ua import SipTimeout, UserAgent, new_call_id

log = logging.getLogger(__name__)


class Setup(Enum):
    ANSWERED = "answered"  # 2xx, ACKed, dialog confirmed
    FINAL = "final"  # a 3xx-6xx final response (ACKed by the transaction)
    TIMEOUT = "timeout"  # no response at all (Timer B), or none after our CANCEL
    TRANSPORT_ERROR = "transport_error"


@dataclass(frozen=True)
class SetupResult:
    kind: Setup
    response: Message | None = None  # the final response, when there was one
    canceled: bool = False  # we gave up (the dial timeout passed, or the attempt was cancelled)
    cancel_sent: bool = False  # ... and it had rung, so a CANCEL went out
    error: str = ""


class Call:
    """An INVITE session placed through a `UserAgent`.

    `setup()` returns once the INVITE is decided; after `ANSWERED`, `ended` is set when either
    side hangs up (`hangup()` for us, a BYE for the callee) and `hangup_by` says who.
    """

    def __init__(
        self,
        ua: UserAgent,
        *,
        request_uri: str,
        to_uri: str,
        from_uri: str,
        from_name: str | None = None,
        sdp: bytes | None = None,
        dial_timeout: float | None = None,
        on_ringing: Callable[[], None] | None = None,
    ) -> None:
        self.ua = ua
        self.timers = ua.timers
        self.call_id = new_call_id()
        self.local_tag = new_tag()
        self.cseq = 1
        self.dial_timeout = dial_timeout
        self._on_ringing = on_ringing

        invite = ua.build(
            "INVITE",
            request_uri,
            from_uri=from_uri,
            to_uri=to_uri,
            call_id=self.call_id,
            from_tag=self.local_tag,
            from_name=from_name,
        )
        invite.add("Contact", ua.contact(ua.config.username or "outdial"))
        invite.add("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")
        if sdp is not None:
            invite.add("Content-Type", "application/sdp")
            invite.body = sdp
        self.invite = invite

        self.started_at = self.timers.time()
        self.ringing_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.remote_sdp: bytes | None = None
        self.early_media = False
        self.hangup_by: str | None = None
        self.ended = asyncio.Event()

        self.remote_tag: str | None = None
        self.remote_target: str | None = None
        self.route_set: list[str] = []
        self._link: Link | None = None
        self._provisional = False
        self._cancel_wanted = False
        self._cancel_sent = False
        self._challenged = False
        self._ack: bytes | None = None
        self._ack_link: Link | None = None
        self._handles: list[Handle] = []
        self._transaction: ClientTransaction | None = None  # the INVITE's
        self._result: asyncio.Future[SetupResult] = asyncio.get_running_loop().create_future()
        self._bye_task: asyncio.Task | None = None

    # -- setting up ----------------------------------------------------------------------------

    async def setup(self) -> SetupResult:
        """Place the INVITE and wait for it to be decided; cancelling this hangs the call up."""
        try:
            self._link = await self.ua.link_for()
        except TransportError as error:
            return SetupResult(Setup.TRANSPORT_ERROR, error=str(error))
        self.ua.calls[self.call_id] = self
        if self.dial_timeout is not None:
            self._handles.append(self.timers.call_later(self.dial_timeout, self._give_up))
        self._transaction = self.ua.send_request(self.invite, self._link, self._on_invite_event)
        try:
            return await asyncio.shield(self._result)
        except asyncio.CancelledError:
            self.abandon()
            raise

    @property
    def unheard(self) -> bool:
        """Nothing has come back from the trunk yet: not even a 100 Trying."""
        return not self._provisional and not self._result.done()

    def abandon(self) -> None:
        """Stop the call whatever its state: CANCEL while it rings, BYE once answered."""
        if not self._result.done():
            self._give_up()
        elif self.answered_at is not None and not self.ended.is_set():
            self.ua.spawn(self.hangup())

    def _give_up(self) -> None:
        """The dial timeout: CANCEL once the callee side has sent a provisional (§9.1)."""
        if self._result.done():
            return
        self._cancel_wanted = True
        if self._provisional:
            self._send_cancel()

    def _send_cancel(self) -> None:
        if self._cancel_sent:
            return
        self._cancel_sent = True
        invite = self.invite
        cancel = Message(method="CANCEL", uri=invite.uri)
        cancel.add("Via", invite.get("Via") or "")  # same branch: it names the INVITE
        for route in invite.get_all("Route"):
            cancel.add("Route", route)
        cancel.add("Max-Forwards", "70")
        cancel.add("From", invite.get("From") or "")
        cancel.add("To", invite.get("To") or "")
        cancel.add("Call-ID", invite.call_id)
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        cancel.add("User-Agent", self.ua.config.user_agent)
        assert self._link is not None
        self.ua.send_request(cancel, self._link, self._on_cancel_event)
        if self._result.done():  # the CANCEL could not be sent
            return
        # No final response within 64*T1 of the CANCEL: the INVITE is over for us (§9.1).
        self._handles.append(
            self.timers.call_later(self.ua.config.timers.b, lambda: self._decide(Setup.TIMEOUT))
        )

    def _on_cancel_event(self, event: Event) -> None:
        """The CANCEL's own answer says nothing of the call (the INVITE's 487 does), but a
        CANCEL that cannot be sent means the link to the trunk is gone: no final response
        can come back on it, so the attempt ends now, not 64*T1 later."""
        if isinstance(event, TransportError):
            self._decide(Setup.TRANSPORT_ERROR, error=f"cannot send the CANCEL: {event}")

    def _on_invite_event(self, event: Event) -> None:
        if self._result.done() and not (isinstance(event, Message) and event.status < 300):
            return
        if event is TIMEOUT:
            self._decide(Setup.TIMEOUT)
        elif isinstance(event, TransportError):
            self._decide(Setup.TRANSPORT_ERROR, error=str(event))
        elif isinstance(event, Message):
            self._on_invite_response(event)

    def _on_invite_response(self, response: Message) -> None:
        status = response.status
        if status < 200:
            self._provisional = True
            if status > 100 and self.ringing_at is None:
                self.ringing_at = self.timers.time()
                if self._on_ringing is not None:
                    self._on_ringing()
            if response.body and "sdp" in (response.get("Content-Type") or ""):
                self.remote_sdp, self.early_media = response.body, True
            if self._cancel_wanted:
                self._send_cancel()
        elif status < 300:
            self.ua.spawn(self._confirm(response))
        elif status in (401, 407) and not self._challenged and not self._cancel_wanted:
            retry = self.ua.next_request(self.invite)
            if self.ua.credentials.answer(retry, response):
                self._challenged = True
                self.invite = retry
                self.cseq = retry.cseq[0]
                assert self._link is not None
                self._transaction = self.ua.send_request(retry, self._link, self._on_invite_event)
                return
            self._decide(Setup.FINAL, response)
        else:
            self._decide(Setup.FINAL, response)

    async def _confirm(self, response: Message) -> None:
        """A 2xx: make the dialog, ACK it, and hang up at once if we had already given up."""
        if self.remote_tag is not None:
            self.on_2xx_again(response)
            return
        self.remote_tag = response.tag("To")
        contact = response.get("Contact")
        self.remote_target = address_uri(contact) if contact else self.invite.uri
        self.route_set = list(reversed(response.get_all("Record-Route")))
        self.to_header = response.get("To") or ""
        if response.body:
            self.remote_sdp = response.body
        self.answered_at = self.timers.time()
        ack = self._in_dialog("ACK", cseq=self.cseq)
        for key, value in self.invite.headers:
            if key in ("Authorization", "Proxy-Authorization"):
                ack.add(key, value)
        try:
            self._ack_link = await self._next_hop()
            self._ack = ack.to_bytes()
            self._ack_link.send(self._ack)
        except TransportError as error:
            self._decide(Setup.TRANSPORT_ERROR, response, error=str(error))
            self._end()
            return
        if self._cancel_wanted:
            self._decide(Setup.FINAL, response)  # answered after we gave up: no one will talk
            await self.hangup()
            return
        self._decide(Setup.ANSWERED, response)

    async def _drop_fork(self, response: Message) -> None:
        """A 2xx from a second callee the INVITE forked to: ACK it and hang it up (§13.2.2.4)."""
        contact = response.get("Contact")
        target = address_uri(contact) if contact else self.invite.uri or ""
        route_set = list(reversed(response.get_all("Record-Route")))
        to = response.get("To") or ""
        try:
            link = await self._next_hop()
            link.send(self._request("ACK", self.cseq, to, target, route_set).to_bytes())
            await self.ua.request(self._request("BYE", self.cseq + 1, to, target, route_set), link)
        except (SipTimeout, TransportError) as error:
            log.info("call %s: dropping a forked answer failed: %s", self.call_id, error)

    def on_2xx_again(self, response: Message) -> None:
        """A 2xx after the first: a retransmission (ACK again), or a second fork's answer."""
        if self.remote_tag is not None and response.tag("To") != self.remote_tag:
            self.ua.spawn(self._drop_fork(response))
            return
        if self._ack is not None and self._ack_link is not None:
            try:
                self._ack_link.send(self._ack)
            except TransportError:
                pass

    def _decide(self, kind: Setup, response: Message | None = None, error: str = "") -> None:
        if self._result.done():
            return
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self._result.set_result(
            SetupResult(
                kind, response, self._cancel_wanted, self._cancel_sent, error=error
            )
        )
        if kind in (Setup.TIMEOUT, Setup.TRANSPORT_ERROR) and self._transaction is not None:
            self._transaction.destroy()  # it may still wait for a final response (§9.1)
        if kind is not Setup.ANSWERED and self.answered_at is None:
            self.ended_at = self.timers.time()
            self.ended.set()
            self._forget()

    # -- the dialog ----------------------------------------------------------------------------

    def _in_dialog(self, method: str, cseq: int | None = None) -> Message:
        """A request inside the dialog (§12.2.1.1): remote target, route set, tags."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        assert self.remote_target is not None
        return self._request(method, cseq, self.to_header, self.remote_target, self.route_set)

    def _request(
        self, method: str, cseq: int, to: str, target: str, route_set: list[str]
    ) -> Message:
        request = Message(method=method, uri=target)
        request.add("Via", self.ua.via())
        for route in route_set:
            request.add("Route", route)
        request.add("Max-Forwards", "70")
        request.add("From", self.invite.get("From") or "")
        request.add("To", to)
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{cseq} {method}")
        request.add("User-Agent", self.ua.config.user_agent)
        return request

    async def _next_hop(self) -> Link:
        # The trunk is our outbound proxy for the whole dialog: the Request-URI names the remote
        # target and Route headers the route set, but the packets go to the trunk, the one peer
        # we know to be reachable (NAT, SBCs, and the TLS connection we already hold).
        return await self.ua.link_for()

    async def hangup(self) -> None:
        """BYE. The call ends as the BYE leaves (§15.1.1: media stops then, whether or not the
        callee ever answers it); its answer is awaited in the background, bounded by Timer F.
        Idempotent."""
        if self.answered_at is None or self.ended.is_set():
            return
        if self._bye_task is None:
            self._bye_task = asyncio.ensure_future(self._bye())
        await asyncio.shield(self._bye_task)

    async def _bye(self) -> None:
        self.hangup_by = self.hangup_by or "us"
        try:
            link = await self._next_hop()
            self.ua.spawn(self._bye_answered(self._in_dialog("BYE"), link))
        except TransportError as error:
            log.info("call %s: no way to send the BYE: %s", self.call_id, error)
        finally:
            self._end()

    async def _bye_answered(self, bye: Message, link: Link) -> None:
        try:
            response = await self.ua.request(bye, link)
            if response.status >= 300:
                log.info("call %s: BYE answered %s", self.call_id, response)
        except (SipTimeout, TransportError) as error:
            log.info("call %s: BYE got no answer: %s", self.call_id, error)

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended_at = self.timers.time()
        self.ended.set()
        self._forget()
        if self._ack is not None and self._ack_link is not None:
            # Only the ACK stays behind, to answer 2xx retransmissions for 64*T1 (§13.2.2.4):
            # keeping whole calls that long makes the garbage collector's full passes slow.
            self.ua.remember_ack(self.call_id, self._ack, self._ack_link)

    def _forget(self) -> None:
        if self.ua.calls.get(self.call_id) is self:
            del self.ua.calls[self.call_id]

    def on_request(self, request: Message, link: Link) -> None:
        """A request from the callee inside our dialog."""
        if request.method == "BYE":
            self.ua.answer(request, self.ua.response_to(request, 200, "OK"), link)
            if self.answered_at is not None and not self.ended.is_set():
                self.hangup_by = "callee"
                self._end()
        elif request.method in ("INVITE", "UPDATE"):
            # Session changes are not supported; the call stays as it is (RFC 3261 §14.2).
            link.send(self.ua.response_to(request, 488, "Not Acceptable Here").to_bytes())
        elif request.method == "OPTIONS":
            link.send(self.ua.response_to(request, 200, "OK").to_bytes())
        else:
            link.send(self.ua.response_to(request, 405, "Method Not Allowed").to_bytes())


__all__ = ["Call", "Setup", "SetupResult"]
