"""RFC 4733 telephone-events received: each key press reported once, whatever the repeats."""

import struct
from collections import deque

# Event codes 0-15 of RFC 4733 §3.2; 16 (flash) is not a key and is not reported.
EVENT_KEYS = "0123456789*#ABCD"
DTMF_KEYS = frozenset(EVENT_KEYS)


class TelephoneEventReceiver:
    """Turns the telephone-event packets of one RTP stream into key presses.

    A sender repeats each event every packet while the key is down, with the same RTP timestamp
    (the event's start) and a growing duration, and sends the final packet (end bit) three times
    (RFC 4733). So an event is new when its timestamp is new; it is reported on the first
    packet seen, so a lost first packet costs nothing. An event longer than the 16-bit duration is
    cut into segments whose timestamp is the previous one plus its duration: those are
    continuations, not new presses. Recent events are remembered, so a repeat that arrives after
    the next press began is still recognised.
    """

    REMEMBERED = 32

    def __init__(self) -> None:
        self._recent: deque[tuple[int, int]] = deque(maxlen=self.REMEMBERED)
        self._timestamp: int | None = None
        self._event = -1
        self._duration = 0
        self._ended = False

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        """One packet's RTP timestamp and payload → the key newly pressed, or None."""
        if len(payload) < 4:
            return None
        event, flags, duration = struct.unpack_from("!BBH", payload)
        ended = bool(flags & 0x80)
        if (timestamp, event) in self._recent:
            if timestamp == self._timestamp and event == self._event:
                self._duration = max(self._duration, duration)
                self._ended = self._ended or ended
            return None
        self._recent.append((timestamp, event))
        continuation = (
            event == self._event
            and not self._ended
            and self._timestamp is not None
            and timestamp == (self._timestamp + self._duration) & 0xFFFFFFFF
        )
        self._timestamp, self._event, self._duration, self._ended = (
            timestamp, event, duration, ended,
        )
        if continuation or event >= len(EVENT_KEYS):
            return None
        return EVENT_KEYS[event]
