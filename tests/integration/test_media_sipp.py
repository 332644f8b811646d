"""SIPp as the far end of a call's media: the DTMF it plays from sip-tester's capture reaches
digits_receive through our RTP session, and our RTP reaches SIPp.

SIPp places the call (UAC) to a few lines of scripted SIP here that answer with our SDP; the SIP
dialer's own tests run SIPp against the real user agent. Here the subject is the media."""

import asyncio
import socket

from outdial.media import AudioSources, RtpSession, build_offer, parse_answer, run_actions
from tests.media_support import require_program, require_sipp_pcap

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee presses 1">
  <send retrans="500"><![CDATA[
INVITE sip:outdial@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[call_number]
To: <sip:outdial@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
  ]]></send>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:outdial@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <nop><action><exec play_pcap_audio="PCAP"/></action></nop>
  <pause milliseconds="1000"/>
  <send retrans="500"><![CDATA[
BYE sip:outdial@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[last_From:]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
"""


class ScriptedCallee(asyncio.DatagramProtocol):
    """Answers SIPp's INVITE with our SDP and its BYE with 200; starts the session on the INVITE."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session
        self.bye = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        head, _, body = data.decode().partition("\r\n\r\n")
        lines = head.split("\r\n")
        method = lines[0].split(" ")[0]
        if method == "ACK":
            return
        headers = [h for h in lines[1:] if h.split(":")[0].lower() in
                   ("via", "from", "to", "call-id", "cseq")]
        headers = [h + ";tag=outdial" if h.lower().startswith("to:") and "tag=" not in h else h
                   for h in headers]
        sdp = ""
        if method == "INVITE":
            self.session.start(parse_answer(body))  # SIPp's offer read like an answer
            sdp = build_offer("127.0.0.1", self.session.local_port)
            headers += ["Contact: <sip:outdial@127.0.0.1>", "Content-Type: application/sdp"]
        elif method == "BYE" and not self.bye.done():
            self.bye.set_result(None)
        response = "\r\n".join(["SIP/2.0 200 OK", *headers, f"Content-Length: {len(sdp)}", "", sdp])
        self.transport.sendto(response.encode(), addr)


def free_udp_port() -> int:
    """An even loopback port free right now (SIPp's media port; RTP ports are even)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port % 2 == 0 and port < 65000:
            return port
    raise RuntimeError("no free even UDP port")


async def test_sipp_plays_dtmf_1_into_digits_receive(tmp_path) -> None:
    sipp = require_program("sipp", "sip-tester")
    pcap = require_sipp_pcap("dtmf_2833_1.pcap")
    scenario = tmp_path / "dtmf.xml"
    scenario.write_text(SCENARIO.replace("PCAP", str(pcap)))
    loop = asyncio.get_running_loop()
    session = await RtpSession.open(10000, 20000, host="127.0.0.1")
    sources = AudioSources(cache_dir=tmp_path / "audio")
    transport, callee = await loop.create_datagram_endpoint(
        lambda: ScriptedCallee(session), local_addr=("127.0.0.1", 0))
    process = await asyncio.create_subprocess_exec(
        sipp, f"127.0.0.1:{transport.get_extra_info('sockname')[1]}", "-sf", str(scenario),
        "-m", "1", "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1",
        "-mp", str(free_udp_port()), "-timeout", "20s", "-timeout_error", "-nostdin",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        async with asyncio.timeout(20):
            result = await run_actions(
                [{"type": "digits_receive", "option": {"length": 1, "duration": 10000}}],
                session, sources)
            await callee.bye
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        session.close()
        transport.close()
        await sources.aclose()
    assert result.digits == "1"
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    assert session.stats.packets_sent > 10  # our RTP went to SIPp's media port
    assert session.stats.packets_received >= 10  # SIPp's capture: 10 event packets

