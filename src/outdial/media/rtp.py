"""RTP (RFC 3550) for one call on asyncio: G.711 sent at a steady 20 ms, key presses received."""

import asyncio
import errno
import random
import secrets
import socket
import struct
import weakref
from collections import deque
from dataclasses import dataclass

from outdial.media import g711
from outdial.media.dtmf import TelephoneEventReceiver
from outdial.media.errors import CallEnded, MediaError
from outdial.media.sdp import SdpAnswer

PTIME_MS = 20  # audio per packet
PTIME = PTIME_MS / 1000
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz, one byte a sample in G.711
LATE_AFTER = 0.010  # a packet sent this long after its slot counts as late
# After a stall (a busy event loop), at most this many due packets go out at once; slots missed
# beyond that are skipped: their timestamps are left out, so the callee hears a gap, not a burst
# that overflows its jitter buffer.
MAX_CATCH_UP = 3
_HEADER = struct.Struct("!BBHII")


class _Pacer:
    """One timer for every stream of an event loop: each stream's timeline starts on a whole
    millisecond, so one pass sends the packets of all streams due in that millisecond — at most
    20 wake-ups per 20 ms however many calls, instead of one timer per packet."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[int, list[RtpSession]] = {}  # millisecond → streams with a packet due
        self._timer: asyncio.TimerHandle | None = None
        self._timer_ms = 0

    def add(self, session: "RtpSession", due_ms: int) -> None:
        self._due.setdefault(due_ms, []).append(session)
        if self._timer is None or due_ms < self._timer_ms:
            self._schedule(due_ms)

    def _schedule(self, due_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_ms = due_ms
        self._timer = self._loop.call_at(due_ms / 1000, self._run)

    def _run(self) -> None:
        self._timer = None
        now = self._loop.time()
        now_ms = int(now * 1000 + 0.1)  # the loop may run a timer a hair before its time
        for due_ms in sorted(ms for ms in self._due if ms <= now_ms):
            for session in self._due.pop(due_ms):
                if not session.closed:
                    self._due.setdefault(session._send_due(now), []).append(session)
        if self._due:
            self._schedule(min(self._due))


_pacers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pacer]" = (
    weakref.WeakKeyDictionary()
)


def _pacer(loop: asyncio.AbstractEventLoop) -> _Pacer:
    pacer = _pacers.get(loop)
    if pacer is None:
        pacer = _pacers[loop] = _Pacer(loop)
    return pacer


class Clip:
    """Audio ready to send: 8 kHz mono signed 16-bit PCM, encoded once per codec and reused."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self._encoded: dict[str, bytes] = {}

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) // 16

    @property
    def packet_count(self) -> int:
        return -(-len(self.pcm) // (2 * SAMPLES_PER_PACKET))

    def prepare(self) -> "Clip":
        """Encode for both codecs now (in a worker thread: a long clip takes a while)."""
        for codec in ("PCMU", "PCMA"):
            self.encoded(codec)
        return self

    def encoded(self, codec: str) -> bytes:
        """The clip in G.711, padded with silence to whole packets."""
        if codec not in self._encoded:
            data = g711.encode(self.pcm, codec)
            padding = -len(data) % SAMPLES_PER_PACKET
            self._encoded[codec] = data + bytes([g711.silence(codec)]) * padding
        return self._encoded[codec]


@dataclass
class RtpStats:
    packets_sent: int = 0
    packets_late: int = 0  # sent more than LATE_AFTER after their slot
    max_late_ms: float = 0.0
    slots_skipped: int = 0  # missed after a stall longer than MAX_CATCH_UP packets
    packets_received: int = 0


@dataclass
class _Playing:
    data: memoryview
    offset: int
    done: asyncio.Future[None]


class RtpSession(asyncio.DatagramProtocol):
    """One call's RTP stream, bound to a local UDP port; open with `await RtpSession.open(...)`.

    Symmetric RTP: we send from the port we receive on, and send to the source of the first packet
    received after the answer (the callee's real address behind NAT) rather than to the SDP's
    address; a packet from the SDP's own address settles it. Packets received while the call
    rang (early media, perhaps from another fork, RFC 3960) decide nothing. Packets leave
    on a timeline fixed at `start`: packet n is due at start + n × 20 ms on the loop's monotonic
    clock, so lateness never accumulates. Silence is sent whenever nothing plays, keeping RTP
    flowing (and NAT bindings open) for the whole call.
    """

    def __init__(self) -> None:
        self.local_port = 0
        self.stats = RtpStats()
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self._answered: tuple[str, int] | None = None  # the answer's SDP address
        self._latched = False
        self._codec = "PCMU"
        self._payload_type = 0
        self._event_payload_type: int | None = None
        self._silence = bytes([g711.ULAW_SILENCE]) * SAMPLES_PER_PACKET
        # Random SSRC, first sequence number and first timestamp (RFC 3550 §5.1).
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp0 = secrets.randbits(32)
        self._start_ms = 0  # slot n is due at start_ms + 20 n on the loop's clock
        self._slot = 0  # next slot to send; its timestamp is timestamp0 + 160 × slot
        self._started = False
        self._marker = True  # the first packet starts a talkspurt
        self._queue: deque[_Playing] = deque()
        self._events = TelephoneEventReceiver()
        self._digits: deque[str] = deque()
        self._digit_waiter: asyncio.Future[None] | None = None
        self._waiters: set[asyncio.Future[None]] = set()  # failed with CallEnded on close

    # -- life cycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, port_min: int, port_max: int, host: str = "0.0.0.0") -> "RtpSession":
        """Bind an even UDP port of [port_min, port_max] (from a random point of the range)."""
        loop = asyncio.get_running_loop()
        ports = list(range(port_min + port_min % 2, port_max + 1, 2))
        if not ports:
            raise MediaError(f"the RTP port range {port_min}-{port_max} holds no even port")
        start = random.randrange(len(ports))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for port in ports[start:] + ports[:start]:
            # Bound here rather than by the event loop, which may not say why a bind failed.
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as error:
                sock.close()
                if error.errno == errno.EADDRINUSE:
                    continue
                raise MediaError(f"cannot bind RTP port {host}:{port}: {error.strerror}") from None
            _, session = await loop.create_datagram_endpoint(cls, sock=sock)
            return session
        raise MediaError(
            f"no free RTP port between {port_min} and {port_max}: every even port is in use "
            "(widen OUTDIAL_RTP_PORT_MIN/OUTDIAL_RTP_PORT_MAX)"
        )

    def start(self, answer: SdpAnswer) -> None:
        """Begin sending to the answer's address in its codec, until a packet says where the
        callee really is."""
        if self.closed:
            raise CallEnded("the RTP session is closed")
        self._remote = self._answered = (answer.address, answer.port)
        self._latched = False
        self._codec = answer.codec
        self._payload_type = answer.payload_type
        self._event_payload_type = answer.telephone_event
        self._silence = bytes([g711.silence(self._codec)]) * SAMPLES_PER_PACKET
        if not self._started:
            self._started = True
            self._start_ms = int(self._loop.time() * 1000) + 1
            _pacer(self._loop).add(self, self._start_ms)

    def close(self) -> None:
        """Stop sending, release the port; whoever waits on the session gets `CallEnded`."""
        if self.closed:
            return
        self.closed = True  # the pacer drops the stream at its next slot
        if self._transport is not None:
            self._transport.close()
        self._queue.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(CallEnded("the call ended"))
                waiter.exception()  # retrieved: whoever awaited it may be gone
        self._waiters.clear()

    async def _wait(self, waiter: asyncio.Future[None]) -> None:
        """Await a future that `close` fails with CallEnded."""
        if self.closed:
            raise CallEnded("the call ended")
        self._waiters.add(waiter)
        try:
            await waiter
        finally:
            self._waiters.discard(waiter)

    # -- sending ------------------------------------------------------------------------------

    async def play(self, clip: Clip) -> None:
        """Queue the clip after whatever plays; return once its last packet has been sent."""
        if self.closed:
            raise CallEnded("the call ended")
        if not self._started:
            raise MediaError("start the RTP session (with the SDP answer) before playing")
        if clip.packet_count == 0:
            return
        done = self._loop.create_future()
        self._queue.append(_Playing(memoryview(clip.encoded(self._codec)), 0, done))
        await self._wait(done)

    async def pause(self, seconds: float) -> None:
        """Let `seconds` pass (silence keeps flowing); `CallEnded` if the call ends meanwhile."""
        done = self._loop.create_future()
        timer = self._loop.call_later(seconds, lambda: done.done() or done.set_result(None))
        try:
            await self._wait(done)
        finally:
            timer.cancel()

    def _send_due(self, now: float) -> int:
        """Send the packets due by `now` (the pacer calls this); return when the next is due."""
        # The slot just due (or the one the pacer came for, when it runs a hair early).
        due = max(self._slot, int((now * 1000 - self._start_ms) // PTIME_MS))
        missed = due - self._slot + 1 - MAX_CATCH_UP
        if missed > 0:
            self._slot += missed
            self.stats.slots_skipped += missed
        while self._slot <= due:
            self._send(now)
        return self._start_ms + self._slot * PTIME_MS

    def _send(self, now: float) -> None:
        payload = self._silence
        marker = self._marker
        self._marker = False
        if self._queue:
            playing = self._queue[0]
            marker = marker or playing.offset == 0  # a clip starts a talkspurt
            payload = playing.data[playing.offset : playing.offset + SAMPLES_PER_PACKET]
            playing.offset += SAMPLES_PER_PACKET
            if playing.offset >= len(playing.data):
                self._queue.popleft()
                if not playing.done.done():
                    playing.done.set_result(None)
        timestamp = (self._timestamp0 + self._slot * SAMPLES_PER_PACKET) & 0xFFFFFFFF
        header = _HEADER.pack(
            0x80, (0x80 if marker else 0) | self._payload_type, self._sequence, timestamp,
            self._ssrc,
        )
        if self._transport is not None and self._remote is not None:
            self._transport.sendto(header + payload, self._remote)
        late = now - (self._start_ms + self._slot * PTIME_MS) / 1000
        stats = self.stats
        stats.packets_sent += 1
        if late > LATE_AFTER:
            stats.packets_late += 1
        stats.max_late_ms = max(stats.max_late_ms, late * 1000)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._slot += 1

    # -- receiving ----------------------------------------------------------------------------

    async def next_digit(self) -> str:
        """The next key the callee pressed (kept from whenever it was pressed), in order."""
        while not self._digits:
            self._digit_waiter = self._loop.create_future()
            try:
                await self._wait(self._digit_waiter)
            finally:
                self._digit_waiter = None
        return self._digits.popleft()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.local_port = transport.get_extra_info("sockname")[1]

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for a packet sent (callee's port closed): RTP carries on regardless."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return  # not RTP version 2
        source = (addr[0], addr[1])
        if self._answered is None:
            return  # early media: not the answer's, and nothing plays before it
        if source == self._answered or not self._latched:
            # The answer's own address settles it; else the first sender after the answer.
            self._latched = True
            self._remote = source
        elif source != self._remote:
            return  # only the latched peer is heard
        self.stats.packets_received += 1
        if data[1] & 0x7F != self._event_payload_type:
            return
        offset = 12 + 4 * (data[0] & 0x0F)  # CSRC list
        if data[0] & 0x10 and len(data) >= offset + 4:  # header extension
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        timestamp = struct.unpack_from("!I", data, 4)[0]
        key = self._events.receive(timestamp, data[offset:])
        if key is not None:
            self._digits.append(key)
            if self._digit_waiter is not None and not self._digit_waiter.done():
                self._digit_waiter.set_result(None)
