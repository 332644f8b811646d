"""SipDialer against SIPp as the trunk, over UDP and TCP (and TLS through a TLS front end)."""

import asyncio
import hashlib
import re
import ssl
import time
from pathlib import Path

import pytest

from outdial.dialers.base import (
    Attempt,
    DialerUnavailable,
    HangupBy,
    InvalidDestination,
    Outcome,
    OutcomeKind,
)
from outdial.dialers.sip import SipDialer, SipTrunk
from outdial.sip.transaction import TimerConfig
from tests.sip.attempts import make_attempt
from tests.sip.sipp import DTMF_1_PCAP, Sipp, free_port

TRANSPORTS = ["udp", "tcp"]
USERNAME, PASSWORD = "alice", "s3cret"


def dialer_for(sipp: Sipp, transport: str, **settings: object) -> SipDialer:
    trunk = SipTrunk.from_settings(
        {
            "host": "127.0.0.1",
            "port": sipp.port,
            "transport": transport,
            "username": USERNAME,
            "password": PASSWORD,
            "caller_id": "+15550100",
            **settings,
        }
    )
    return SipDialer(trunk)


async def dial(sipp: Sipp, transport: str, attempt: Attempt, **settings: object) -> Outcome:
    dialer = dialer_for(sipp, transport, **settings)
    try:
        outcome = await asyncio.wait_for(dialer.dial(attempt), 30)
    finally:
        await dialer.aclose()
    assert await sipp.finished() == 0, sipp.explain()
    return outcome


def sent_by_us(sipp: Sipp, method: str) -> list[str]:
    """The requests SIPp received with this method, from its message log."""
    blocks = re.split(r"-{10,}.*\n", sipp.messages())
    return [b for b in blocks if "message received" in b and f"\n{method} " in "\n" + b]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answered_call_is_acked_and_hung_up_by_us(transport: str, sipp_dir: Path) -> None:
    attempt, answered = make_attempt()
    async with Sipp("answer.xml", sipp_dir, transport=transport) as sipp:
        outcome = await dial(sipp, transport, attempt)
    assert outcome.kind is OutcomeKind.ANSWERED
    assert (outcome.sip_code, outcome.sip_reason) == (200, "OK")
    assert outcome.hangup_by is HangupBy.US
    assert len(answered) == 1
    invite = sent_by_us(sipp, "INVITE")[0]
    assert "INVITE sip:+15551234567@127.0.0.1:" in invite
    assert "From: <sip:+15550100@127.0.0.1:" in invite
    assert "m=audio" in invite and "telephone-event/8000" in invite
    (bye,) = sent_by_us(sipp, "BYE")
    assert "BYE sip:sipp@127.0.0.1:" in bye  # to the Contact of the 2xx: the remote target


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_callee_presses_1_into_digits_receive(transport: str, sipp_dir: Path) -> None:
    actions = [
        {"type": "answer"},
        {"type": "digits_receive", "option": {"duration": 8000, "length": 1}},
        {"type": "hangup"},
    ]
    attempt, _ = make_attempt(actions=actions)
    fill = {"pcap": str(DTMF_1_PCAP)}
    async with Sipp("answer_dtmf.xml", sipp_dir, transport=transport, fill=fill) as sipp:
        outcome = await dial(sipp, transport, attempt)  # SIPp exits 0 once our BYE came
    assert outcome.kind is OutcomeKind.ANSWERED
    assert outcome.digits == "1"
    assert outcome.hangup_by is HangupBy.US
    assert outcome.talk_ms < 7000  # the key ended digits_receive, not its 8 s bound
    assert len(sent_by_us(sipp, "BYE")) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (486, "Busy Here", OutcomeKind.BUSY),
        (600, "Busy Everywhere", OutcomeKind.BUSY),
        (603, "Decline", OutcomeKind.REJECTED),
        (403, "Forbidden", OutcomeKind.REJECTED),
        (404, "Not Found", OutcomeKind.INVALID_DESTINATION),
        (484, "Address Incomplete", OutcomeKind.INVALID_DESTINATION),
        (410, "Gone", OutcomeKind.INVALID_DESTINATION),
        (604, "Does Not Exist Anywhere", OutcomeKind.INVALID_DESTINATION),
        (480, "Temporarily Unavailable", OutcomeKind.NO_ANSWER),
        (408, "Request Timeout", OutcomeKind.NO_ANSWER),
        (503, "Service Unavailable", OutcomeKind.FAILED),
        (500, "Server Internal Error", OutcomeKind.FAILED),
        (302, "Moved Temporarily", OutcomeKind.FAILED),
    ],
)
async def test_final_response_gives_the_spec_outcome_and_is_acked(
    transport: str, status: int, reason: str, kind: OutcomeKind, sipp_dir: Path
) -> None:
    attempt, answered = make_attempt()
    fill = {"status": str(status), "reason": reason}
    async with Sipp("reject.xml", sipp_dir, transport=transport, fill=fill) as sipp:
        outcome = await dial(sipp, transport, attempt)  # SIPp exits 0 only once ACKed
    assert outcome.kind is kind
    assert (outcome.sip_code, outcome.sip_reason) == (status, reason)
    assert outcome.hangup_by is None and answered == []
    if status == 302:
        assert "not followed" in outcome.detail


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ringing_past_dial_timeout_is_canceled(transport: str, sipp_dir: Path) -> None:
    attempt, answered = make_attempt(dial_timeout=800)
    async with Sipp("ring_until_cancel.xml", sipp_dir, transport=transport) as sipp:
        started = time.monotonic()
        outcome = await dial(sipp, transport, attempt)
    assert outcome.kind is OutcomeKind.NO_ANSWER
    assert outcome.sip_code == 487
    assert 0.8 <= time.monotonic() - started < 5
    assert 700 <= outcome.ring_ms <= 1500
    assert answered == []
    (cancel,) = sent_by_us(sipp, "CANCEL")
    invite = sent_by_us(sipp, "INVITE")[0]
    branch = re.search(r"branch=([^;\s]+)", invite).group(1)  # type: ignore[union-attr]
    assert f"branch={branch}" in cancel  # CANCEL names the INVITE's transaction


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answer_after_dial_timeout_is_hung_up_as_no_answer(
    transport: str, sipp_dir: Path
) -> None:
    # Nothing provisional came, so no CANCEL could be sent (RFC 3261 §9.1); the late 2xx is
    # ACKed and hung up at once.
    attempt, answered = make_attempt(dial_timeout=300)
    async with Sipp("answer_late.xml", sipp_dir, transport=transport) as sipp:
        outcome = await dial(sipp, transport, attempt)
    assert outcome.kind is OutcomeKind.NO_ANSWER and outcome.sip_code == 200
    assert answered == []
    assert sent_by_us(sipp, "CANCEL") == [] and len(sent_by_us(sipp, "BYE")) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_callee_hanging_up_first_is_recorded(transport: str, sipp_dir: Path) -> None:
    attempt, _ = make_attempt(actions=[{"type": "sleep", "option": {"duration": 10_000}}])
    async with Sipp("callee_hangs_up.xml", sipp_dir, transport=transport) as sipp:
        outcome = await dial(sipp, transport, attempt)  # SIPp hangs up 300 ms after its ACK
    assert outcome.kind is OutcomeKind.ANSWERED
    assert outcome.hangup_by is HangupBy.CALLEE
    assert 250 <= outcome.talk_ms < 5000  # the actions were cut short
    assert sent_by_us(sipp, "BYE") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_call_ends_when_our_bye_leaves_answered_or_not(
    transport: str, sipp_dir: Path
) -> None:
    """RFC 3261 §15.1.1: the session (and its media) ends as the BYE is sent. A callee that
    never answers it must not keep the call, its RTP and the trunk's slot for 64*T1."""
    attempt, _ = make_attempt(actions=[{"type": "sleep", "option": {"duration": 300}}])
    async with Sipp("bye_unanswered.xml", sipp_dir, transport=transport) as sipp:
        dialer = SipDialer(dialer_for(sipp, transport).trunk, timer_config=TimerConfig(t1=0.1))
        try:
            started = time.monotonic()
            outcome = await asyncio.wait_for(dialer.dial(attempt), 30)
            took = time.monotonic() - started
            assert [k[1] for k in dialer.ua.transactions] == ["BYE"]  # still waiting, apart
        finally:
            await dialer.aclose()  # waits for the BYE's Timer F (6.4 s here) at most
        assert await sipp.finished() == 0, sipp.explain()
    assert outcome.kind is OutcomeKind.ANSWERED and outcome.hangup_by is HangupBy.US
    assert 250 <= outcome.talk_ms < 1500 and took < 3  # not 300 ms + Timer F (6.4 s)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_trunk_gone_while_ringing_leaves_no_invite_behind(
    transport: str, sipp_dir: Path
) -> None:
    """The trunk rang, then went away. Over TCP the CANCEL cannot be sent: the link is gone,
    so the attempt fails at once. Over UDP the CANCEL goes unanswered: the INVITE is given up
    64*T1 later (§9.1). Either way its transaction is forgotten, not kept for ever."""
    attempt, _ = make_attempt(dial_timeout=800)
    async with Sipp("ring_then_gone.xml", sipp_dir, transport=transport) as sipp:
        dialer = SipDialer(dialer_for(sipp, transport).trunk, timer_config=TimerConfig(t1=0.02))
        try:
            started = time.monotonic()
            outcome = await asyncio.wait_for(dialer.dial(attempt), 30)
            took = time.monotonic() - started
            assert await sipp.finished() == 0, sipp.explain()
            await asyncio.sleep(0)
            assert [k[1] for k in dialer.ua.transactions if k[1] == "INVITE"] == []
        finally:
            await dialer.aclose()
    if transport == "tcp":
        assert outcome.kind is OutcomeKind.FAILED and "cannot send the CANCEL" in outcome.detail
        assert took < 2.5
    else:
        assert outcome.kind is OutcomeKind.NO_ANSWER and outcome.detail == "canceled at dial_timeout"
        assert took < 0.8 + 1.28 + 1.5  # dial_timeout, then 64*T1 after the CANCEL


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_401_answered_with_the_right_digest(transport: str, sipp_dir: Path) -> None:
    attempt, _ = make_attempt()
    fill = {"username": USERNAME, "password": PASSWORD}
    async with Sipp("auth.xml", sipp_dir, transport=transport, fill=fill) as sipp:
        outcome = await dial(sipp, transport, attempt)  # SIPp's verifyauth passed
    assert outcome.kind is OutcomeKind.ANSWERED


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_wrong_password_fails_with_the_code(transport: str, sipp_dir: Path) -> None:
    attempt, _ = make_attempt()
    fill = {"username": USERNAME, "password": "not-" + PASSWORD}
    async with Sipp("auth.xml", sipp_dir, transport=transport, fill=fill) as sipp:
        outcome = await dial(sipp, transport, attempt)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.sip_code == 401
    assert len(sent_by_us(sipp, "INVITE")) == 2  # one answer per challenge, no loop


def expected_response(credentials: str, method: str, password: str) -> str:
    """The digest response recomputed from the fields our header sent (RFC 7616 §3.4.1)."""
    fields = dict(re.findall(r'(\w+)="?([^",]+)"?', credentials))
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[fields["algorithm"]]

    def hexd(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hexd(f"{fields['username']}:{fields['realm']}:{password}")
    ha2 = hexd(f"{method}:{fields['uri']}")
    return hexd(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "challenge", "credentials", "algorithm"),
    [
        (407, "Proxy-Authenticate", "Proxy-Authorization", "MD5"),
        (401, "WWW-Authenticate", "Authorization", "SHA-256"),
    ],
)
async def test_challenge_answered_with_a_correct_digest(
    transport: str, status: int, challenge: str, credentials: str, algorithm: str, sipp_dir: Path
) -> None:
    attempt, _ = make_attempt()
    fill = {
        "status": str(status),
        "reason": "Unauthorized" if status == 401 else "Proxy Authentication Required",
        "challenge": challenge,
        "credentials": credentials,
        "algorithm": algorithm,
    }
    async with Sipp("challenge.xml", sipp_dir, transport=transport, fill=fill) as sipp:
        outcome = await dial(sipp, transport, attempt)
    assert outcome.kind is OutcomeKind.ANSWERED
    retried = sent_by_us(sipp, "INVITE")[1]
    header = re.search(rf"^{credentials}: (Digest .*)$", retried, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert f"algorithm={algorithm}" in header and 'realm="sipp.test"' in header
    sent = re.search(r'response="([0-9a-f]+)"', header).group(1)  # type: ignore[union-attr]
    assert sent == expected_response(header, "INVITE", PASSWORD)
    assert len(sent) == (64 if algorithm == "SHA-256" else 32)


async def test_sip_destination_goes_to_its_uri_through_the_trunk(sipp_dir: Path) -> None:
    attempt, _ = make_attempt("bob@example.org", kind="sip")  # bare user@host, as VoIPbin writes
    async with Sipp("answer.xml", sipp_dir) as sipp:
        outcome = await dial(sipp, "udp", attempt)
    assert outcome.kind is OutcomeKind.ANSWERED
    assert "INVITE sip:bob@example.org SIP/2.0" in sent_by_us(sipp, "INVITE")[0]


async def test_national_number_format(sipp_dir: Path) -> None:
    attempt, _ = make_attempt("+442079460018")
    async with Sipp("reject.xml", sipp_dir, fill={"status": "486", "reason": "Busy"}) as sipp:
        await dial(sipp, "udp", attempt, number_format="national", country_code=44)
    assert "INVITE sip:02079460018@127.0.0.1:" in sent_by_us(sipp, "INVITE")[0]


async def test_email_destination_is_not_dialled() -> None:
    dialer = SipDialer(SipTrunk(host="127.0.0.1"))
    attempt, _ = make_attempt("a@example.org", kind="email")
    with pytest.raises(InvalidDestination):
        await dialer.dial(attempt)


async def test_options_check_answers_for_the_trunk(sipp_dir: Path) -> None:
    async with Sipp("options.xml", sipp_dir) as sipp:
        dialer = dialer_for(sipp, "udp")
        try:
            ok, detail = await dialer.check()
        finally:
            await dialer.aclose()
        assert await sipp.finished() == 0, sipp.explain()
    assert ok and detail == "OPTIONS answered 200 OK"


async def test_check_of_a_silent_trunk_says_so() -> None:
    port = free_port()
    silent = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", port)
    )
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port), timer_config=TimerConfig(t1=0.02))
    try:
        ok, detail = await dialer.check()
    finally:
        await dialer.aclose()
        silent[0].close()
    assert not ok and "no response to OPTIONS" in detail


# -- TLS: SIPp as packaged by Debian has no TLS, so a TLS front end relays to its TCP port ------


async def tls_front(cert: Path, key: Path, backend_port: int) -> tuple[asyncio.Server, int]:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        back_reader, back_writer = await asyncio.open_connection("127.0.0.1", backend_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, back_writer), pipe(back_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=server_tls)
    return server, server.sockets[0].getsockname()[1]


async def test_call_over_tls(sipp_dir: Path, loopback_cert: tuple[Path, Path], client_tls) -> None:
    attempt, _ = make_attempt(actions=[{"type": "sleep", "option": {"duration": 10_000}}])
    async with Sipp("callee_hangs_up.xml", sipp_dir, transport="tcp") as sipp:
        server, port = await tls_front(*loopback_cert, sipp.port)
        trunk = SipTrunk(host="127.0.0.1", port=port, transport="tls")
        dialer = SipDialer(trunk, tls_context=client_tls())
        try:
            outcome = await asyncio.wait_for(dialer.dial(attempt), 30)
        finally:
            await dialer.aclose()
            server.close()
        assert await sipp.finished() == 0, sipp.explain()
    assert outcome.kind is OutcomeKind.ANSWERED and outcome.hangup_by is HangupBy.CALLEE
    invite = sent_by_us(sipp, "INVITE")[0]
    assert "Via: SIP/2.0/TLS " in invite and "<sips:" in invite


async def test_tls_trunk_without_verification_accepts_a_self_signed_certificate(
    sipp_dir: Path, loopback_cert: tuple[Path, Path]
) -> None:
    attempt, _ = make_attempt()
    async with Sipp("answer.xml", sipp_dir, transport="tcp") as sipp:
        server, port = await tls_front(*loopback_cert, sipp.port)
        dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port, transport="tls", tls_verify=False))
        try:
            outcome = await asyncio.wait_for(dialer.dial(attempt), 30)
        finally:
            await dialer.aclose()
            server.close()
        assert await sipp.finished() == 0, sipp.explain()
    assert outcome.kind is OutcomeKind.ANSWERED


async def test_tls_trunk_with_an_untrusted_certificate_fails(
    loopback_cert: tuple[Path, Path],
) -> None:
    server, port = await tls_front(*loopback_cert, free_port())
    dialer = SipDialer(SipTrunk(host="127.0.0.1", port=port, transport="tls"))  # system CAs
    attempt, _ = make_attempt()
    try:
        with pytest.raises(DialerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.wait_for(dialer.dial(attempt), 30)
    finally:
        await dialer.aclose()
        server.close()


# -- registration, and the engine cancelling an attempt -----------------------------------------


async def test_registration_with_digest_is_refreshed_and_removed(sipp_dir: Path) -> None:
    fill = {"username": USERNAME, "password": PASSWORD}
    async with Sipp("register.xml", sipp_dir, fill=fill) as sipp:
        dialer = dialer_for(sipp, "udp", register=True, register_expires=60)
        try:
            await asyncio.wait_for(dialer.start(), 10)  # refused credentials would raise here
            async with asyncio.timeout(10):  # the registrar granted 2 s: the refresh comes early
                while len(sent_by_us(sipp, "REGISTER")) < 3:
                    await asyncio.sleep(0.05)
        finally:
            await dialer.aclose()  # unregisters
        assert await sipp.finished() == 0, sipp.explain()
    first, *_, last = sent_by_us(sipp, "REGISTER")
    assert "Expires: 60" in first and "Expires: 0" in last


async def test_wrong_password_at_registration_makes_the_channel_unavailable(
    sipp_dir: Path,
) -> None:
    fill = {"username": USERNAME, "password": "not-" + PASSWORD}
    async with Sipp("register.xml", sipp_dir, fill=fill) as sipp:
        dialer = dialer_for(sipp, "udp", register=True)
        try:
            with pytest.raises(DialerUnavailable, match="403 Forbidden"):
                await asyncio.wait_for(dialer.dial(make_attempt()[0]), 10)
        finally:
            await dialer.aclose()
        assert await sipp.finished() == 0, sipp.explain()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelled_attempt_while_ringing_sends_cancel(transport: str, sipp_dir: Path) -> None:
    attempt, _ = make_attempt(dial_timeout=60_000)
    async with Sipp("ring_until_cancel.xml", sipp_dir, transport=transport) as sipp:
        dialer = dialer_for(sipp, transport)
        try:
            task = asyncio.ensure_future(dialer.dial(attempt))
            async with asyncio.timeout(10):  # until SIPp's 180 has reached the call
                while not any(call.ringing_at for call in dialer.ua.calls.values()):
                    await asyncio.sleep(0.02)
            task.cancel()  # the engine's own dial_timeout, or a shutdown
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await sipp.finished() == 0, sipp.explain()  # CANCEL, 487, ACK all done
        finally:
            await dialer.aclose()
    assert len(sent_by_us(sipp, "CANCEL")) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelled_attempt_after_answer_sends_bye(transport: str, sipp_dir: Path) -> None:
    attempt, answered = make_attempt(actions=[{"type": "sleep", "option": {"duration": 10_000}}])
    async with Sipp("answer.xml", sipp_dir, transport=transport) as sipp:
        dialer = dialer_for(sipp, transport)
        try:
            task = asyncio.ensure_future(dialer.dial(attempt))
            async with asyncio.timeout(10):
                while not answered:
                    await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await sipp.finished() == 0, sipp.explain()  # our BYE came and was answered
        finally:
            await dialer.aclose()
    assert len(sent_by_us(sipp, "BYE")) == 1
