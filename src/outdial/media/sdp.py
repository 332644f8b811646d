"""SDP (RFC 4566 / RFC 3264) for one audio stream: our G.711 offer, and the callee's answer read."""

import ipaddress
import secrets
from dataclasses import dataclass

from outdial.media.errors import SdpError

# Static payload types of RFC 3551, in our order of preference.
CODECS = {0: "PCMU", 8: "PCMA"}
TELEPHONE_EVENT_PT = 101
PTIME_MS = 20


@dataclass(frozen=True)
class SdpAnswer:
    """What the callee's answer tells us: where to send RTP, and how."""

    address: str
    port: int
    payload_type: int  # 0 or 8
    codec: str  # "PCMU" or "PCMA"
    telephone_event: int | None  # payload type of RFC 4733 events, None if not accepted
    direction: str  # sendrecv, sendonly, recvonly or inactive (as the answer says)


def build_offer(address: str, port: int, session_id: int | None = None) -> str:
    """Our offer: PCMU, PCMA and telephone-event 0-16, 20 ms packets, sendrecv, RTP at address:port.

    `address` is what the callee must send to (the announced address when behind NAT)."""
    family = "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    session = session_id if session_id is not None else secrets.randbelow(2**62)
    lines = [
        "v=0",
        f"o=outdial {session} {session} IN {family} {address}",
        "s=outdial",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8 {TELEPHONE_EVENT_PT}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        f"a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000",
        f"a=fmtp:{TELEPHONE_EVENT_PT} 0-16",
        f"a=ptime:{PTIME_MS}",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


def parse_answer(text: str) -> SdpAnswer:
    """The callee's SDP answer → where and how to send; `SdpError` naming what is wrong."""
    session_address: str | None = None
    media: list[dict] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"SDP line {number} is not 'x=value': {line[:60]!r}")
        kind, value = line[0], line[2:]
        current = media[-1] if media else None
        if kind == "m":
            media.append(_media_line(value, number))
        elif kind == "c":
            address = _connection_address(value, number)
            if current is None:
                session_address = address
            else:
                current["address"] = address
        elif kind == "a" and current is not None:
            _attribute(current, value)
    audio = [m for m in media if m["type"] == "audio"]
    if not audio:
        raise SdpError("SDP answer has no audio stream (m=audio)")
    stream = audio[0]
    if stream["port"] == 0:
        raise SdpError("SDP answer rejected the audio stream (m=audio port 0)")
    address = stream.get("address") or session_address
    if address is None:
        raise SdpError("SDP answer gives no connection address (c=) for its audio stream")
    codec = _chosen_codec(stream)
    events = [pt for pt in stream["formats"] if stream["rtpmap"].get(pt) == "telephone-event/8000"]
    return SdpAnswer(
        address=address,
        port=stream["port"],
        payload_type=codec,
        codec=CODECS[codec],
        telephone_event=events[0] if events else None,
        direction=stream["direction"],
    )


def _media_line(value: str, number: int) -> dict:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"SDP line {number}: m= needs media, port, protocol and formats")
    try:
        port = int(parts[1].split("/")[0])
        formats = [int(f) for f in parts[3:]] if parts[2].startswith("RTP/") else []
    except ValueError:
        raise SdpError(f"SDP line {number}: bad port or payload type in m={value!r}") from None
    if not 0 <= port <= 65535:
        raise SdpError(f"SDP line {number}: port {port} is out of range")
    return {"type": parts[0], "port": port, "protocol": parts[2], "formats": formats,
            "rtpmap": {}, "direction": "sendrecv"}


def _connection_address(value: str, number: int) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {number}: c= must be 'IN IP4|IP6 address', not {value!r}")
    return parts[2].split("/")[0]  # drop a multicast TTL


def _attribute(stream: dict, value: str) -> None:
    name, _, rest = value.partition(":")
    if name == "rtpmap":
        pt, _, encoding = rest.partition(" ")
        if pt.isdigit():
            # Encoding names are case-insensitive (RFC 4855); the channel count is optional.
            stream["rtpmap"][int(pt)] = "/".join(encoding.strip().split("/")[:2]).lower()
    elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
        stream["direction"] = name


def _chosen_codec(stream: dict) -> int:
    """The first format of the answer that is G.711 (static type, or mapped by rtpmap)."""
    for pt in stream["formats"]:
        mapped = stream["rtpmap"].get(pt)
        if pt in CODECS and mapped in (None, f"{CODECS[pt].lower()}/8000"):
            return pt
    offered = ", ".join(str(pt) for pt in stream["formats"]) or "none"
    raise SdpError(
        f"SDP answer has no codec in common with our offer (PCMU 0, PCMA 8); it lists {offered}"
    )
