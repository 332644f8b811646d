"""What the media tests share: their peers (espeak-ng, SIPp), and RTP packets built by hand."""

import shutil
import struct
from pathlib import Path

import pytest

from tests.databases import in_ci

SIPP_PCAPS = Path("/usr/share/sip-tester")


def require_program(program: str, package: str) -> str:
    """The program's path; in CI its absence fails the test, elsewhere it skips naming the package."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (Debian package {package})"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_sipp_pcap(name: str) -> Path:
    path = SIPP_PCAPS / name
    if not path.exists():
        message = f"{path} is missing (Debian package sip-tester)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def rtp_packet(
    payload_type: int, sequence: int, timestamp: int, payload: bytes, *, ssrc: int = 0x1234,
    marker: bool = False, csrcs: tuple[int, ...] = (), extension: bytes | None = None,
) -> bytes:
    """An RTP packet as RFC 3550 §5.1 lays it out (extension: whole 32-bit words of data)."""
    first = 0x80 | len(csrcs) | (0x10 if extension is not None else 0)
    header = struct.pack("!BBHII", first, (0x80 if marker else 0) | payload_type, sequence,
                         timestamp, ssrc)
    header += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header + payload


def telephone_event(event: int, duration: int, *, end: bool = False, volume: int = 10) -> bytes:
    """An RFC 4733 §2.3 payload: event, E bit, reserved bit, volume, duration."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def key_press(event: int, timestamp: int, first_sequence: int, *, packets: int = 4) -> list[bytes]:
    """How a sender reports one key press: the event every 20 ms with a growing duration, then
    the final packet (end bit) three times, all with the event's start timestamp."""
    payloads = [telephone_event(event, 160 * (n + 1)) for n in range(packets)]
    payloads += [telephone_event(event, 160 * (packets + 1), end=True)] * 3
    return [
        rtp_packet(101, first_sequence + n, timestamp, payload, marker=n == 0)
        for n, payload in enumerate(payloads)
    ]


def read_pcap_udp_payloads(path: Path) -> list[bytes]:
    """The UDP payloads of a classic pcap file of Ethernet/IPv4/UDP frames."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    order = "<" if magic == 0xA1B2C3D4 else ">"
    link_type = struct.unpack_from(order + "I", data, 20)[0]
    assert link_type == 1, "Ethernet frames expected"
    payloads, offset = [], 24
    while offset < len(data):
        _, _, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[14:]
        assert ip[0] >> 4 == 4 and ip[9] == 17, "IPv4/UDP expected"
        udp = ip[(ip[0] & 0x0F) * 4 :]
        payloads.append(udp[8 : struct.unpack_from("!H", udp, 4)[0]])
    return payloads
