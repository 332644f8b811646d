"""RTP on real loopback sockets: 20 ms pacing, sequence and timestamps, symmetric RTP, key
presses into the actions."""

import asyncio
import itertools
import statistics
import struct
import time

import pytest

from outdial.media import (
    AudioSources,
    CallEnded,
    Clip,
    MediaError,
    RtpSession,
    SdpAnswer,
    run_actions,
)
from outdial.media.audio import tone
from outdial.media.rtp import MAX_CATCH_UP
from tests.media_support import key_press, rtp_packet, telephone_event

PORTS = (10000, 20000)


class Peer(asyncio.DatagramProtocol):
    """The other end: records every packet with its arrival time, and sends what it is told.

    Only packets from our RTP port range are kept: on a shared machine another program's media
    may reach a port this peer reuses."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if PORTS[0] <= addr[1] <= PORTS[1]:
            self.packets.append((asyncio.get_running_loop().time(), data, addr))

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def send(self, packets: list[bytes], port: int) -> None:
        for packet in packets:
            self.transport.sendto(packet, ("127.0.0.1", port))


@pytest.fixture
async def peers():
    made = []

    async def make() -> Peer:
        _, peer = await asyncio.get_running_loop().create_datagram_endpoint(
            Peer, local_addr=("127.0.0.1", 0))
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.transport.close()


@pytest.fixture
async def session():
    opened = await RtpSession.open(*PORTS, host="127.0.0.1")
    yield opened
    opened.close()


@pytest.fixture
async def sources(tmp_path):
    made = AudioSources(cache_dir=tmp_path / "audio")
    yield made
    await made.aclose()


def answer_to(peer: Peer, codec: str = "PCMU") -> SdpAnswer:
    return SdpAnswer("127.0.0.1", peer.port, 0 if codec == "PCMU" else 8, codec, 101, "sendrecv")


def header(packet: bytes) -> tuple[bool, int, int, int, int]:
    """marker, payload type, sequence number, timestamp, SSRC."""
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", packet)
    assert first == 0x80
    return bool(second & 0x80), second & 0x7F, sequence, timestamp, ssrc


def block_the_event_loop(seconds: float) -> None:
    """What a slow callback does to every session of the process."""
    time.sleep(seconds)


async def until(condition, seconds: float = 5.0) -> None:
    """Wait for something the event loop will make true (bounded)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.005)


async def test_packets_leave_every_20_ms_in_order(session: RtpSession, peers) -> None:
    peer = await peers()
    clip = Clip(tone(440, ms=1000))
    session.start(answer_to(peer))
    await session.play(clip)
    session.close()
    await until(lambda: len(peer.packets) == session.stats.packets_sent)
    packets = peer.packets
    assert len(packets) >= 50
    heads = [header(data) for _, data, _ in packets]
    assert {addr[1] for _, _, addr in packets} == {session.local_port}  # symmetric: our port
    assert len({h[4] for h in heads}) == 1 and {h[1] for h in heads} == {0}
    for (_, _, seq_a, ts_a, _), (_, _, seq_b, ts_b, _) in itertools.pairwise(heads):
        assert seq_b == (seq_a + 1) & 0xFFFF
        assert ts_b == (ts_a + 160) & 0xFFFFFFFF
    # The clip's 50 packets, after some silence, starting a talkspurt (marker).
    first_audio = next(n for n, (_, data, _) in enumerate(packets) if data[12:] != b"\xff" * 160)
    audio = packets[first_audio : first_audio + 50]
    assert b"".join(data[12:] for _, data, _ in audio) == clip.encoded("PCMU")
    assert [n for n, h in enumerate(heads) if h[0]] == ([0, first_audio] if first_audio else [0])
    assert all(len(data) == 172 for _, data, _ in packets)
    # On time, measured so that a busy shared machine delaying a few packets does not count:
    # packet n is never ahead of origin + n × 20 ms (origin: the timeline no packet beat), the
    # typical gap is 20 ms, lateness does not grow over the stream (no drift), and no burst.
    times = [t for t, _, _ in packets]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert abs(statistics.median(gaps) - 0.020) < 0.001
    origin = min(t - 0.020 * n for n, t in enumerate(times))
    lateness = [t - origin - 0.020 * n for n, t in enumerate(times)]
    assert statistics.median(lateness[-10:]) - statistics.median(lateness[:10]) < 0.005
    assert max(sum(1 for t in times if abs(t - u) < 0.002) for u in times) <= MAX_CATCH_UP
    assert session.stats.packets_sent == len(packets)


async def test_pcma_when_the_answer_chose_it(session: RtpSession, peers) -> None:
    peer = await peers()
    session.start(answer_to(peer, "PCMA"))
    await session.pause(0.1)
    await session.play(Clip(tone(ms=40)))
    session.close()
    await until(lambda: len(peer.packets) == session.stats.packets_sent)
    heads = [header(data) for _, data, _ in peer.packets]
    assert {h[1] for h in heads} == {8}
    assert peer.packets[0][1][12:] == b"\xd5" * 160  # A-law silence
    assert Clip(tone(ms=40)).encoded("PCMA") in b"".join(d[12:] for _, d, _ in peer.packets)


async def test_a_stall_sends_a_bounded_catch_up_then_skips(session: RtpSession, peers) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    await until(lambda: len(peer.packets) >= 3)
    block_the_event_loop(0.2)  # ten slots go by
    await until(lambda: len(peer.packets) >= 10)
    session.close()
    heads = [header(data) for _, data, _ in peer.packets]
    times = [t for t, _, _ in peer.packets]
    for (_, _, seq_a, _, _), (_, _, seq_b, _, _) in itertools.pairwise(heads):
        assert seq_b == (seq_a + 1) & 0xFFFF  # no packet is missing
    steps = [(b[3] - a[3]) & 0xFFFFFFFF for a, b in itertools.pairwise(heads)]
    assert max(steps) > 160 and all(s % 160 == 0 for s in steps)  # missed slots skipped
    burst = max(sum(1 for t in times if abs(t - u) < 0.002) for u in times)
    assert burst <= MAX_CATCH_UP
    assert session.stats.slots_skipped > 0


async def test_symmetric_rtp_latches_to_the_first_sender(session: RtpSession, peers) -> None:
    announced, actual = await peers(), await peers()  # the SDP's address, the NAT's real one
    session.start(answer_to(announced))
    actual.send([rtp_packet(0, 1, 0, b"\xff" * 160)], session.local_port)
    await until(lambda: session.stats.packets_received == 1)
    sent_before = len(announced.packets)  # the SDP's address, until the first packet came
    await until(lambda: len(actual.packets) >= 5)
    other = await peers()
    other.send(key_press(5, 800, 10), session.local_port)  # not the latched peer: ignored
    actual.send(key_press(7, 1600, 20), session.local_port)
    assert await asyncio.wait_for(session.next_digit(), 5) == "7"
    assert len(announced.packets) == sent_before and other.packets == []


async def test_early_media_from_elsewhere_does_not_decide_where_rtp_goes(
    session: RtpSession, peers
) -> None:
    """RFC 3960: early media may come from another fork than the one that answers. It rings,
    then the answer names another address: RTP goes there, and the answerer's keys are heard."""
    early, answerer = await peers(), await peers()
    early.send([rtp_packet(0, n, 160 * n, b"\xff" * 160) for n in range(5)], session.local_port)
    await asyncio.sleep(0.05)  # the ringing: its packets arrive before the answer
    session.start(answer_to(answerer))
    early.send([rtp_packet(0, 9, 1440, b"\xff" * 160)], session.local_port)  # a straggler
    answerer.send(key_press(3, 1600, 20), session.local_port)
    assert await asyncio.wait_for(session.next_digit(), 5) == "3"
    await until(lambda: len(answerer.packets) >= 5)
    count = len(early.packets)
    await until(lambda: len(answerer.packets) >= 10)
    assert len(early.packets) == count  # the answer's own address settled it


async def test_digits_pressed_during_a_beep_wait_for_digits_receive(
    session: RtpSession, peers, sources: AudioSources
) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    actions = [
        {"type": "beep"},
        {"type": "digits_receive", "option": {"key": "#", "duration": 5000}},
        {"type": "digits_receive", "option": {"length": 1, "duration": 5000}},
        {"type": "hangup"},
        {"type": "sleep", "option": {"duration": 600000}},
    ]
    running = asyncio.create_task(run_actions(actions, session, sources))
    presses = [key_press(code, 1000 * n, 10 * n) for n, code in enumerate([4, 2, 11, 9, 3])]
    peer.send([p for press in presses for p in press], session.local_port)
    result = await asyncio.wait_for(running, 5)
    assert (result.digits, result.hangup_by) == ("429", "us")


async def test_digits_receive_ends_at_its_duration(session: RtpSession, peers, sources) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    peer.send(key_press(7, 100, 1), session.local_port)
    began = time.monotonic()
    result = await run_actions(
        [{"type": "digits_receive", "option": {"length": 3, "duration": 300}}], session, sources)
    assert result.digits == "7"
    assert 0.29 <= time.monotonic() - began < 1.5


async def test_the_callee_hanging_up_ends_the_actions(session: RtpSession, peers, sources) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    actions = [
        {"type": "digits_receive", "option": {"length": 1}},
        {"type": "sleep", "option": {"duration": 600000}},
    ]
    running = asyncio.create_task(run_actions(actions, session, sources))
    peer.send(key_press(1, 100, 1), session.local_port)
    await until(lambda: session.stats.packets_received >= 7)
    await asyncio.sleep(0)
    session.close()  # the SIP layer got a BYE
    result = await asyncio.wait_for(running, 5)
    assert (result.digits, result.hangup_by) == ("1", "callee")
    with pytest.raises(CallEnded):
        await session.play(Clip(tone()))


async def test_sleep_keeps_silence_flowing(session: RtpSession, peers, sources) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    result = await run_actions([{"type": "sleep", "option": {"duration": 200}}], session, sources)
    assert result.hangup_by == "us"
    assert len(peer.packets) >= 10
    assert all(data[12:] == b"\xff" * 160 for _, data, _ in peer.packets)


async def test_headers_with_csrcs_and_an_extension_are_read(session: RtpSession, peers) -> None:
    peer = await peers()
    session.start(answer_to(peer))
    peer.send([rtp_packet(101, 5, 4000, telephone_event(11, 400), csrcs=(1, 2),
                          extension=b"\x10\xaa\x00\x00")], session.local_port)
    peer.send([rtp_packet(0, 6, 4160, b"\x01" * 160)], session.local_port)  # audio: no key
    assert await asyncio.wait_for(session.next_digit(), 5) == "#"


async def test_a_full_port_range_says_so() -> None:
    first = await RtpSession.open(*PORTS, host="127.0.0.1")
    try:
        port = first.local_port
        with pytest.raises(MediaError, match=f"no free RTP port between {port} and {port + 1}"):
            await RtpSession.open(port, port + 1, host="127.0.0.1")
        assert port % 2 == 0
    finally:
        first.close()
