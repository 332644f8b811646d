"""A real SMTP relay for tests: aiosmtpd in a thread, with STARTTLS (a self-signed certificate
made here with cryptography), AUTH, and scripted refusals per recipient."""

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "relay-user"
SMTP_PASSWORD = "relay-password-1"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for localhost / 127.0.0.1, written to `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "relay.key", directory / "relay.crt"
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        # Lines travel with CRLF; read back as the text was written.
        data = self.data.replace(b"\r\n", b"\n")
        return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class RelayHandler:
    """Accepts mail, except: RCPT of `unknown` → 550; RCPT of an address in `busy` → 451 (as
    many times as its count says); DATA while `reject_data` → 554."""

    unknown: set[str] = field(default_factory=set)
    busy: dict[str, int] = field(default_factory=dict)
    reject_data: bool = False
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such user here"
        with self.lock:
            if self.busy.get(address, 0) > 0:
                self.busy[address] -= 1
                return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reject_data:
            return "554 5.7.1 message refused as spam"
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content or envelope.content))
            number = len(self.received)
        return f"250 2.0.0 OK queued as Q{number}"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    # handled=False: aiosmtpd answers the failure (535) itself.
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountingController(Controller):
    """aiosmtpd's controller, counting the connections made to it."""

    def factory(self) -> Any:
        self.handler.connections += 1
        with warnings.catch_warnings():
            # Implicit TLS: the connection is encrypted, which this warning cannot know.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()


@dataclass
class Relay:
    host: str
    port: int
    handler: RelayHandler
    security: str

    def channel_settings(self, **overrides: Any) -> dict[str, Any]:
        """Settings of an smtp channel that reaches this relay."""
        return {
            "host": self.host, "port": self.port, "security": self.security,
            "tls_verify": False, "username": SMTP_USER, "password": SMTP_PASSWORD,
            "from_address": "campaigns@example.com", "from_name": "Example Campaigns",
            **overrides,
        }


def start_relay(tmp_path: Path, security: str = "starttls") -> Iterator[Relay]:
    key, cert = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = RelayHandler()
    port = free_port()
    options: dict[str, Any] = {
        "authenticator": _authenticator, "auth_required": True,
    }
    if security == "starttls":
        options.update(tls_context=context, require_starttls=True)
    elif security == "tls":
        # The whole connection is TLS, which aiosmtpd's AUTH check does not see: told here.
        options.update(ssl_context=context, auth_require_tls=False)
    else:
        options.update(auth_require_tls=False)
    controller = CountingController(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    handler.connections = 0  # the controller's own probe at start is not a client
    try:
        yield Relay("127.0.0.1", port, handler, security)
    finally:
        controller.stop()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """An SMTP relay on loopback that wants STARTTLS and AUTH."""
    yield from start_relay(tmp_path, "starttls")
