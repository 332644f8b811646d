"""RFC 3261 §17.1 client transactions: INVITE (Timers A, B, D) and non-INVITE (Timers E, F, K).

A transaction owns the retransmissions of its request, absorbs retransmitted final responses,
ACKs a non-2xx final response to an INVITE itself, and reports to its owner through a callback:
each response worth knowing, then `TIMEOUT` (Timer B/F) or a `TransportError`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from outdial.sip.message import Message
from outdial.sip.timers import Handle, Timers
from outdial.sip.transport import Link, TransportError


@dataclass(frozen=True)
class TimerConfig:
    t1: float = 0.5  # round-trip estimate (RFC 3261 §17.1.1.1)
    t2: float = 4.0  # cap of non-INVITE retransmission intervals
    t4: float = 5.0  # how long a message may stay in the network

    @property
    def b(self) -> float:
        return 64 * self.t1


class State(Enum):
    CALLING = "calling"  # INVITE sent, nothing heard (Trying for a non-INVITE)
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class _Timeout:
    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT = _Timeout()  # no final response in 64*T1
Event = Message | _Timeout | TransportError
Report = Callable[[Event], None]


class ClientTransaction:
    """What both kinds share: the request, its link, the timers, and the owner's callback."""

    def __init__(
        self,
        request: Message,
        link: Link,
        reliable: bool,
        timers: Timers,
        config: TimerConfig,
        report: Report,
        on_terminated: Callable[["ClientTransaction"], None],
    ) -> None:
        self.request = request
        self.link = link
        self.reliable = reliable
        self.timers = timers
        self.config = config
        self.report = report
        self._on_terminated = on_terminated
        self.state = State.CALLING
        self.key = (request.branch or "", request.cseq[1])
        self._wire = request.to_bytes()
        self._handles: dict[str, Handle] = {}
        self.sent_count = 0

    def _send(self, data: bytes) -> bool:
        try:
            self.link.send(data)
        except (TransportError, OSError) as error:
            self._terminate()
            self.report(error if isinstance(error, TransportError) else TransportError(str(error)))
            return False
        return True

    def _transmit(self) -> bool:
        self.sent_count += 1
        return self._send(self._wire)

    def _arm(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._disarm(name)
        self._handles[name] = self.timers.call_later(delay, callback)

    def _disarm(self, *names: str) -> None:
        for name in names:
            handle = self._handles.pop(name, None)
            if handle is not None:
                handle.cancel()

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._disarm(*list(self._handles))
        self._on_terminated(self)

    def on_response(self, response: Message) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        """Its owner gave up on it without a final response (an INVITE cancelled that got none
        within 64*T1 of the CANCEL, §9.1): forget it, timers and all."""
        self._terminate()


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 (figure 5)."""

    def start(self) -> None:
        if not self._transmit():
            return
        if not self.reliable:
            self._interval = self.config.t1
            self._arm("A", self._interval, self._timer_a)
        self._arm("B", self.config.b, self._timer_b)

    def _timer_a(self) -> None:
        if self.state is not State.CALLING:
            return
        if self._transmit():
            self._interval *= 2  # INVITE retransmissions double without cap, until Timer B
            self._arm("A", self._interval, self._timer_a)

    def _timer_b(self) -> None:
        if self.state is State.CALLING:
            self._terminate()
            self.report(TIMEOUT)

    def on_response(self, response: Message) -> None:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                self.state = State.PROCEEDING
                self._disarm("A", "B")
                self.report(response)
            elif status < 300:
                # The 2xx ends the transaction; its ACK and retransmissions are the dialog's.
                self._terminate()
                self.report(response)
            else:
                self.state = State.COMPLETED
                self._disarm("A", "B")
                self._ack = self.ack_for(response).to_bytes()
                if self._send(self._ack):
                    self._arm("D", 0 if self.reliable else 32.0, self._terminate)
                    self.report(response)
        elif self.state is State.COMPLETED and status >= 300:
            self._send(self._ack)  # the final response again: our ACK was lost (§17.1.1.2)

    def ack_for(self, response: Message) -> Message:
        """The ACK of a non-2xx final response: same branch, same Request-URI (§17.1.1.3)."""
        invite = self.request
        ack = Message(method="ACK", uri=invite.uri)
        ack.add("Via", invite.get("Via") or "")
        for route in invite.get_all("Route"):
            ack.add("Route", route)
        ack.add("Max-Forwards", "70")
        ack.add("From", invite.get("From") or "")
        ack.add("To", response.get("To") or "")
        ack.add("Call-ID", invite.call_id)
        ack.add("CSeq", f"{invite.cseq[0]} ACK")
        return ack


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2 (figure 6)."""

    def start(self) -> None:
        if not self._transmit():
            return
        if not self.reliable:
            self._interval = self.config.t1
            self._arm("E", self._interval, self._timer_e)
        self._arm("F", self.config.b, self._timer_f)

    def _timer_e(self) -> None:
        if self.state not in (State.CALLING, State.PROCEEDING):
            return
        if self._transmit():
            if self.state is State.PROCEEDING:
                self._interval = self.config.t2
            else:
                self._interval = min(self._interval * 2, self.config.t2)
            self._arm("E", self._interval, self._timer_e)

    def _timer_f(self) -> None:
        if self.state in (State.CALLING, State.PROCEEDING):
            self._terminate()
            self.report(TIMEOUT)

    def on_response(self, response: Message) -> None:
        if self.state not in (State.CALLING, State.PROCEEDING):
            return  # retransmitted finals are absorbed in Completed
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        self._disarm("E", "F")
        self._arm("K", 0 if self.reliable else self.config.t4, self._terminate)
        self.report(response)
