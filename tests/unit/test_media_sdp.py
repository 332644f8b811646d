"""SDP: our offer is what RFC 3264 peers expect; answers are read, or refused with a reason."""

import re

import pytest

from outdial.media import SdpError, build_offer, parse_answer


def answer(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


ASTERISK_ANSWER = answer(
    "v=0",
    "o=- 1234 1235 IN IP4 203.0.113.5",
    "s=Asterisk",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 18732 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:140",
    "a=sendrecv",
)


def test_offer_lists_g711_and_telephone_events_at_20_ms() -> None:
    offer = build_offer("192.0.2.10", 12000, session_id=42)
    assert offer.endswith("\r\n") and "\n" not in offer.replace("\r\n", "")
    assert offer.split("\r\n")[:-1] == [
        "v=0",
        "o=outdial 42 42 IN IP4 192.0.2.10",
        "s=outdial",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 12000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]


def test_offer_on_ipv6_says_ip6() -> None:
    offer = build_offer("2001:db8::1", 10002)
    assert "c=IN IP6 2001:db8::1\r\n" in offer and " IN IP6 2001:db8::1\r\n" in offer


def test_offer_refuses_a_host_name() -> None:
    with pytest.raises(ValueError):
        build_offer("pbx.example.net", 10000)


def test_typical_answer_gives_address_port_codec_and_events() -> None:
    result = parse_answer(ASTERISK_ANSWER)
    assert (result.address, result.port) == ("203.0.113.5", 18732)
    assert (result.codec, result.payload_type, result.telephone_event) == ("PCMU", 0, 101)
    assert result.direction == "sendrecv"


def test_the_answers_first_format_is_the_codec_used() -> None:
    result = parse_answer(answer(
        "v=0", "o=- 1 1 IN IP4 198.51.100.7", "s=-", "c=IN IP4 198.51.100.7", "t=0 0",
        "m=audio 4000 RTP/AVP 8 0 96", "a=rtpmap:96 TELEPHONE-EVENT/8000",
    ))
    assert (result.codec, result.payload_type, result.telephone_event) == ("PCMA", 8, 96)


def test_media_connection_overrides_the_sessions_and_lf_only_is_read() -> None:
    result = parse_answer(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"
        "m=video 5000 RTP/AVP 31\nc=IN IP4 10.0.0.9\n"
        "m=audio 6000 RTP/AVP 0\nc=IN IP4 192.0.2.44/127\na=rtpmap:0 pcmu/8000\na=recvonly\n"
    )
    assert (result.address, result.port, result.codec) == ("192.0.2.44", 6000, "PCMU")
    assert result.telephone_event is None
    assert result.direction == "recvonly"


def test_our_own_offer_reads_back() -> None:
    result = parse_answer(build_offer("127.0.0.1", 10000))
    assert (result.address, result.port, result.codec, result.telephone_event) == (
        "127.0.0.1", 10000, "PCMU", 101)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 18 101",
                "a=rtpmap:18 G729/8000"),
         "no codec in common with our offer (PCMU 0, PCMA 8); it lists 18, 101"),
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=audio 0 RTP/AVP 0"), "rejected the audio stream"),
        (answer("v=0", "m=audio 4000 RTP/AVP 0"), "no connection address"),
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=video 4000 RTP/AVP 31"), "no audio stream"),
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0",
                "a=rtpmap:0 G722/8000"), "no codec in common"),
        (answer("v=0", "this is not sdp"), "line 2 is not 'x=value'"),
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=audio x RTP/AVP 0"), "bad port"),
        (answer("v=0", "c=IN IP4 192.0.2.1", "m=audio 70000 RTP/AVP 0"), "out of range"),
        (answer("v=0", "c=IN IP4", "m=audio 4000 RTP/AVP 0"), "c= must be"),
        ("", "no audio stream"),
    ],
)
def test_unusable_answers_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(SdpError, match=re.escape(reason)):
        parse_answer(text)
