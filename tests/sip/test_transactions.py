"""RFC 3261 §17.1 client transactions on a hand-moved clock: every timer, no real waiting."""

import itertools

import pytest

from outdial.sip.message import Message, new_branch, parse
from outdial.sip.timers import FakeTimers
from outdial.sip.transaction import (
    TIMEOUT,
    InviteClientTransaction,
    NonInviteClientTransaction,
    State,
    TimerConfig,
)
from outdial.sip.transport import Link, TransportError


class Wire:
    """The link under the transaction: what was sent, and when on the fake clock."""

    def __init__(self, timers: FakeTimers) -> None:
        self.timers = timers
        self.sent: list[tuple[float, Message]] = []
        self.broken = False

    def send(self, data: bytes) -> None:
        if self.broken:
            raise TransportError("connection reset")
        self.sent.append((self.timers.time(), parse(data)))

    def link(self) -> Link:
        return Link(self.send, ("192.0.2.1", 5060))


def request(method: str) -> Message:
    message = Message(method=method, uri="sip:+15551234567@trunk.example")
    message.add("Via", f"SIP/2.0/UDP 192.0.2.9:5060;branch={new_branch()};rport")
    message.add("From", "<sip:+15550100@trunk.example>;tag=abc")
    message.add("To", "<sip:+15551234567@trunk.example>")
    message.add("Call-ID", "call-1")
    message.add("CSeq", f"1 {method}")
    return message


def response(to: Message, status: int, reason: str = "") -> Message:
    message = Message(status=status, reason=reason or "X")
    message.add("Via", to.get("Via") or "")
    message.add("From", to.get("From") or "")
    message.add("To", (to.get("To") or "") + ";tag=callee")
    message.add("Call-ID", to.call_id)
    message.add("CSeq", to.get("CSeq") or "")
    return message


def start(kind, method: str, *, reliable: bool = False):
    timers = FakeTimers()
    wire = Wire(timers)
    events: list = []
    terminated: list = []
    transaction = kind(
        request(method), wire.link(), reliable, timers, TimerConfig(), events.append,
        terminated.append,
    )  # fmt: skip
    transaction.start()
    return transaction, timers, wire, events, terminated


def test_invite_over_udp_doubles_timer_a_until_timer_b() -> None:
    transaction, timers, wire, events, terminated = start(InviteClientTransaction, "INVITE")
    timers.advance(31.9)
    assert [at for at, _ in wire.sent] == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events == []
    timers.advance(0.1)  # 64*T1 = 32 s
    assert events == [TIMEOUT] and terminated == [transaction]
    timers.advance(100)
    assert len(wire.sent) == 7  # nothing more once terminated


def test_invite_over_a_reliable_transport_is_sent_once() -> None:
    _transaction, timers, wire, events, _ = start(InviteClientTransaction, "INVITE", reliable=True)
    timers.advance(31.9)
    assert len(wire.sent) == 1 and events == []
    timers.advance(0.1)
    assert events == [TIMEOUT]


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    transaction, timers, wire, events, _ = start(InviteClientTransaction, "INVITE")
    timers.advance(0.6)  # sent at 0 and 0.5
    ringing = response(transaction.request, 180)
    transaction.on_response(ringing)
    timers.advance(120)  # ringing for two minutes: the TU's dial timeout decides, not Timer B
    assert len(wire.sent) == 2
    assert events == [ringing] and transaction.state is State.PROCEEDING


def test_non_2xx_final_is_acked_in_the_transaction_and_again_on_retransmission() -> None:
    transaction, timers, wire, events, terminated = start(InviteClientTransaction, "INVITE")
    busy = response(transaction.request, 486, "Busy Here")
    transaction.on_response(busy)
    assert events == [busy] and transaction.state is State.COMPLETED
    _, ack = wire.sent[-1]
    assert ack.method == "ACK" and ack.uri == transaction.request.uri
    assert ack.branch == transaction.request.branch  # same transaction (§17.1.1.3)
    assert ack.cseq == (1, "ACK") and ack.tag("To") == "callee"
    timers.advance(5)
    transaction.on_response(busy)  # the 486 again: our ACK was lost
    assert [m.method for _, m in wire.sent] == ["INVITE", "ACK", "ACK"]
    assert events == [busy]  # reported once
    timers.advance(27)  # Timer D = 32 s over UDP
    assert terminated == [transaction] and transaction.state is State.TERMINATED


def test_2xx_ends_the_invite_transaction_at_once() -> None:
    transaction, _timers, wire, events, terminated = start(InviteClientTransaction, "INVITE")
    ok = response(transaction.request, 200, "OK")
    transaction.on_response(ok)
    assert events == [ok] and terminated == [transaction]
    assert [m.method for _, m in wire.sent] == ["INVITE"]  # the 2xx's ACK is the dialog's


def test_non_invite_retransmits_up_to_t2_then_times_out() -> None:
    _transaction, timers, wire, events, _ = start(NonInviteClientTransaction, "BYE")
    timers.advance(31.9)
    times = [at for at, _ in wire.sent]
    assert times[:6] == [0, 0.5, 1.5, 3.5, 7.5, 11.5]  # doubling, capped at T2 = 4 s
    assert all(b - a == 4 for a, b in itertools.pairwise(times[4:]))
    timers.advance(0.1)
    assert events == [TIMEOUT]


def test_non_invite_provisional_slows_to_t2_and_final_is_absorbed_for_t4() -> None:
    transaction, timers, wire, events, terminated = start(NonInviteClientTransaction, "BYE")
    transaction.on_response(response(transaction.request, 100))
    timers.advance(0.5)  # Timer E fires once more, then every T2
    timers.advance(4)
    assert [at for at, _ in wire.sent] == [0, 0.5, 4.5]
    ok = response(transaction.request, 200, "OK")
    transaction.on_response(ok)
    transaction.on_response(ok)  # retransmitted final: absorbed
    assert events == [ok]
    timers.advance(4.9)
    assert terminated == []
    timers.advance(0.1)  # Timer K = T4
    assert terminated == [transaction]
    assert len(wire.sent) == 3


@pytest.mark.parametrize("kind", [InviteClientTransaction, NonInviteClientTransaction])
def test_transport_error_ends_the_transaction(kind) -> None:
    timers = FakeTimers()
    wire = Wire(timers)
    wire.broken = True
    events: list = []
    transaction = kind(
        request("INVITE" if kind is InviteClientTransaction else "OPTIONS"),
        wire.link(), True, timers, TimerConfig(), events.append, lambda t: None,
    )  # fmt: skip
    transaction.start()
    assert len(events) == 1 and isinstance(events[0], TransportError)
    assert transaction.state is State.TERMINATED
