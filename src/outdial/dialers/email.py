"""The email dialer: sends an attempt's message through a customer's SMTP relay (aiosmtplib).

Connections are kept in a small pool per channel and reused across messages; a reused
connection the relay has dropped is replaced once, transparently. Every wait is bounded: a free
connection (POOL_WAIT_S), and each SMTP command (SMTP_TIMEOUT_S).

    SMTP                                      outcome
    2xx after DATA                            answered (message_id and the reply kept)
    5xx on RCPT (no such user …)              invalid_destination
    other 5xx (MAIL, DATA)                    rejected
    4xx, connection, TLS or AUTH failure      failed (retried by the outplan)
"""

import asyncio
import logging
from dataclasses import dataclass
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

import aiosmtplib
import httpx
from aiosmtplib import SMTPRecipientRefused, SMTPResponseException

from outdial.channels.schemas import SmtpSettings
from outdial.dialers.base import (
    Attempt,
    CheckResult,
    Dialer,
    DialerError,
    DialerUnavailable,
    InvalidDestination,
    Outcome,
    OutcomeKind,
)
from outdial.dialers.templates import (
    MessageTemplateError,
    html_to_text,
    looks_like_html,
    render,
)
from outdial.urls import ascii_host

log = logging.getLogger("outdial.dialers.email")

SMTP_TIMEOUT_S = 30.0  # each SMTP command, and connecting
POOL_WAIT_S = 30.0  # waiting for a free connection of the channel
EMAIL_ACTION = "email_send"


def _security(settings: SmtpSettings) -> dict[str, Any]:
    return {
        "use_tls": settings.security == "tls",
        "start_tls": settings.security == "starttls",  # True: STARTTLS or fail, never plain
        "validate_certs": settings.tls_verify,
    }


def email_action(actions: list[Any]) -> dict[str, Any] | None:
    """The option of the campaign's first `email_send` action: the message to send."""
    for action in actions:
        if isinstance(action, dict) and action.get("type") == EMAIL_ACTION:
            option = action.get("option")
            return option if isinstance(option, dict) else {}
    return None


@dataclass(frozen=True)
class Composed:
    """A message ready to send: its bytes, its Message-ID and its envelope."""

    data: bytes
    message_id: str
    sender: str
    recipient: str


class AddressNotSendable(Exception):
    """An address SMTP cannot carry as Outdial sends: a local part that is not ASCII."""

    def __init__(self, role: str, problem: str) -> None:
        super().__init__(problem)
        self.role = role


def smtp_address(address: str, role: str) -> str:
    """The address as SMTP carries it: its domain in ASCII (IDNA 2008, as every host name
    here: bücher.de is xn--bcher-kva.de). A non-ASCII local part would need SMTPUTF8, which
    Outdial does not send with: AddressNotSendable, saying so (`role`: sender, recipient)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise AddressNotSendable(role,
            f"the {role} {address} has a non-ASCII local part, which only SMTPUTF8 can carry "
            "and Outdial does not send with it")
    if not domain.isascii():
        try:
            domain = ascii_host(httpx.URL(f"http://{domain}/"))
        except httpx.InvalidURL:
            raise AddressNotSendable(role, f"the {role} {address} has a domain that is no host "
                                           "name") from None
    return f"{local}@{domain}"


def compose_message(attempt: Attempt, settings: SmtpSettings) -> Composed:
    """The message of `attempt`, with its Message-ID and envelope sender and recipient.

    From is the outplan's source when that is an email address, else the channel's sender.
    Built with the email package's legacy classes: its modern API re-parses every header and
    costs ten times as much CPU per message.
    """
    option = email_action(attempt.actions)
    if option is None:
        raise DialerError("the campaign has no email_send action: there is no message to send")
    destination = attempt.destination
    fields = {
        "name": attempt.target_name,
        "detail": attempt.target_detail,
        "data": attempt.target_data,
        "target_name": destination.get("target_name", ""),
        "destination": destination["target"],
        "outdial_data": attempt.outdial_data,
    }
    try:
        # A header is one line: whatever the placeholders held, newlines become spaces.
        subject = " ".join(render(str(option.get("subject", "")), fields).split())
        content = str(option.get("content", ""))
        html_body = render(content, fields, html_mode=True) if looks_like_html(content) else None
        text_body = html_to_text(html_body) if html_body is not None else render(content, fields)
    except MessageTemplateError as error:
        raise DialerError(str(error)) from None

    source = attempt.source
    if source is not None and source.get("type") == "email":
        sender, sender_name = source["target"], source.get("target_name", "")
    else:
        sender, sender_name = settings.from_address, settings.from_name
    message: MIMEBase = MIMEText(text_body, "plain", "utf-8")
    if html_body is not None:
        message = MIMEMultipart("alternative", _subparts=[
            message, MIMEText(html_body, "html", "utf-8"),
        ])
    sender = smtp_address(sender, "sender")
    recipient = smtp_address(destination["target"], "recipient")
    message_id = make_msgid(domain=sender.rpartition("@")[2] or None)
    # Display names are one line (the API refuses others; one stored before that rule is
    # made one here): a line break would end the header inside the name.
    message["From"] = formataddr((" ".join(sender_name.split()), sender), charset="utf-8")
    message["To"] = formataddr((" ".join(str(destination.get("target_name", "")).split()),
                                recipient), charset="utf-8")
    message["Subject"] = Header(subject, "utf-8").encode() if not subject.isascii() else subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id
    return Composed(message.as_bytes(), message_id, sender, recipient)


class SmtpPool:
    """Up to `max_connections` open, authenticated connections to one relay."""

    def __init__(self, settings: SmtpSettings, password: str | None) -> None:
        self.settings = settings
        self._password = password
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._closed = False

    async def connect(self) -> aiosmtplib.SMTP:
        """A new connection: connected, TLS as the channel says, AUTH when it has a user."""
        settings = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=settings.host, port=settings.port, timeout=SMTP_TIMEOUT_S,
            **_security(settings),
        )
        await smtp.connect()
        try:
            if settings.username:
                await smtp.login(settings.username, self._password or "")
        except BaseException:
            drop(smtp)
            raise
        return smtp

    async def acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A connection (reused when one is idle) and whether it was reused."""
        try:
            async with asyncio.timeout(POOL_WAIT_S):
                await self._slots.acquire()
        except TimeoutError:
            raise DialerUnavailable(
                f"all {self.settings.max_connections} connections to the relay stayed busy "
                f"for {POOL_WAIT_S:g} s"
            ) from None
        try:
            while self._idle:
                smtp = self._idle.pop()
                if smtp.is_connected:
                    return smtp, True
            return await self.connect(), False
        except BaseException:
            self._slots.release()
            raise

    def release(self, smtp: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if reusable and smtp.is_connected and not self._closed:
            self._idle.append(smtp)
        else:
            drop(smtp)
        self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for smtp in idle:
            await say_goodbye(smtp)


async def say_goodbye(smtp: aiosmtplib.SMTP) -> None:
    """QUIT, then drop the socket at once. Over TLS a polite close waits for the relay's own
    close_notify, up to asyncio's 30 s: a relay that never sends it (or a loop that ends
    first) would leave the socket open that long. After QUIT's answer nothing is left to say."""
    transport = smtp.transport
    try:
        async with asyncio.timeout(5):
            await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass  # the relay may be gone already; the socket closes either way
    finally:
        drop(smtp, transport)


def drop(smtp: aiosmtplib.SMTP, transport: asyncio.BaseTransport | None = None) -> None:
    """Close the connection without TLS's closing handshake (see say_goodbye)."""
    transport = transport or smtp.transport
    smtp.close()
    if isinstance(transport, asyncio.Transport):
        transport.abort()


class EmailDialer(Dialer):
    """Sends each attempt's message as one SMTP transaction on a pooled connection."""

    def __init__(self, settings: SmtpSettings, password: str | None) -> None:
        self.settings = settings
        self.pool = SmtpPool(settings, password)

    async def dial(self, attempt: Attempt) -> Outcome:
        if attempt.destination.get("type") != "email":
            raise InvalidDestination(
                f"an SMTP channel sends email, not to {attempt.destination.get('type')!r} "
                "destinations"
            )
        try:
            composed = compose_message(attempt, self.settings)
        except AddressNotSendable as error:
            # Never sendable as it is written: the recipient's is a permanent outcome; the
            # sender's is the channel's (or the outplan's source) to fix, and retried.
            kind = (OutcomeKind.INVALID_DESTINATION if error.role == "recipient"
                    else OutcomeKind.FAILED)
            return Outcome(kind, smtp_reply=str(error))
        for last_try in (False, True):
            try:
                smtp, reused = await self.pool.acquire()
            except (aiosmtplib.SMTPException, OSError) as error:
                return _failed(error)
            reusable = False
            try:
                outcome = await self._transaction(smtp, attempt, composed)
                reusable = True
                return outcome
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as error:
                if reused and not last_try:
                    continue  # the relay closed an idle connection: once more on a new one
                return _failed(error)
            except (aiosmtplib.SMTPException, OSError) as error:
                return _failed(error)
            finally:
                self.pool.release(smtp, reusable=reusable)
        raise AssertionError("unreachable")

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, attempt: Attempt, composed: Composed
    ) -> Outcome:
        """MAIL, RCPT, DATA. A refusal ends the transaction with RSET; the connection stays."""
        try:
            await smtp.mail(composed.sender)
            try:
                await smtp.rcpt(composed.recipient)
            except SMTPRecipientRefused as error:
                kind = OutcomeKind.INVALID_DESTINATION if error.code >= 500 else OutcomeKind.FAILED
                await smtp.rset()
                return _answer(kind, error, "RCPT")
            # The relay took the recipient: the nearest thing to a callee picking up. From here
            # on the SMTP timeouts bound the attempt, not dial_timeout.
            attempt.answered()
            reply = await smtp.data(composed.data)
        except SMTPResponseException as error:
            if not isinstance(error, aiosmtplib.SMTPServerDisconnected) and smtp.is_connected:
                await smtp.rset()
            kind = OutcomeKind.REJECTED if error.code >= 500 else OutcomeKind.FAILED
            return _answer(kind, error, "MAIL/DATA")
        return Outcome(
            OutcomeKind.ANSWERED, smtp_code=reply.code, smtp_reply=reply.message,
            message_id=composed.message_id,
        )

    async def check(self) -> CheckResult:
        """Connect, TLS and AUTH as for a message, then QUIT."""
        settings = self.settings
        steps = [f"connected to {settings.host}:{settings.port}"]
        if settings.security != "none":
            steps.append("TLS" if settings.security == "tls" else "STARTTLS")
        if settings.username:
            steps.append(f"AUTH as {settings.username} accepted")
        try:
            smtp = await self.pool.connect()
        except aiosmtplib.SMTPException as error:
            return CheckResult(False, _describe(error))
        except OSError as error:
            return CheckResult(False, f"cannot connect to {settings.host}:{settings.port}: {error}")
        await say_goodbye(smtp)
        return CheckResult(True, ", ".join(steps))

    async def aclose(self) -> None:
        await self.pool.aclose()


def _answer(kind: OutcomeKind, error: SMTPResponseException, stage: str) -> Outcome:
    return Outcome(kind, detail=f"{stage} refused", smtp_code=error.code, smtp_reply=error.message)


def _describe(error: BaseException) -> str:
    if isinstance(error, SMTPResponseException):
        return f"the relay answered {error.code} {error.message}"
    if isinstance(error, aiosmtplib.SMTPException) and str(error):
        return str(error)  # aiosmtplib's own sentences name the host and the cause
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _failed(error: BaseException) -> Outcome:
    """A relay that could not be reached, secured or logged into: failed, with why."""
    code = error.code if isinstance(error, SMTPResponseException) else 0
    return Outcome(OutcomeKind.FAILED, smtp_code=max(0, code),
                   smtp_reply=_describe(error), detail="no SMTP transaction")
