"""An INVITE forked to two phones that both answer: both 2xx ACKed, the second hung up at once.

SIPp cannot play this (it takes our first ACK, arriving before its second 200 is out, for an
error), so the peer is a few lines of UDP here, answering from the INVITE it received."""

import asyncio

from outdial.dialers.base import HangupBy, OutcomeKind
from outdial.dialers.sip import SipDialer, SipTrunk
from outdial.sip.message import Message, parse
from tests.sip.attempts import make_attempt


class ForkingPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[Message] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def reply(self, request: Message, status: int, addr: tuple[str, int], tag: str = "") -> None:
        response = Message(status=status, reason="OK")
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            response.add(name, request.get(name) or "")
        if tag:
            response.headers = [
                (k, f"{v};tag={tag}" if k == "To" else v) for k, v in response.headers
            ]
            port = self.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
            response.add("Contact", f"<sip:{tag}@127.0.0.1:{port}>")
            response.add("Content-Type", "application/sdp")
            response.body = (
                b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            )
        assert self.transport is not None
        self.transport.sendto(response.to_bytes(), addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse(data)
        self.received.append(message)
        if message.method == "INVITE" and len(self.received) == 1:
            self.reply(message, 200, addr, tag="first")
            self.reply(message, 200, addr, tag="second")
        elif message.method == "BYE":
            self.reply(message, 200, addr)


async def test_second_forked_answer_is_acked_and_hung_up() -> None:
    loop = asyncio.get_running_loop()
    peer = ForkingPeer()
    transport, _ = await loop.create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port))
    attempt, _ = make_attempt(actions=[{"type": "sleep", "option": {"duration": 300}}])
    try:
        outcome = await asyncio.wait_for(dialer.dial(attempt), 10)
    finally:
        await dialer.aclose()
        transport.close()
    assert outcome.kind is OutcomeKind.ANSWERED and outcome.hangup_by is HangupBy.US
    sent = [(m.method, m.tag("To"), m.uri) for m in peer.received]
    assert sent[0][0] == "INVITE"
    assert sorted(sent[1:3]) == [
        ("ACK", "first", f"sip:first@127.0.0.1:{port}"),
        ("ACK", "second", f"sip:second@127.0.0.1:{port}"),
    ]
    assert sent[3:] == [
        ("BYE", "second", f"sip:second@127.0.0.1:{port}"),  # the extra callee, at once
        ("BYE", "first", f"sip:first@127.0.0.1:{port}"),  # ours, after the actions
    ]
