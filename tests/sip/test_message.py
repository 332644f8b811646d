"""SIP message parsing and building, and digest answers checked against RFC 7616's examples."""

import hashlib

import pytest

from outdial.sip import digest
from outdial.sip.message import (
    Message,
    SipParseError,
    SipUri,
    StreamFramer,
    address_uri,
    header_param,
    parse,
)

RESPONSE = (
    b"SIP/2.0 200 OK\r\n"
    b"v: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKabc;rport=5060, SIP/2.0/UDP 10.0.0.1\r\n"
    b"f: <sip:+15550100@trunk.example>;tag=abc\r\n"
    b'To: "Bob, Jr." <sip:bob@example.org;transport=tcp>;tag=x,y\r\n'
    b"i: call-1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
    b"Subject: folded\r\n  across lines\r\n"
    b"m: <sip:bob@198.51.100.7:5070>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"l: 4\r\n\r\nv=0\r\nextra"
)


def test_parse_compact_folded_and_list_headers() -> None:
    message = parse(RESPONSE)
    assert (message.status, message.reason) == (200, "OK")
    assert message.branch == "z9hG4bKabc"
    assert len(message.get_all("Via")) == 2
    assert message.tag("From") == "abc"
    assert message.tag("To") == "x,y"  # a comma inside a To value is not a list separator
    assert message.call_id == "call-1" and message.cseq == (7, "INVITE")
    assert message.get_all("Record-Route") == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
    assert message.get("Subject") == "folded across lines"
    assert address_uri(message.get("Contact") or "") == "sip:bob@198.51.100.7:5070"
    assert message.body == b"v=0\r"  # cut at Content-Length


def test_lf_only_request_round_trips() -> None:
    message = parse(b"BYE sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nCSeq: 2 BYE\n\n")
    assert message.method == "BYE" and message.uri == "sip:a@b"
    again = parse(message.to_bytes())
    assert again.headers == message.headers + [("Content-Length", "0")]


@pytest.mark.parametrize(
    "data", [b"", b"HELLO\r\n\r\n", b"SIP/2.0 20 OK\r\n\r\n", b"INVITE sip:a SIP/2.0\r\nnocolon\r\n\r\n"]
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse(data)


def test_stream_framer_cuts_by_content_length_across_chunks() -> None:
    one = Message(status=200, reason="OK", body=b"hello").add("Call-ID", "1").to_bytes()
    two = Message(method="BYE", uri="sip:a@b").add("Call-ID", "2").to_bytes()
    stream = b"\r\n\r\n" + one + two  # keep-alive CRLFs first
    framer = StreamFramer()
    frames = []
    for i in range(0, len(stream), 7):
        frames += framer.feed(stream[i : i + 7])
    assert frames == [one, two]


def test_uri_parts() -> None:
    uri = SipUri.parse("sips:+15551234567@[2001:db8::1]:5061;transport=tls;user=phone")
    assert (uri.scheme, uri.user, uri.host, uri.port) == ("sips", "+15551234567", "2001:db8::1", 5061)
    assert uri.params == {"transport": "tls", "user": "phone"}
    assert header_param('<sip:a@b;lr>;tag="q"', "tag") == "q"
    with pytest.raises(SipParseError):
        SipUri.parse("mailto:a@b")


# RFC 7616 §3.9.1: Mufasa's request, answered with MD5 and with SHA-256.
RFC7616 = {
    "method": "GET",
    "uri": "/dir/index.html",
    "username": "Mufasa",
    "password": "Circle of Life",
    "nc": 1,
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}
CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_matches_rfc7616_examples(algorithm: str, expected: str) -> None:
    challenge = digest.Challenge.parse(CHALLENGE.format(alg=algorithm))
    assert challenge is not None
    header = digest.authorization(challenge, **RFC7616)
    assert f'response="{expected}"' in header
    assert 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"' in header
    assert "qop=auth," in header and "nc=00000001" in header


def test_digest_without_qop_uses_rfc2069_form() -> None:
    # RFC 2617 §3.5 without qop: response = MD5(HA1:nonce:HA2)
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n"')
    assert challenge is not None
    header = digest.authorization(challenge, method="INVITE", uri="sip:a@b", username="u", password="p")


    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:a@b").hexdigest()
    assert f'response="{hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()}"' in header
    assert "qop" not in header


def test_strongest_supported_challenge_is_picked() -> None:
    offered = [
        'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
        'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"',
        'Digest realm="r", nonce="3", algorithm=SHA-512-256, qop="auth"',
        'Basic realm="r"',
    ]
    chosen = digest.pick(offered)
    assert chosen is not None and chosen.algorithm == "SHA-256" and chosen.nonce == "2"
    assert digest.pick(['Digest realm="r", nonce="1", qop="auth-int"']) is None
