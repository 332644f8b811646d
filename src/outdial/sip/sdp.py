"""The SDP offer a call makes when no media session is attached (signalling only, RFC 4566)."""

import secrets


def audio_offer(host: str, port: int) -> bytes:
    """PCMU, PCMA and telephone-event on `host:port`, as every call of ours offers them."""
    session = secrets.randbelow(2**31)
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=outdial {session} {session} IN {family} {host}",
        "s=outdial",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()
