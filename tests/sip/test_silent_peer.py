"""A trunk that never answers: INVITE retransmitted on RFC 3261's schedule, then `unreachable`."""

import asyncio

from outdial.dialers.base import OutcomeKind
from outdial.dialers.sip import SipDialer, SipTrunk
from outdial.sip.message import parse
from outdial.sip.transaction import TimerConfig
from tests.sip.attempts import make_attempt
from tests.sip.sipp import free_port


class Recorder(asyncio.DatagramProtocol):
    """A silent peer: notes when each datagram arrives, answers nothing."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append((asyncio.get_running_loop().time(), data))


async def test_silent_udp_peer_gets_the_rfc_schedule_then_unreachable() -> None:
    # Real time with the RFC's T1 = 500 ms: the schedule is the point (about 32 s).
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    port = free_port()
    peer, _ = await loop.create_datagram_endpoint(lambda: recorder, local_addr=("127.0.0.1", port))
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port))
    attempt, _ = make_attempt(dial_timeout=120_000)  # outlasts every timer here
    try:
        outcome = await asyncio.wait_for(dialer.dial(attempt), 40)
        ended = loop.time()
    finally:
        await dialer.aclose()
        peer.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert outcome.sip_code is None
    messages = [parse(data) for _, data in recorder.arrivals]
    assert {m.method for m in messages} == {"INVITE"}  # no CANCEL: nothing provisional came
    assert len({m.to_bytes() for m in messages}) == 1  # retransmissions are the same request
    first = recorder.arrivals[0][0]
    offsets = [at - first for at, _ in recorder.arrivals]
    expected = [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Timer A doubling from T1
    assert len(offsets) == len(expected), offsets
    for got, want in zip(offsets, expected, strict=True):
        assert abs(got - want) < 0.2, offsets
    assert abs((ended - first) - 32.0) < 0.5  # Timer B = 64*T1


async def test_silent_tcp_peer_gets_one_invite_then_unreachable() -> None:
    # Over a reliable transport there is no retransmission; Timer B still bounds the wait.
    received: list[bytes] = []
    done: list[asyncio.Future[None]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closed = asyncio.get_running_loop().create_future()
        done.append(closed)
        while data := await reader.read(65536):
            received.append(data)
        writer.close()
        await writer.wait_closed()
        closed.set_result(None)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    trunk = SipTrunk(host="127.0.0.1", port=port, transport="tcp")
    dialer = SipDialer(trunk, timer_config=TimerConfig(t1=0.05))  # Timer B = 3.2 s
    attempt, _ = make_attempt(dial_timeout=120_000)  # outlasts every timer here
    try:
        outcome = await asyncio.wait_for(dialer.dial(attempt), 10)
    finally:
        await dialer.aclose()
        await asyncio.wait_for(asyncio.gather(*done), 5)  # the peer saw us close
        server.close()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert b"".join(received).count(b"INVITE sip:") == 1


async def test_refused_tcp_connection_is_a_channel_failure() -> None:
    port = free_port()
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port, transport="tcp"))
    attempt, _ = make_attempt(dial_timeout=120_000)  # outlasts every timer here
    try:
        outcome = await asyncio.wait_for(dialer.dial(attempt), 10)
    finally:
        await dialer.aclose()
    assert outcome.kind is OutcomeKind.FAILED
    assert "cannot connect over TCP" in outcome.detail


async def test_a_trunk_silent_until_the_engines_dial_timeout_is_unreachable() -> None:
    # The engine stops an attempt at dial_timeout by cancelling it; Timer B (32 s) has not
    # run out by then. A trunk that has not said a word is not reached: not `no_answer`.
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    class Silent(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received.append(data)
            arrived.set()

    received: list[bytes] = []
    port = free_port()
    peer, _ = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", port))
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port))
    attempt, _ = make_attempt(dial_timeout=120_000)
    try:
        dialing = asyncio.ensure_future(dialer.dial(attempt))
        await asyncio.wait_for(arrived.wait(), 10)  # the INVITE is out
        dialing.cancel()  # what the engine does at dial_timeout
        await asyncio.wait({dialing})
    finally:
        await dialer.aclose()
        peer.close()
    assert not dialing.cancelled()
    outcome = dialing.result()
    assert outcome.kind is OutcomeKind.UNREACHABLE
    assert outcome.detail == "no response from the trunk within dial_timeout"
    assert {parse(data).method for data in received} == {"INVITE"}  # no CANCEL
