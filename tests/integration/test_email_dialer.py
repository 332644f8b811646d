"""channels.md §3: the email dialer against a real relay (aiosmtpd) with STARTTLS and AUTH."""

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from outdial.channels.schemas import SmtpSettings, parse_settings
from outdial.dialers import Attempt, DialerError, Outcome, OutcomeKind
from outdial.dialers.email import EmailDialer
from tests.smtp_support import Relay, start_relay

EMAIL_ACTION = {"type": "email_send", "option": {
    "subject": "Hello {{ name }}, about {{ outdial_data }}",
    "content": "Dear {{ target_name }},\nyour account {{ data }} ({{ detail }}) is ready.\n",
}}


def email_to(address: str, target_name: str = "Alice Liddell") -> dict[str, str]:
    return {"type": "email", "target": address, "target_name": target_name, "name": "",
            "detail": ""}


def attempt_to(address: str, *, actions: list[Any] | None = None,
               source: dict[str, str] | None = None, **fields: Any) -> Attempt:
    return Attempt(
        campaigncall_id=uuid.uuid4(), target_id=uuid.uuid4(), destination=email_to(address),
        destination_index=0, try_count=1, source=source, dial_timeout=30000,
        actions=[EMAIL_ACTION] if actions is None else actions,
        outdial_data=fields.get("outdial_data", "the spring offer"),
        target_data=fields.get("target_data", "A-1001"),
        target_name=fields.get("target_name", "Alice"),
        target_detail=fields.get("target_detail", "gold member"),
    )


def dialer_for(relay: Relay, **overrides: Any) -> EmailDialer:
    settings = parse_settings("smtp", relay.channel_settings(**overrides))
    assert isinstance(settings, SmtpSettings)
    return EmailDialer(settings, overrides.get("password", relay.channel_settings()["password"]))


async def dial_once(relay: Relay, attempt: Attempt | None = None, **overrides: Any) -> Outcome:
    """One attempt (by default to alice@example.org) through a dialer of its own, closed after."""
    dialer = dialer_for(relay, **overrides)
    try:
        return await dialer.dial(attempt or attempt_to("alice@example.org"))
    finally:
        await dialer.aclose()


async def test_message_accepted_after_data_is_answered_with_its_id(relay: Relay) -> None:
    answered = []
    attempt = attempt_to("alice@example.org")
    attempt = Attempt(**{**attempt.__dict__, "answered": lambda: answered.append(True)})
    outcome = await dial_once(relay, attempt)

    assert outcome.kind is OutcomeKind.ANSWERED
    assert outcome.smtp_code == 250 and outcome.smtp_reply == "2.0.0 OK queued as Q1"
    assert answered == [True]  # the relay took the recipient: dial_timeout stops applying
    [received] = relay.handler.received
    assert received.recipients == ["alice@example.org"]
    assert received.sender == "campaigns@example.com"
    assert received.message["Message-ID"] == outcome.message_id and outcome.message_id


async def test_an_internationalised_domain_is_sent_in_its_ascii_form(relay: Relay) -> None:
    outcome = await dial_once(relay, attempt_to("Bob@Bücher.de"))

    assert outcome.kind is OutcomeKind.ANSWERED, outcome
    [received] = relay.handler.received
    assert received.recipients == ["Bob@xn--bcher-kva.de"]
    assert "Bob@xn--bcher-kva.de" in received.message["To"]


async def test_a_non_ascii_local_part_is_an_invalid_destination_saying_why(relay: Relay) -> None:
    outcome = await dial_once(relay, attempt_to("jörg@example.de"))

    assert outcome.kind is OutcomeKind.INVALID_DESTINATION
    assert outcome.smtp_reply is not None and "non-ASCII local part" in outcome.smtp_reply
    assert "SMTPUTF8" in outcome.smtp_reply
    assert relay.handler.received == []
    # The sender's is the channel's to fix: a failed attempt, retried once it is.
    sender = {"type": "email", "target": "jürgen@example.com", "target_name": ""}
    outcome = await dial_once(relay, attempt_to("alice@example.org", source=sender))
    assert outcome.kind is OutcomeKind.FAILED and "the sender" in (outcome.smtp_reply or "")


async def test_templated_subject_and_body_arrive_as_written(relay: Relay) -> None:
    await dial_once(relay)

    message = relay.handler.received[0].message
    assert message["Subject"] == "Hello Alice, about the spring offer"
    assert message["From"] == "Example Campaigns <campaigns@example.com>"
    assert message["To"] == "Alice Liddell <alice@example.org>"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == (
        "Dear Alice Liddell,\nyour account A-1001 (gold member) is ready.\n"
    )


async def test_html_content_goes_out_with_a_text_part_and_escaped_placeholders(
    relay: Relay,
) -> None:
    action = {"type": "email_send", "option": {
        "subject": "Offer", "content": "<p>Hello <b>{{ name }}</b></p><p>See you</p>"}}
    await dial_once(relay, attempt_to("alice@example.org", actions=[action],
                                      target_name="<Bob & Co>"))

    message = relay.handler.received[0].message
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    markup = message.get_body(("html",)).get_content()
    assert text == "Hello <Bob & Co>\n\nSee you\n"
    assert "<b>&lt;Bob &amp; Co&gt;</b>" in markup


async def test_what_a_template_may_use_renders(relay: Relay) -> None:
    action = {"type": "email_send", "option": {
        "subject": "{{ name|upper }}{% if detail in ('gold member', 'platinum') %} (gold)"
                   "{% endif %}{{ '!'|truncate(length=4, end='') }}",
        "content": "{{ target_name|default('customer')|title ~ ', ' ~ data|truncate(4, True, '', 0) }}"
                   "{% if not outdial_data %}-{% elif data|length > 3 %}+{% else %}?{% endif %}"}}
    outcome = await dial_once(relay, attempt_to("alice@example.org", actions=[action]))

    assert outcome.kind is OutcomeKind.ANSWERED
    message = relay.handler.received[0].message
    assert message["Subject"] == "ALICE (gold)!"
    assert message.get_content() == "Alice Liddell, A-10+"


async def test_a_template_that_fails_on_one_targets_data_says_why(relay: Relay) -> None:
    """It saved fine ({{ data|int + 1 }} is a sum), but this target's data is no number: the
    attempt fails, and the reason is said (it is kept on the campaigncall)."""
    action = {"type": "email_send", "option": {"subject": "Hi", "content": "{{ data|int + 'x' }}"}}
    with pytest.raises(DialerError, match="the message template failed: unsupported operand"):
        await dial_once(relay, attempt_to("alice@example.org", actions=[action]))
    assert relay.handler.received == []  # the engine records it failed, with these words


async def test_a_message_past_its_bound_is_not_built(relay: Relay) -> None:
    """Two hundred uses of a 65,536-character field would make a 13 MB message: rendering
    stops past 1 MiB, and the attempt fails saying so."""
    action = {"type": "email_send", "option": {"subject": "Hi", "content": "{{ data }}" * 100}}
    with pytest.raises(DialerError, match="the message would be longer than 1048576 characters"):
        await dial_once(relay, attempt_to("alice@example.org", actions=[action],
                                          target_data="x" * 65536))
    assert relay.handler.received == []


async def test_a_display_name_stored_with_a_line_break_stays_in_its_header(relay: Relay) -> None:
    """The API refuses a line break in a display name; one stored before it did is made one
    line, so that it cannot end the header (and put To, Subject or a Bcc: into the body)."""
    attempt = attempt_to("alice@example.org")
    attempt = Attempt(**{**attempt.__dict__, "destination": email_to(
        "alice@example.org", "Ann\r\nBcc: evil@example.net")})
    stored = parse_settings("smtp", relay.channel_settings())
    assert isinstance(stored, SmtpSettings)
    dialer = EmailDialer(stored.model_copy(update={"from_name": "Ops Team\nSales"}),
                         relay.channel_settings()["password"])
    try:
        outcome = await dialer.dial(attempt)
    finally:
        await dialer.aclose()

    assert outcome.kind is OutcomeKind.ANSWERED
    [received] = relay.handler.received
    assert received.message["To"] == '"Ann Bcc: evil@example.net" <alice@example.org>'
    assert received.message["From"] == "Ops Team Sales <campaigns@example.com>"
    assert received.message["Subject"] == "Hello Alice, about the spring offer"
    assert received.recipients == ["alice@example.org"]


async def test_sender_is_the_outplans_source_when_it_is_an_email(relay: Relay) -> None:
    source = {"type": "email", "target": "sales@example.net", "target_name": "Sales",
              "name": "", "detail": ""}
    await dial_once(relay, attempt_to("alice@example.org", source=source))

    [received] = relay.handler.received
    assert received.sender == "sales@example.net"
    assert received.message["From"] == "Sales <sales@example.net>"


async def test_unknown_recipient_is_an_invalid_destination(relay: Relay) -> None:
    relay.handler.unknown.add("nobody@example.org")
    dialer = dialer_for(relay)
    try:
        outcome = await dialer.dial(attempt_to("nobody@example.org"))
        after = await dialer.dial(attempt_to("alice@example.org"))
    finally:
        await dialer.aclose()

    assert outcome.kind is OutcomeKind.INVALID_DESTINATION
    assert (outcome.smtp_code, outcome.smtp_reply) == (550, "5.1.1 no such user here")
    assert after.kind is OutcomeKind.ANSWERED  # the connection was reset and kept
    assert relay.handler.connections == 1


async def test_temporary_refusal_fails_the_attempt(relay: Relay) -> None:
    relay.handler.busy["alice@example.org"] = 1
    outcome = await dial_once(relay)

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.smtp_code == 451 and "try again later" in outcome.smtp_reply
    assert relay.handler.received == []


async def test_message_refused_at_data_is_rejected(relay: Relay) -> None:
    relay.handler.reject_data = True
    outcome = await dial_once(relay)

    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.smtp_code == 554


async def test_wrong_password_fails_with_the_relays_answer(relay: Relay) -> None:
    outcome = await dial_once(relay, password="not-the-password")

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.smtp_code == 535
    assert relay.handler.received == []


async def test_certificate_checked_by_default(relay: Relay) -> None:
    outcome = await dial_once(relay, tls_verify=True)  # the relay's certificate is self-signed

    assert outcome.kind is OutcomeKind.FAILED
    assert "certificate" in outcome.smtp_reply.lower()


async def test_relay_that_is_not_there_fails_the_attempt() -> None:
    from tests.smtp_support import free_port

    settings = parse_settings("smtp", {"host": "127.0.0.1", "port": free_port(),
                                        "from_address": "a@example.com"})
    assert isinstance(settings, SmtpSettings)
    dialer = EmailDialer(settings, None)
    try:
        outcome = await dialer.dial(attempt_to("alice@example.org"))
    finally:
        await dialer.aclose()
    assert outcome.kind is OutcomeKind.FAILED and outcome.smtp_code == 0
    assert outcome.smtp_reply


async def test_connections_are_reused_and_bounded(relay: Relay) -> None:
    dialer = dialer_for(relay, max_connections=2)
    try:
        outcomes = await asyncio.gather(*(
            dialer.dial(attempt_to(f"person{n}@example.org")) for n in range(20)
        ))
    finally:
        await dialer.aclose()

    assert {o.kind for o in outcomes} == {OutcomeKind.ANSWERED}
    assert len(relay.handler.received) == 20
    assert relay.handler.connections <= 2


async def test_a_connection_the_relay_dropped_is_replaced(relay: Relay) -> None:
    dialer = dialer_for(relay)
    try:
        assert (await dialer.dial(attempt_to("a@example.org"))).kind is OutcomeKind.ANSWERED
        [idle] = dialer.pool._idle
        idle.transport.close()  # as a relay does to an idle client (or a network blip)
        await asyncio.sleep(0)
        outcome = await dialer.dial(attempt_to("b@example.org"))
    finally:
        await dialer.aclose()

    assert outcome.kind is OutcomeKind.ANSWERED
    assert relay.handler.connections == 2


async def test_implicit_tls_relay(tmp_path: Path) -> None:
    for tls_relay in start_relay(tmp_path, "tls"):
        outcome = await dial_once(tls_relay)
        assert outcome.kind is OutcomeKind.ANSWERED
        assert len(tls_relay.handler.received) == 1


async def test_check_reports_connect_tls_and_auth(relay: Relay) -> None:
    good = await dialer_for(relay).check()
    bad = await dialer_for(relay, password="wrong-password").check()

    assert good.ok and "STARTTLS" in good.detail and "AUTH as relay-user accepted" in good.detail
    assert not bad.ok and "535" in bad.detail
    assert relay.handler.received == []
